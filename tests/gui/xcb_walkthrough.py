"""A user's walk through the real window, run by ``tests/gui/test_xcb.py`` on Qt's real xcb
platform under Xvfb: the demo, steps, save the run, open it, the replay's frames and their
numbers, the map exported as PNG, SVG and PDF. ``python -m tests.gui.xcb_walkthrough OUT``
writes ``OUT/walkthrough.json`` (what it saw) and the exported files; exit 0 when every
check held, 1 with the failed check on stderr otherwise.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path


def _wait(app, window, kind: str, action, timeout_s: float = 300.0) -> list:
    """Run ``action`` and process events until a final result of ``kind`` (or a failure)."""
    got, failed = [], []
    window.worker.result.connect(got.append)
    window.worker.failed.connect(lambda _job, exc, _tb: failed.append(exc))
    action()
    deadline = time.perf_counter() + timeout_s
    while not any(r.kind == kind and not r.partial for r in got):
        if failed:
            raise RuntimeError(f"{kind}: {failed[0]}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no {kind!r} result after {timeout_s:.0f} s")
        app.processEvents()
        time.sleep(0.01)
    for _ in range(30):  # the charts and the glide land in later turns
        app.processEvents()
        time.sleep(0.01)
    return got


def main(out: Path) -> int:
    from PySide6 import QtCore

    from protoview.gui._qt import application
    from protoview.gui.window import MainWindow

    app = application()
    settings = QtCore.QSettings(str(out / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    w.resize(1400, 860)
    w.show()
    seen: dict = {"platform": app.platformName()}
    checks: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(what)
        checks.append(what)

    opens = _wait(app, w, "open", w.open_demo)
    seen["open_results"] = [bool(r.partial) for r in opens if r.kind == "open"]
    check(w.state is not None and w.state.num_samples == 539, "the demo opened")
    w.adapt_panel.n_steps.setValue(4)
    _wait(app, w, "step", w.adapt_panel.run_button.click)
    check([h.step for h in w.history] == [1, 2, 3, 4], "four steps ran")
    check(w.map_label.text() == "map of step 4 — exact", "the map says which step it shows")
    rows = list(w.history)
    snap = out / "run.h5"
    _wait(app, w, "write_snapshot", lambda: w.export_snapshot(str(snap)))
    _wait(app, w, "read_snapshot", lambda: w.open_snapshot(str(snap)))
    check(w.replay_bar.isVisible(), "the replay bar shows")
    seen["frames"] = []
    for i, row in enumerate(rows):
        w.show_frame(i)
        app.processEvents()
        acc = w.state.metrics.get("accuracy", math.nan)
        line = w.numbers.scores.text()
        seen["frames"].append({"step": row.step, "accuracy": acc, "row": row.full_accuracy,
                               "line": line})
        check(w.state.attrs["step"] == row.step, f"frame {i} is step {row.step}")
        check(math.isclose(acc, row.full_accuracy), f"frame {i}'s accuracy is its row's")
        check(f"accuracy {row.full_accuracy:.1%}" in line, f"frame {i}'s numbers line says it")
    for suffix in ("png", "svg", "pdf"):
        path = out / f"map.{suffix}"
        w.export_map(str(path), 1000 if suffix == "png" else None)
        check(path.stat().st_size > 1000, f"the map exported as {suffix.upper()}")
    seen["checks"] = checks
    (out / "walkthrough.json").write_text(json.dumps(seen, indent=1), encoding="utf-8")
    w.close()
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    try:
        sys.exit(main(target))
    except Exception as exc:  # noqa: BLE001 - one line for the test that runs this
        print(f"walkthrough failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
