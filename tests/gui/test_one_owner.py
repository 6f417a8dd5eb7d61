"""What one owner for each thing fixes (issue 19): a Step press updates the map once per
model version, Reset shows the launch map, a replayed frame shows its step's numbers, a
job's result is read from its request (not from widgets changed since), and the window
keeps no copy of what it shows."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.present import SinkhornRequest, StepRequest, derive
from tests.gui.fakes import FakeSession


def _wait(qtbot, window, kind: str, action, timeout: int = 120_000) -> list:
    """Run ``action`` and wait for its last result of ``kind``; returns every result."""
    got: list = []
    window.worker.result.connect(got.append)
    try:
        with qtbot.waitSignal(window.worker.result, timeout=timeout,
                              check_params_cb=lambda r: r.kind == kind and not r.partial):
            action()
        qtbot.waitUntil(lambda: not window.numbers_pending, timeout=5000)
    finally:
        window.worker.result.disconnect(got.append)
    return got


@pytest.mark.slow
def test_the_demo_window_step_reset_and_replay(qtbot, tmp_path, monkeypatch):
    """On the real demo: one Step press is two map updates (its batch, then the exact map
    its probe completed) and two results; Reset shows the launch map bit for bit; the run,
    saved and replayed, shows frame by frame the numbers of that step's history row."""
    import protoview.core.projection as projection
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    _wait(qtbot, w, "open", w.open_demo)
    launch = w.state
    calls: list = []
    real = projection.update_map
    monkeypatch.setattr(projection, "update_map", lambda *a, **k: calls.append(1) or real(*a, **k))
    click = lambda button: lambda: qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)  # noqa: E731
    results = [r for r in _wait(qtbot, w, "step", click(w.adapt_panel.step_button))
               if r.kind != "refresh"]
    assert len(calls) == 2 and [r.kind for r in results] == ["step", "step"]
    assert w.map_label.text() == "map of step 1 — exact"
    w.adapt_panel.n_steps.setValue(3)
    _wait(qtbot, w, "step", click(w.adapt_panel.run_button))
    assert [h.step for h in w.history] == [1, 2, 3, 4]
    assert not np.array_equal(w.state.embedding, launch.embedding)

    # the run saved and replayed: every frame's numbers are its step's
    path = tmp_path / "run.h5"
    _wait(qtbot, w, "write_snapshot", lambda: w.export_snapshot(str(path)))
    rows = list(w.history)
    # Reset shows the launch map exactly
    _wait(qtbot, w, "reset", click(w.adapt_panel.reset_button))
    for name in ("embedding", "centers_embedding", "proxies_embedding", "predictions"):
        np.testing.assert_array_equal(getattr(w.state, name), getattr(launch, name))
    assert w.history == [] and w.map_label.text() == ""
    _wait(qtbot, w, "read_snapshot", lambda: w.open_snapshot(str(path)))
    assert w.replay_bar.slider.value() == len(rows) - 1  # it opens on the run's end
    for i, row in reversed(list(enumerate(rows))):
        w.replay_bar.slider.setValue(i) if i < len(rows) - 1 else w.show_frame(i)
        shown = w.state
        assert w.history[-1].step == row.step == shown.attrs["step"]
        assert shown.metrics["accuracy"] == pytest.approx(row.full_accuracy)
        per_class, _ = derive.per_class_and_confusion(shown.labels, shown.predictions, 10)
        bars = w.numbers.class_bars.opts["height"]
        np.testing.assert_allclose(bars, np.nan_to_num(per_class))
        assert f"accuracy {row.full_accuracy:.1%}" in w.numbers.scores.text()
        x, y = w.numbers.full_curve.getData()
        assert list(x) == [h.step for h in rows[: i + 1]]
    w.close()


class _SlowSinkhorn(FakeSession):
    opened_requests: list = []

    def sinkhorn(self, req):
        time.sleep(0.4)
        return super().sinkhorn(req)


def test_a_sinkhorn_result_is_read_from_its_request_not_the_combo(qtbot, tmp_path):
    """Change the target while Sinkhorn runs: the balance chart and the colours still
    describe the job that ran (its request), not the combo box now."""
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=_SlowSinkhorn.open, warm_up=None,
                   raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    _wait(qtbot, w, "open", w.open_demo, timeout=5000)
    panel = w.sinkhorn_panel
    panel.target.setCurrentText("proxies")

    def run_then_change() -> None:
        qtbot.mouseClick(panel.run_button, QtCore.Qt.MouseButton.LeftButton)
        panel.target.setCurrentText("prototypes")  # while the job runs

    _wait(qtbot, w, "sinkhorn", run_then_change, timeout=5000)
    assert w.shown.requests["sinkhorn"] == SinkhornRequest(target="proxies")
    assert "Sinkhorn to the proxies" in w.numbers.balance_label.text()
    assert w.view.assignment_target == "classes" and w.state.assignment_target == "proxies"
    assert w.numbers.balance_plot.getAxis("bottom").labelText == "proxies"
    # a new map holds no Sinkhorn plan: the chart does not keep showing the old one
    _wait(qtbot, w, "step", lambda: w.submit(StepRequest(n_steps=1)), timeout=5000)
    assert w.numbers.balance_label.text().startswith("No Sinkhorn assignment on this map")
    assert len(w.numbers.balance_bars.opts["height"]) == 0
    w.close()


def test_the_window_keeps_no_copy_of_what_it_shows(opened):
    """Everything the window exposes about what it shows is the one model's."""
    w = opened
    for name in ("state", "history", "runs", "current_run", "source_accuracy",
                 "source_state", "snapshot"):
        assert getattr(w, name) is getattr(w.shown, name)
    w.set_color_mode("entropy")
    assert w.shown.colour_mode == "entropy" == w.view.color_mode == w.colour_combo.currentText()
    w.view.select_rect(-100, -100, 100, 100)
    assert np.array_equal(w.shown.selection, w.view.selection) and w.shown.selection.size
    w.focus_sample(3)
    assert w.shown.marked == 3 == w.view.focus_index
    w.view.clear_marks()
    assert w.shown.marked is None and w.shown.selection.size == 0
