"""Numbers → Geometry: measured on the worker, shown from ``shown.geometry``, an error group
selected by a click, "no labels" without labels, the curve along a run, the real demo."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.present import GeometryRequest, StepRequest
from tests.gui.fakes import random_state


def _geometry_result(qtbot, window):
    return qtbot.waitSignal(window.worker.result, timeout=30_000,
                            check_params_cb=lambda res: res.kind == "geometry")


def _numbers(panel) -> dict[str, str]:
    table = panel.numbers
    return {table.item(i, 0).text(): table.item(i, 1).text() for i in range(table.rowCount())}


def test_the_menu_opens_the_view_and_measures_the_map_shown(opened, qtbot) -> None:
    w = opened
    dock, panel = w.geometry_dock, w.geometry
    assert not dock.isVisible() or dock.visibleRegion().isEmpty()  # a tab behind the numbers
    assert "Not measured yet" in panel.header.text() or "Nothing" in panel.header.text()
    with _geometry_result(qtbot, w):
        w.menus.actions["geometry"].trigger()
    assert dock.isVisible()
    assert len(w.shown.geometry) == 1
    g = w.shown.geometry[0]
    numbers = _numbers(panel)
    assert numbers["NC1"] == format(g.report.collapse.nc1, ".4g")
    assert numbers["k-NN accuracy"] == f"{g.report.knn.accuracy:.1%}"
    assert numbers["head accuracy"] == f"{g.report.head_accuracy:.1%}"
    assert numbers["CKA vs source"] == "—"  # the source model itself is shown
    assert "the source model: 300 samples" in panel.header.text()
    # the error groups, the highest error rate first; a click selects one on the map
    groups = g.report.error_groups
    assert panel.errors.rowCount() == len(groups) > 0
    assert panel.errors.item(0, 0).text() == str(groups[0].group)
    rect = panel.errors.visualItemRect(panel.errors.item(0, 1))
    w.geometry.tabs.setCurrentIndex(0)
    qtbot.mouseClick(panel.errors.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     pos=rect.center())
    assert np.array_equal(w.shown.selection, np.sort(groups[0].members))
    assert f"{groups[0].members.size}" in w.selection_label.text()
    # the proxy-to-center cosine of every class, one bar each
    classes, cos = panel.shown_cosines
    assert np.array_equal(classes, np.arange(10)) and np.allclose(
        cos, g.report.collapse.proxy_center_cosine)


def test_a_step_makes_the_measurement_old_and_after_each_step_measures_again(opened,
                                                                           qtbot) -> None:
    w = opened
    panel = w.geometry
    with _geometry_result(qtbot, w):
        w.geometry_dock.open()
    with qtbot.waitSignal(w.worker.result, timeout=5000,
                          check_params_cb=lambda r: r.kind == "step" and not r.partial):
        w.submit(StepRequest(n_steps=1))
    w.geometry_dock.redraw()
    assert "Measure again" in panel.header.text()
    panel.follow.setChecked(True)
    with _geometry_result(qtbot, w):
        w.submit(StepRequest(n_steps=2))
    assert [g.step for g in w.shown.geometry] == [0, 3]
    qtbot.waitUntil(lambda: "Measure again" not in panel.header.text(), timeout=2000)
    numbers = _numbers(panel)
    assert numbers["linear CKA vs source"] == "1.0000"  # the fake's features do not move
    steps, nc1 = panel.nc1_curve.getData()
    assert list(steps) == [0.0, 3.0] and np.all(np.isfinite(nc1))


def test_the_request_takes_the_panel_settings(qtbot) -> None:
    from protoview.gui.panels import GeometryPanel

    panel = GeometryPanel()
    qtbot.addWidget(panel)
    assert panel.request() == GeometryRequest()
    panel.knn_k.setValue(5)
    panel.groups.setValue(7)
    with qtbot.waitSignal(panel.measure_requested) as got:
        qtbot.mouseClick(panel.measure_button, QtCore.Qt.MouseButton.LeftButton)
    assert got.args[0] == GeometryRequest(knn_k=5, kmeans_k=7)


def test_without_labels_the_label_numbers_read_no_labels(window, qtbot, fake_session_cls,
                                                         monkeypatch) -> None:
    state = random_state(120, c=5, p=2)
    state.labels[:] = -1
    state.centers = state.centers[:0]
    state.center_labels = state.center_labels[:0]
    state.centers_embedding = state.centers_embedding[:0]

    def unlabelled(self, n=120):
        fake_session_cls.__base__.__init__(self, n)
        self.state = self.source_state = state

    monkeypatch.setattr(fake_session_cls, "__init__", unlabelled)
    with qtbot.waitSignal(window.worker.result, timeout=5000):
        window.open_demo()
    with _geometry_result(qtbot, window):
        window.geometry_dock.open()
    numbers = _numbers(window.geometry)
    for name in ("head accuracy", "k-NN accuracy", "nearest-center accuracy", "k-means NMI",
                 "k-means ARI"):
        assert numbers[name] == "no labels", name
    assert numbers["NC1"] != "n/a"  # measured on the predicted classes
    assert "predicted classes (no labels)" in window.geometry.header.text()
    assert window.geometry.errors.rowCount() == 0
    assert "no labels" in window.geometry.errors_note.text()


def test_a_snapshot_is_not_measured(opened, qtbot, tmp_path) -> None:
    from protoview.core.snapshot import write_snapshot
    from protoview.core.state import state_to_snapshot

    w = opened
    path = tmp_path / "s.h5"
    write_snapshot(str(path), state_to_snapshot(random_state(50)))
    with qtbot.waitSignal(w.worker.result, timeout=5000,
                          check_params_cb=lambda r: r.kind == "read_snapshot"):
        w.open_snapshot(str(path))
    qtbot.waitUntil(lambda: w.shown.snapshot is not None, timeout=2000)
    w.geometry_dock.open()
    assert not w.geometry.measure_button.isEnabled()
    assert "A snapshot is shown" in w.geometry.header.text()


@pytest.mark.slow
def test_the_real_demo_is_measured_before_and_after_a_step(qtbot, tmp_path) -> None:
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    try:
        with qtbot.waitSignal(w.worker.result, timeout=120_000,
                              check_params_cb=lambda r: r.kind == "open" and not r.partial):
            w.open_demo()
        with _geometry_result(qtbot, w):
            w.geometry_dock.open()
        with qtbot.waitSignal(w.worker.result, timeout=120_000,
                              check_params_cb=lambda r: r.kind in ("step", "probe")
                              and not r.partial):
            w.submit(StepRequest(method="tent", n_steps=1, live=True))
        with _geometry_result(qtbot, w):
            w.geometry_dock.open()
        before, after = w.shown.geometry
        assert (before.run, before.step) == (0, 0) and (after.run, after.step) == (1, 1)
        assert before.comparison is None and 0 < after.comparison.linear_cka <= 1
        numbers = _numbers(w.geometry)
        assert numbers["linear CKA vs source"] == f"{after.comparison.linear_cka:.4f}"
        assert np.isfinite(after.report.knn.accuracy)
    finally:
        w.close()
