"""The window on unlabelled target data: colour falls back to prediction, numbers say "no labels"."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore

from protoview.core.snapshot import read_snapshot, write_snapshot
from protoview.core.state import state_to_snapshot
from tests.gui.fakes import random_state


def _unlabelled_state():
    state = random_state(120, c=5, p=2)
    state.labels[:] = -1
    state.centers = state.centers[:0]
    state.center_labels = state.center_labels[:0]
    state.centers_embedding = state.centers_embedding[:0]
    state.metrics = {"labelled_samples": 0.0}
    return state


def _assert_no_label_view(w) -> None:
    assert w.view.color_mode == "prediction"
    model = w.colour_combo.model()
    enabled = {w.colour_combo.itemText(i): model.item(i).isEnabled() for i in range(w.colour_combo.count())}
    assert enabled == {"label": False, "prediction": True, "assignment": True, "correctness": False, "entropy": True,
                       "fixed/broken": False, "task": False}  # task: a class-incremental timeline's
    assert not w.menus.actions["colour_label"].isEnabled() and w.menus.actions["colour_entropy"].isEnabled()
    modes = {w.next_color_mode() for _ in range(6)}
    assert modes == {"prediction", "assignment", "entropy"}  # L skips the modes that need labels
    scores = w.numbers.scores.text()
    assert "accuracy: no labels" in scores and "%" not in scores and "nan" not in scores.lower()
    assert "no labels" in w.numbers.accuracy_plot.getPlotItem().titleLabel.text
    assert "no labels" in w.numbers.class_plot.getPlotItem().titleLabel.text
    x, _ = w.numbers.class_bars.getData() if hasattr(w.numbers.class_bars, "getData") else (w.numbers.class_bars.opts["x"], None)
    assert len(x) == 0  # no bar that could read as 0%
    w.view.select_rect(-1e3, -1e3, 1e3, 1e3)
    assert "no labels" in w.view.selection_summary() and "predicted" in w.view.selection_summary()


def test_unlabelled_snapshot_in_the_window(window, qtbot, tmp_path):
    path = tmp_path / "unlabelled.h5"
    write_snapshot(path, state_to_snapshot(_unlabelled_state()))
    window.show_snapshot(read_snapshot(path))
    _assert_no_label_view(window)
    # a labelled snapshot afterwards offers every mode again
    labelled = tmp_path / "labelled.h5"
    write_snapshot(labelled, state_to_snapshot(random_state(60, c=3)))
    window.show_snapshot(read_snapshot(labelled))
    assert window.view.selection.size == 0  # the 120-sample selection does not outlive its samples
    assert window.view.selection_summary().startswith("No selection")
    model = window.colour_combo.model()
    assert all(model.item(i).isEnabled() for i in range(window.colour_combo.count())
               if window.colour_combo.itemText(i) != "task")  # task: timelines with tasks
    window.set_color_mode("label")
    assert "no labels" not in window.numbers.accuracy_plot.getPlotItem().titleLabel.text


@pytest.mark.slow
def test_real_window_on_an_unlabelled_folder(qtbot, tmp_path):
    """The real session on a folder of images without class folders; one TSD step."""
    from protoview.core.demo import demo_arrays
    from protoview.gui.window import MainWindow
    from protoview.present import OpenRequest

    images, _ = demo_arrays(part="test", shift="noise", severity=3, seed=0)
    folder = tmp_path / "target"
    folder.mkdir()
    for i, image in enumerate(images[:80]):
        Image.fromarray((np.clip(image[0], 0, 1) * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    try:
        with qtbot.waitSignal(w.worker.result, timeout=240_000, check_params_cb=lambda r: r.kind == "open"):
            w.submit(OpenRequest(checkpoint="demo", data=str(folder)))
        qtbot.waitUntil(lambda: "no labels" in w.numbers.scores.text(), timeout=5000)
        assert w.state.num_samples == 80 and len(w.state.centers) == 0
        assert "no labels" in w.status_label.text()
        _assert_no_label_view(w)
        w.set_color_mode("prediction")
        with qtbot.waitSignal(w.worker.result, timeout=240_000,
                              check_params_cb=lambda r: r.kind == "step" and not r.partial):
            qtbot.mouseClick(w.adapt_panel.step_button, QtCore.Qt.MouseButton.LeftButton)
        assert [h.step for h in w.history] == [1] and np.isnan(w.history[0].online_accuracy)
        qtbot.waitUntil(lambda: "no labels" in w.numbers.scores.text(), timeout=5000)
        assert "%" not in w.numbers.scores.text() and w.view.color_mode == "prediction"
    finally:
        w.close()
