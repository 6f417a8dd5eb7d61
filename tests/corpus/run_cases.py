"""Run corpus cases through protoview's command line, each in a process of its own.

Usage: ``python -m tests.corpus.run_cases CASES.json RESULTS.json [TIMEOUT_S]``

Starting ``python -m protoview`` costs ~3 s of imports (torch); for ~90 cases that is most
of the run. So this runner imports the CLI and its heavy libraries once and then forks one
child per case: each child is still a separate process with its own stdout / stderr files,
runs ``protoview.cli.main(argv)`` exactly as ``python -m protoview`` does (a traceback that
escapes is printed, as Python would), and is killed when it runs past the timeout (a
hang). Without ``os.fork`` (Windows) every case runs as ``python -m protoview``.

CASES.json: a list of :class:`~tests.corpus.make_corpus.Case` dicts; RESULTS.json gets
``{name: {"rc", "stdout", "stderr", "seconds", "timed_out"}}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any


def _warm_imports() -> None:
    """What the commands import anyway; done once here instead of in every child."""
    import h5py  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401

    import protoview.cli  # noqa: F401
    import protoview.core.checkpoint  # noqa: F401
    import protoview.core.data  # noqa: F401
    import protoview.core.features  # noqa: F401
    import protoview.core.snapshot  # noqa: F401


def _child(argv: list[str], out: Path, err: Path, cwd: str) -> None:
    """In the forked child: redirect stdout / stderr, run the CLI, exit with its code."""
    code = 1
    try:
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out), (2, err)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
        from protoview.cli import main

        code = main(argv)
    except SystemExit as exc:  # argparse; as the interpreter would report it
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - what an uncaught exception looks like
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code if isinstance(code, int) else 1)


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL, True
        time.sleep(0.005)


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace") if path.exists() else ""


def run_forked(argv: list[str], timeout: float, cwd: str) -> dict[str, Any]:
    """Run ``protoview ARGV`` in a forked child; its exit code, output and time."""
    with tempfile.TemporaryDirectory(prefix="protoview-case-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        sys.stdout.flush()
        sys.stderr.flush()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _child(argv, out, err, cwd)
        rc, timed_out = _wait(pid, timeout)
        return {"rc": rc, "stdout": _read(out), "stderr": _read(err),
                "seconds": time.perf_counter() - t0, "timed_out": timed_out}


def run_subprocess(argv: list[str], timeout: float, cwd: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m protoview ARGV`` as a fresh interpreter."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "protoview", *argv], capture_output=True, timeout=timeout,
                              cwd=cwd, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as exc:
        return {"rc": -signal.SIGKILL, "stdout": (exc.stdout or b"").decode("utf-8", "replace"),
                "stderr": (exc.stderr or b"").decode("utf-8", "replace"),
                "seconds": time.perf_counter() - t0, "timed_out": True}
    return {"rc": done.returncode, "stdout": done.stdout.decode("utf-8", "replace"),
            "stderr": done.stderr.decode("utf-8", "replace"), "seconds": time.perf_counter() - t0,
            "timed_out": False}


def run_case(case: dict[str, Any], timeout: float, cwd: str, *, isolated: bool = False,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one case; ``marker_exists`` says whether its hidden code ran (checked at once)."""
    if isolated or not hasattr(os, "fork"):
        result = run_subprocess(list(case["argv"]), timeout, cwd, env)
    else:
        result = run_forked(list(case["argv"]), timeout, cwd)
    result["marker_exists"] = bool(case.get("marker")) and os.path.lexists(case["marker"])
    return result


def run_all(cases: list[dict[str, Any]], timeout: float, cwd: str) -> dict[str, dict[str, Any]]:
    if hasattr(os, "fork"):
        _warm_imports()
    return {case["name"]: run_case(case, timeout, cwd) for case in cases}


def main(argv: list[str]) -> int:
    cases_file, results_file = Path(argv[0]), Path(argv[1])
    timeout = float(argv[2]) if len(argv) > 2 else 60.0
    cases = json.loads(cases_file.read_text())
    results = run_all(cases, timeout, os.getcwd())
    results_file.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
