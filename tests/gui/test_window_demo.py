"""The real window on the real demo, driven through its controls like a user would."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.core.snapshot import read_snapshot

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_window(qtbot, tmp_path):
    from protoview.gui.main_window import MainWindow

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


def test_demo_journey_step_sinkhorn_export_replay(demo_window, qtbot, tmp_path):
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
    assert w.numbers.history_points() == 1
    # run a few more steps, the accuracy of the adapted model rises above the source's
    w.adapt_panel.n_steps.setValue(4)
    blocker, _ = _wait_result(qtbot, w, "step")
    with blocker:
        qtbot.mouseClick(w.adapt_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.history[-1].step == 5
    assert w.state.metrics["accuracy"] > acc0
    assert not np.allclose(w.state.embedding, before.embedding)
    assert "adapted" in w.numbers.scores.text() or "accuracy" in w.numbers.scores.text()

    # k-means then Sinkhorn to the prototypes: the map recolours by assignment
    blocker, _ = _wait_result(qtbot, w, "kmeans")
    with blocker:
        qtbot.mouseClick(w.kmeans_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.state.prototypes.shape == (10, 64)
    blocker, _ = _wait_result(qtbot, w, "sinkhorn")
    with blocker:
        qtbot.mouseClick(w.sinkhorn_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert w.view.color_mode == "assignment"
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
