"""The bad-input corpus (``tests/corpus/make_corpus.py``) fed to the real command line.

Each case runs in a process of its own (a fork of one warmed-up runner; the ones with
hidden code as a fresh ``python -m protoview``), with a timeout, a scratch cache and a
strict UTF-8 stdout (as in a UTF-8 desktop locale). A broken input must give exit code 2
and ONE line on stderr, ``protoview: error: <file>: <problem>``, naming the file and the
problem, with no traceback and no file written; an odd but valid input must work (its
warnings, if any, one line each naming the bad files). No hidden code may ever run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from tests.corpus.make_corpus import CHECKPOINT, DATASET, SNAPSHOT, Case, build, case_names
from tests.corpus.run_cases import run_case

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60


def _env(scratch: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PROTOVIEW_CACHE_DIR=str(scratch / "cache"), PYTHONIOENCODING="utf-8")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in build(tmp_path_factory.mktemp("corpus"))}


@pytest.fixture(scope="session")
def results(corpus: dict[str, Case], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every case's exit code, stdout, stderr, time, and whether its marker appeared."""
    work = tmp_path_factory.mktemp("corpus-run")
    env = _env(work)
    shared = [case.to_json() for case in corpus.values() if not case.isolated]
    (work / "cases.json").write_text(json.dumps(shared))
    subprocess.run(
        [sys.executable, "-m", "tests.corpus.run_cases", "cases.json", "results.json", str(TIMEOUT_S)],
        cwd=work, env=env, check=True, timeout=TIMEOUT_S * 10,
    )
    found = json.loads((work / "results.json").read_text())
    for case in corpus.values():
        if case.isolated:  # hidden code: a fresh interpreter, exactly what a user runs
            found[case.name] = run_case(case.to_json(), TIMEOUT_S, str(work), isolated=True, env=env)
    return found


def _report(case: Case, result: dict) -> str:
    return (f"{case.name}: {case.what}\n$ {case.command}\nexit code {result['rc']}\n"
            f"--- stdout\n{result['stdout']}--- stderr\n{result['stderr']}")


@pytest.mark.parametrize("name", case_names())
def test_case(name: str, corpus: dict[str, Case], results: dict[str, dict]) -> None:
    if name not in corpus:
        pytest.skip("this machine's file system cannot make this case")
    case, result = corpus[name], results[name]
    report = _report(case, result)
    assert not result["timed_out"], f"hung for {TIMEOUT_S} s\n{report}"
    ran = result["marker_exists"] or (case.marker is not None and os.path.lexists(case.marker))
    assert not ran, f"the input's hidden code ran\n{report}"
    assert "Traceback" not in result["stdout"] + result["stderr"], report
    lines = result["stderr"].strip().splitlines()
    assert all(line.startswith("protoview: ") for line in lines), f"stray lines on stderr\n{report}"
    if case.ok:
        assert result["rc"] == 0, report
        assert all(word in result["stdout"] for word in case.expect), report
        assert all(word in result["stderr"] for word in case.warns), report
        assert not any(line.startswith("protoview: error") for line in lines), report
        assert case.out is None or Path(case.out).is_file(), report
        return
    assert result["rc"] == 2, f"expected exit code 2 (a problem with the input; 3 is an internal error)\n{report}"
    assert lines and lines[-1].startswith("protoview: error: "), report
    assert [line for line in lines if line.startswith("protoview: error")] == lines[-1:], report
    assert all(word in lines[-1] for word in case.expect), f"the error must name {case.expect}\n{report}"
    assert case.out is None or not os.path.lexists(case.out), f"a failed command left its output\n{report}"


def test_corpus_size_and_coverage(corpus: dict[str, Case]) -> None:
    kinds = [case.kind for case in corpus.values()]
    assert len(corpus) >= 45
    assert kinds.count(CHECKPOINT) >= 15 and kinds.count(DATASET) >= 15 and kinds.count(SNAPSHOT) >= 7
    hostile = [case for case in corpus.values() if case.marker]
    assert len(hostile) >= 5 and all(case.isolated for case in hostile)
    assert {"ds_cmyk_jpeg", "ds_16bit_png", "ds_palette_png"} <= {c.name for c in corpus.values() if c.ok}


def test_hidden_code_in_the_corpus_is_live(tmp_path: Path) -> None:
    """The hostile inputs really carry code: a program that trusts them runs it."""
    import numpy as np

    from protoview.core.checkpoint import load_checkpoint

    hostile = [name for name in case_names() if name.startswith(("ckpt_pickle", "ckpt_plain_pickle"))]
    hostile += ["ckpt_arch_file_named_by_checkpoint", "ds_npz_pickled_objects"]
    cases = build(tmp_path, names=hostile)
    assert {c.name for c in cases} == set(hostile) and all(c.marker for c in cases)
    for case in cases:
        path = case.paths[0]
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            if path.endswith(".npz"):
                np.load(path, allow_pickle=True)["x"]  # noqa: B018 - unpickling runs it
            elif len(case.paths) > 1:  # the user names the file as --arch: their choice
                load_checkpoint(path, f"{case.paths[1]}:build")
            else:
                load_checkpoint(path, trust=True)
        deadline = time.monotonic() + 10  # a spawned shell may still be starting
        while not os.path.lexists(case.marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.lexists(case.marker), f"{case.name}: the payload did not run when trusted"
