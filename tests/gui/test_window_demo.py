"""The real window on the real demo, driven through its controls like a user would."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.core.snapshot import read_snapshot

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_window(qtbot, tmp_path):
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def _wait_result(qtbot, window, kind: str, timeout: int = 120_000, final: bool = True):
    got = []

    def check(res) -> bool:
        ok = res.kind == kind and (not final or not res.partial)
        if ok:
            got.append(res)
        return ok

    return qtbot.waitSignal(window.worker.result, timeout=timeout, check_params_cb=check), got


def test_demo_journey_step_sinkhorn_export_replay(demo_window, qtbot, tmp_path, monkeypatch):
    w = demo_window
    blocker, _ = _wait_result(qtbot, w, "open")
    with blocker:
        w.open_demo()
    before = w.state
    assert before.num_samples == 539 and len(w.state.proxies) == 30
    sample_item = w.view.layers["samples"] if hasattr(w.view, "layers") else None
    acc0 = w.state.metrics["accuracy"]

    # one TSD step through the button: accuracy, chart and map move
    blocker, _ = _wait_result(qtbot, w, "step")
    with blocker:
        qtbot.mouseClick(w.adapt_panel.step_button, QtCore.Qt.MouseButton.LeftButton)
    assert [h.step for h in w.history] == [1]
    qtbot.waitUntil(lambda: w.numbers.history_points() == 1, timeout=2000)
    # run a few more steps, the accuracy of the adapted model rises above the source's
    w.adapt_panel.n_steps.setValue(4)
    blocker, _ = _wait_result(qtbot, w, "step")
    with blocker:
        qtbot.mouseClick(w.adapt_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.history[-1].step == 5
    assert w.state.metrics["accuracy"] > acc0
    assert not np.allclose(w.state.embedding, before.embedding)
    # the numbers panel shows the adapted accuracy next to the unadapted one
    now = f"accuracy {w.state.metrics['accuracy']:.1%}"
    qtbot.waitUntil(lambda: now in w.numbers.scores.text(), timeout=2000)
    assert f"unadapted {acc0:.1%}" in w.numbers.scores.text()
    assert w.numbers.history_points() == 5

    # k-means then Sinkhorn to the prototypes: the map recolours by assignment
    blocker, _ = _wait_result(qtbot, w, "kmeans")
    with blocker:
        qtbot.mouseClick(w.kmeans_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.state.prototypes.shape == (10, 64)
    blocker, _ = _wait_result(qtbot, w, "sinkhorn")
    with blocker:
        qtbot.mouseClick(w.sinkhorn_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.view.color_mode == "assignment"
    texts = [label.text for _sample, label in w.view.legend.items]
    # groups are named by their prototype and the class they match ("P0 ≈ 6")
    assert "prototypes (10)" in texts and any(t.startswith("P0") for t in texts)
    assert "0" not in texts
    assert np.array_equal(w.view.sample_codes(), w.state.assignment)
    assert np.bincount(w.state.assignment, minlength=10).min() > 0
    del sample_item

    # export the run, then open it without the model and replay the timeline
    path = tmp_path / "run.h5"
    blocker, _ = _wait_result(qtbot, w, "write_snapshot")
    with blocker:
        w.export_snapshot(str(path))
    snap = read_snapshot(path)
    assert list(snap.history["step"]) == [1, 2, 3, 4, 5]
    assert len(snap.timeline) == 5
    blocker, _ = _wait_result(qtbot, w, "read_snapshot")
    with blocker:
        w.open_snapshot(str(path))
    assert w.snapshot is not None and w.replay_bar.isVisible()
    assert not w.adapt_panel.isEnabled()
    w.show_frame(0)
    w.view.finish_animation()
    np.testing.assert_allclose(w.view.state.embedding, snap.timeline[0]["embedding"])
    png = tmp_path / "map.png"
    w.export_map(str(png), width=800)
    assert png.stat().st_size > 1000

    # the replay as an animated GIF (one image per recorded step) and as an MP4
    from PIL import Image

    gif = tmp_path / "replay.gif"
    assert w.export_replay(str(gif)) == 5
    with Image.open(gif) as im:
        assert im.n_frames == 5
    from protoview.gui.window import _replay as replay

    if replay.video_encoder() is not None:
        mp4 = tmp_path / "replay.mp4"
        assert w.export_replay(str(mp4)) == 5
        assert mp4.read_bytes()[4:8] == b"ftyp"  # an ISO media file
    monkeypatch.setattr(replay, "video_encoder", lambda: None)
    from protoview.errors import SnapshotError

    with pytest.raises(SnapshotError, match="pip install imageio-ffmpeg"):
        w.export_replay(str(tmp_path / "no-encoder.mp4"))

    # presentation mode and back
    assert w.toggle_presentation(True)
    assert w.isFullScreen() or w.presenting
    assert not w.toggle_presentation(False)


def test_bad_checkpoint_then_good_one(demo_window, qtbot, tmp_path):
    w = demo_window
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with qtbot.waitSignal(w.worker.failed, timeout=60_000):
        w.open_files(str(bad), "demo:blur:2")
    assert "broken.pt" in w.last_error
    assert "internal error" not in w.last_error
    w.error_box.hide()
    blocker, _ = _wait_result(qtbot, w, "open")
    with blocker:
        w.open_demo()
    assert w.state.num_samples == 539


def _worst_gap_during_steps(w, n_steps: int) -> tuple[float, float, int]:
    """Run ``n_steps`` through the Run N button while a 10 ms main-thread timer ticks;
    returns (worst gap s, busy s, ticks). Waits in a plain QEventLoop (pytest-qt's
    waitSignal adds its own ~80 ms on exit)."""
    import time

    gaps: list[float] = []
    last = [0.0]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    loop = QtCore.QEventLoop()
    finished = []

    def on_busy(busy: bool) -> None:
        if not busy and w.history:
            finished.append(time.perf_counter())
            loop.quit()

    w.worker.busy.connect(on_busy)
    guard = QtCore.QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    w.adapt_panel.n_steps.setValue(n_steps)
    t0 = last[0] = time.perf_counter()
    timer.start()
    guard.start(120_000)
    w.adapt_panel.run_button.click()
    loop.exec()
    timer.stop()
    guard.stop()
    w.worker.busy.disconnect(on_busy)
    assert finished, "the steps did not finish"
    return max(gaps), finished[0] - t0, len(gaps)


def test_event_loop_stays_responsive_during_real_steps(demo_window, qtbot):
    """A 10 ms timer on the main thread keeps firing while TSD steps run on the worker.

    Two measurements of 6 steps each; the better one must stay under 100 ms (one noisy
    neighbour on a 2-core machine should not decide it; both are printed)."""
    w = demo_window
    blocker, _ = _wait_result(qtbot, w, "open")
    with blocker:
        w.open_demo()
    results = [_worst_gap_during_steps(w, 6) for _ in range(2)]
    assert w.history[-1].step == 12
    for worst, busy, ticks in results:
        print(f"event loop: {ticks} ticks in {busy:.2f} s of steps, worst gap {worst * 1000:.0f} ms")
        assert busy > 0.5, "the steps were too quick to say anything about latency"
    best = min(r[0] for r in results)
    assert best < 0.1, f"the window froze for {best * 1000:.0f} ms during steps"
