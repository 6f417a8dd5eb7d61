"""Save the main screens as PNG: ``python tools/screenshots.py [OUT_DIR] [--gif]`` (or
``python -m tools.screenshots``) from the repository root.

Drives the real window on the built-in demo like a user: the first map, one pass of TSD,
before / after side by side, k-means + Sinkhorn recolouring, a sample's nearest
neighbours in feature space, the map exported as a captioned PNG, presentation mode, the
replay of the exported run, and runs side by side (three runs over a continual stream of
three shifts: ``runs.png``; the map coloured fixed / broken against the unadapted model:
``fixed-broken.png``). Prints the timings it saw (launch to first map, seconds
per step). Runs headless (``QT_QPA_PLATFORM=offscreen`` on a 1600 x 1000 screen unless
``QT_QPA_PLATFORM`` is set, e.g. to ``xcb`` under Xvfb).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _wait(app, window, kind: str, timeout_s: float = 300.0):
    """Process events until the worker delivers a final result of ``kind``."""
    seen = []

    def on_result(res) -> None:
        if res.kind == kind and not getattr(res, "partial", False):
            seen.append(res)

    errors = []
    window.worker.result.connect(on_result)
    window.worker.failed.connect(lambda _job, exc, _tb: errors.append(exc))
    deadline = time.perf_counter() + timeout_s
    try:
        while not seen and not errors:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {kind!r} result after {timeout_s:.0f} s")
            app.processEvents()
            time.sleep(0.005)
    finally:
        window.worker.result.disconnect(on_result)
    if errors:
        raise errors[0]
    _settle(app, window)
    return seen[0]


def _settle(app, window, seconds: float = 0.6) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)
    window.view.finish_animation()
    app.processEvents()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gif = "--gif" in argv
    argv = [a for a in argv if a != "--gif"]
    out = Path(argv[0] if argv else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="protoview-shots-")
    if "QT_QPA_PLATFORM" not in os.environ:
        # a 1600 x 1000 screen (offscreen's default is 800 x 600): presentation mode is
        # full screen, so its picture is as large as a small projector's
        screen = os.path.join(tmp, "screen.json")
        with open(screen, "w", encoding="utf-8") as f:
            json.dump({"screens": [{"name": "shots", "x": 0, "y": 0, "width": 1600,
                                    "height": 1000, "logicalDpi": 96, "logicalBaseDpi": 96,
                                    "dpr": 1}]}, f)
        os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={screen}"
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["protoview"])
    from protoview.gui.window import MainWindow

    t0 = time.perf_counter()
    settings = QtCore.QSettings(os.path.join(tmp, "s.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1500, 920)
    window.show()
    window.open_demo()
    _wait(app, window, "open")
    print(f"launch to first map: {time.perf_counter() - t0:.1f} s")
    window.grab().save(str(out / "demo-map.png"))
    window.geometry_dock.open()  # Numbers → Geometry of the source model: step 0 of its curves
    _wait(app, window, "geometry")
    window.numbers_dock.raise_()

    t1 = time.perf_counter()
    window.adapt_panel.pass_button.click()
    _wait(app, window, "step")
    steps = window.history[-1].step
    print(f"one pass of TSD: {steps} steps in {time.perf_counter() - t1:.1f} s "
          f"({(time.perf_counter() - t1) / steps:.2f} s per step, step to pixels)")
    window.grab().save(str(out / "after-tsd-pass.png"))
    geometry(app, window, out)

    window.controls_dock.hide()  # room for two maps (View → Controls brings it back)
    window.toggle_compare(True)
    _settle(app, window)
    window.compare.view.finish_animation()
    window.grab().save(str(out / "before-after.png"))
    window.toggle_compare(False)
    window.controls_dock.show()
    _settle(app, window)

    window.kmeans_panel.run_button.click()
    _wait(app, window, "kmeans")
    window.sinkhorn_panel.run_button.click()
    _wait(app, window, "sinkhorn")
    window.grab().save(str(out / "sinkhorn.png"))

    # a misclassified sample and its nearest neighbours in feature space
    state = window.state
    wrong = [i for i in range(len(state.labels)) if state.labels[i] != state.predictions[i]]
    window.set_color_mode("prediction")
    window.focus_sample(wrong[len(wrong) // 2] if wrong else 0)
    _settle(app, window)
    window.grab().save(str(out / "neighbours.png"))
    window.export_map(str(out / "map-export.png"), width=1600)
    window.focus_sample(None)
    window.set_color_mode("assignment")

    run_path = os.path.join(tmp, "run.h5")
    window.export_snapshot(run_path)
    _wait(app, window, "write_snapshot")

    window.toggle_presentation(True)
    _settle(app, window)
    window.grab().save(str(out / "presentation.png"))
    window.toggle_presentation(False)

    window.open_snapshot(run_path)
    _wait(app, window, "read_snapshot")
    window.replay_bar.slider.setValue(max(0, len(window.snapshot.timeline) // 2))
    _settle(app, window)
    window.grab().save(str(out / "replay.png"))
    if gif:
        window.export_replay(str(out / "replay.gif"))

    runs_side_by_side(app, window, out)
    window.close()
    print(f"screenshots in {out}")
    return 0


def geometry(app, window, out: Path) -> None:
    """Numbers → Geometry after the pass: the numbers, the k-means group with the highest
    error rate selected on the map by a click on its row."""
    window.geometry_dock.open()
    _wait(app, window, "geometry")
    window.geometry.choose_group(0)
    _settle(app, window)
    window.grab().save(str(out / "geometry.png"))
    window.shown.select([])
    window.numbers_dock.raise_()
    _settle(app, window)


def runs_side_by_side(app, window, out: Path) -> None:
    """Three runs over ``demo:noise,blur,contrast`` in a continual stream, overlaid, and the
    last one's map coloured fixed / broken against the unadapted model."""
    from protoview.present import OpenRequest

    window.submit(OpenRequest(checkpoint="demo:cosine", data="demo:noise,blur,contrast"))
    _wait(app, window, "open")
    panel = window.adapt_panel
    panel.stream.domains.setCurrentText("continual")
    for method, variant in (("none", None), ("t3a", None), ("tsd", "corrected")):
        panel.method.setCurrentText(method)
        if variant:
            panel.variant.setCurrentText(variant)
        panel.pass_button.click()
        _wait(app, window, "step")
    window.set_color_mode("label")
    _settle(app, window)
    window.grab().save(str(out / "runs.png"))
    window.set_color_mode("fixed/broken")
    _settle(app, window)
    window.grab().save(str(out / "fixed-broken.png"))


if __name__ == "__main__":
    # run as a script from a checkout: this checkout's protoview, installed or not
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
