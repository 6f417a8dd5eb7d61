"""The window as researchers and speakers use it (issue 16), on the fake session:
exports, layout, keyboard and wheel, presentation mode, replay numbers, charts,
neighbours in feature space, before / after."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from protoview.core.neighbors import feature_neighbors
from tests.gui.fakes import answer_the_export_dialog


def _wait_result(qtbot, w, kind: str, timeout: int = 5000):
    return qtbot.waitSignal(w.worker.result, timeout=timeout,
                            check_params_cb=lambda r: r.kind == kind and not r.partial)


def _step(qtbot, w, n: int = 1):
    w.adapt_panel.n_steps.setValue(n)
    with _wait_result(qtbot, w, "step"):
        (w.adapt_panel.step_button if n == 1 else w.adapt_panel.run_button).click()
    qtbot.wait(20)


def _kmeans_sinkhorn(qtbot, w):
    with _wait_result(qtbot, w, "kmeans"):
        w.kmeans_panel.run_button.click()
    with _wait_result(qtbot, w, "sinkhorn"):
        w.sinkhorn_panel.run_button.click()
    qtbot.wait(20)


# ------------------------------------------------------------------ 1. exports
def test_svg_export_writes_a_file_that_opens(opened, qtbot, tmp_path, monkeypatch):
    """It asked for a PNG width, failed with a ValueError on stderr, and still said
    'exported'. Now: no width asked, a vector file that an SVG reader opens."""
    from PySide6 import QtSvg

    w = opened
    path = tmp_path / "map.svg"
    answer_the_export_dialog(monkeypatch, path, "SVG drawing (*.svg)", "an SVG")
    w.choose_export_map()
    assert w.status_label.text() == f"map exported: {path}"
    renderer = QtSvg.QSvgRenderer(str(path))
    assert renderer.isValid()
    text = path.read_text()
    assert text.count("<path") >= len(w.state.embedding)  # every sample a vector glyph
    assert "<image" not in text
    # a failing export says so (status + dialog), never "exported"
    bad = tmp_path / "no-such-folder" / "map.svg"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(bad), "SVG drawing (*.svg)"))
    w.choose_export_map()
    assert "exported" not in w.status_label.text()
    assert str(bad) in w.last_error and w.error_box.isVisible()
    w.error_box.hide()


def _ink(image: QtGui.QImage, box: tuple[float, float, float, float]) -> float:
    """Share of dark pixels in ``box`` (fractions of the image: x0, y0, x1, y1)."""
    img = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    arr = arr.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)
    x0, y0, x1, y1 = (int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h))
    return float((arr[y0:y1, x0:x1].mean(axis=2) < 110).mean())


def test_png_export_keeps_the_legend_in_proportion_and_has_a_caption(opened, qtbot, tmp_path):
    """At 1920 px the legend kept its 11 px text. Now the picture is drawn at the
    export size: the legend, names and glyphs keep their share of the image."""
    from protoview.gui.window._export import render_map

    w = opened
    _step(qtbot, w)
    w.view.finish_animation()
    small = render_map(w.view, w.view.width())
    big = render_map(w.view, 3 * w.view.width())
    assert big.width() == 3 * w.view.width()
    legend_box = (0.0, 0.0, 0.35, 0.25)
    a, b = _ink(small, legend_box), _ink(big, legend_box)
    assert a > 0.005 and 0.5 < b / a < 2.0, (a, b)  # an unscaled legend: b / a ~ 1/9
    path = tmp_path / "map.png"
    assert w.export_map(str(path), width=1200) == str(path)
    image = QtGui.QImage(str(path))
    assert image.width() == 1200
    assert _ink(image, (0.0, 0.93, 0.25, 1.0)) > 0.3  # the caption's dark box


def test_caption_names_method_step_and_accuracy():
    from protoview.present.derive import caption_text
    from tests.gui.fakes import random_state

    s = random_state(50)
    s.attrs.update(method="tsd", params={"variant": "corrected", "lr": 1e-4}, step=7)
    s.metrics["accuracy"] = 0.8123
    assert caption_text(s, 0.55) == "tsd (corrected) · step 7 · accuracy 81.2% (unadapted 55.0%)"
    s.attrs.update(method="none", params={}, step=0)
    assert caption_text(s, 0.55).startswith("source model · step 0 · accuracy 81.2%")
    assert caption_text(None) == ""


# ------------------------------------------------------------------ 4. clearing
def test_highlight_and_selection_text_go_with_new_runs_and_snapshots(opened, qtbot, tmp_path):
    w = opened
    w.view.highlight("centers", 1)
    assert w.highlight_label.full_text().startswith("class center")
    _step(qtbot, w)
    assert w.highlight_label.full_text() == ""
    w.view.select_rect(-100, -100, 100, 100)
    assert "selected" in w.selection_label.full_text()
    snap = tmp_path / "run.h5"
    with _wait_result(qtbot, w, "write_snapshot"):
        w.export_snapshot(str(snap))
    with _wait_result(qtbot, w, "read_snapshot"):
        w.open_snapshot(str(snap))
    assert w.view.selection.size == 0 and "No selection" in w.selection_label.full_text()


# ------------------------------------------------------------------ 5. layout
def test_long_selection_text_never_widens_the_window(opened, qtbot):
    w = opened
    w.resize(1400, 860)
    qtbot.wait(50)
    before = (w.width(), w.numbers_dock.width(), w.centralWidget().minimumSizeHint().width())
    w.selection_label.setText("12345 selected · accuracy 55.5% · classes " + ", ".join(
        f"class number {i}: 3%" for i in range(60)))
    qtbot.wait(50)
    after = (w.width(), w.numbers_dock.width(), w.centralWidget().minimumSizeHint().width())
    assert after == before
    assert w.selection_label.shown_text().endswith("…")
    assert "class number 59" in w.selection_label.toolTip()
    # the Numbers titles fit their plots
    for plot in w.numbers.plots():
        title = plot.getPlotItem().titleLabel
        assert title.item.boundingRect().width() <= plot.width(), title.text


def test_the_balance_chart_is_in_view_after_sinkhorn(opened, qtbot):
    w = opened
    _kmeans_sinkhorn(qtbot, w)
    assert w.numbers.tabs.currentWidget() is w.numbers.balance_tab
    assert w.numbers.balance_plot.isVisible()
    assert not w.controls_dock.widget().isAncestorOf(w.numbers.balance_plot)
    heights = w.numbers.balance_bars.opts["height"]
    assert int(np.sum(heights)) == len(w.state.labels)


def _wheel(widget, steps: int = -3) -> None:
    pos = QtCore.QPointF(widget.width() / 2, widget.height() / 2)
    ev = QtGui.QWheelEvent(pos, QtCore.QPointF(widget.mapToGlobal(pos.toPoint())),
                           QtCore.QPoint(0, 0), QtCore.QPoint(0, 120 * steps),
                           QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
                           QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(widget, ev)


def test_the_wheel_scrolls_the_controls_instead_of_changing_spin_boxes(opened, qtbot):
    w = opened
    w.resize(1200, 500)  # the controls need their scroll bar
    qtbot.wait(50)
    eps = w.sinkhorn_panel.epsilon
    scroll = w.controls_dock.widget().verticalScrollBar()
    assert scroll.maximum() > 0
    w.view.setFocus()
    value, pos = eps.value(), scroll.value()
    _wheel(eps, -3)
    assert eps.value() == value  # was 0.05 -> 0.0001 while scrolling the panel
    assert scroll.value() > pos
    assert eps.focusPolicy() == QtCore.Qt.FocusPolicy.StrongFocus
    eps.setFocus()
    qtbot.waitUntil(eps.hasFocus, timeout=1000)
    _wheel(eps, 1)
    assert eps.value() != value  # a focused spin box still takes the wheel


# ------------------------------------------------------------------ 10. focus
def test_space_and_l_work_while_a_spin_box_has_focus(opened, qtbot):
    w = opened
    w.activateWindow()
    lr = w.adapt_panel.lr
    lr.setFocus()
    qtbot.waitUntil(lr.hasFocus, timeout=1000)
    text = lr.text()
    with _wait_result(qtbot, w, "step"):
        qtbot.keyClick(lr, QtCore.Qt.Key.Key_Space)
    assert [h.step for h in w.history] == [1]
    mode = w.view.color_mode
    qtbot.keyClick(lr, QtCore.Qt.Key.Key_L)
    assert w.view.color_mode != mode
    assert lr.text() == text  # nothing typed into it
    # digits still type into the spin box (they are no shortcut there)
    n = w.adapt_panel.n_steps
    n.setFocus()
    qtbot.waitUntil(n.hasFocus, timeout=1000)
    n.selectAll()
    qtbot.keyClicks(n, "3")
    assert n.value() == 3 and w.view.layer_visible("prototypes")


def test_recent_files_after_saving_a_snapshot(opened, qtbot, tmp_path):
    w = opened
    assert not w.recent_menu.isEnabled()
    path = tmp_path / "run.h5"
    with _wait_result(qtbot, w, "write_snapshot"):
        w.export_snapshot(str(path))
    assert w.recent_menu.isEnabled() and str(path) in w.recent_files()


# ------------------------------------------------------------------ 7. presentation
def test_presentation_mode_is_talk_ready_and_leaves_the_window_as_it_was(opened, qtbot):
    w = opened
    w.resize(1400, 860)
    qtbot.wait(50)
    font = w.font().pointSizeF()
    legend_size = w.view.legend.opts["labelTextSize"]
    assert w.toggle_presentation(True)
    qtbot.wait(50)
    assert not w.menuBar().isVisible() and not w.controls_dock.isVisible()
    assert w.numbers_dock.isVisible()
    assert w.numbers_dock.width() <= 0.36 * w.width()
    assert w.font().pointSizeF() >= 1.5 * font
    assert w.view.text_scale >= 1.5 and w.view.glyph_scale >= 1.5
    assert float(w.view.legend.opts["labelTextSize"][:-2]) >= 1.5 * float(legend_size[:-2])
    assert w.view.show_names
    assert not w.cancel_button.isVisible()  # idle: no bright Cancel
    tick = w.numbers.accuracy_plot.getAxis("left").style["tickFont"]
    assert tick is not None and tick.pointSizeF() >= 1.5 * 8.5 * 0.99
    # every shortcut still works without the menu bar
    assert w.menus.actions["step"] in w.actions()
    assert not w.toggle_presentation(False)
    qtbot.wait(50)
    assert w.menuBar().isVisible() and w.controls_dock.isVisible()
    assert w.font().pointSizeF() == pytest.approx(font)
    assert w.view.legend.opts["labelTextSize"] == legend_size


# ------------------------------------------------------------------ 8. replay
def test_replay_frames_show_only_their_own_numbers_and_a_legend_with_text(opened, qtbot, tmp_path):
    w = opened
    _step(qtbot, w, 3)
    _kmeans_sinkhorn(qtbot, w)
    assert "NMI" in w.numbers.scores.text()
    path = tmp_path / "run.h5"
    with _wait_result(qtbot, w, "write_snapshot"):
        w.export_snapshot(str(path))
    with _wait_result(qtbot, w, "read_snapshot"):
        w.open_snapshot(str(path))
    texts = [label.text for _s, label in w.view.legend.items]
    assert texts and all(t for t in texts if t != "")
    assert any(t.startswith("samples (") for t in texts)
    w.show_frame(0)
    assert "NMI" not in w.numbers.scores.text() and "ARI" not in w.numbers.scores.text()
    assert "accuracy" in w.numbers.scores.text()
    # the frame predates k-means and Sinkhorn: no prototypes, no assignment on it
    assert len(w.view.state.prototypes_embedding) == 0 and w.view.state.assignment is None


# ------------------------------------------------------------------ 9. charts
def test_charts_integer_steps_confusion_with_counts_and_per_class_baseline(opened, qtbot):
    w = opened
    w.numbers.update_numbers(w.state, [], w.source_accuracy)
    axis = w.numbers.accuracy_plot.getAxis("bottom")
    values = [v for _sp, vs in axis.tickValues(0.0, 1.0, 400) for v in vs]
    assert values and all(float(v).is_integer() for v in values)
    _step(qtbot, w, 2)
    qtbot.waitUntil(lambda: w.numbers.history_points() == 2, timeout=2000)
    # confusion: exactly the classes, counts in the cells, a colour bar
    n = len(w.state.center_labels)
    (x0, x1), (y0, y1) = w.numbers.confusion_plot.getViewBox().viewRange()
    assert (x0, x1) == pytest.approx((-0.5, n - 0.5)) and (y0, y1) == pytest.approx((-0.5, n - 0.5))
    from protoview.present.derive import per_class_and_confusion

    per_class, conf = per_class_and_confusion(w.state.labels, w.state.predictions, n)
    written = {(int(y), int(x)): t for t, x, y, _bright in w.numbers.cell_counts.counts}
    assert written == {(i, j): str(conf[i, j]) for i in range(n) for j in range(n) if conf[i, j]}
    assert w.numbers.confusion_bar.levels() == pytest.approx((0, conf.max()))
    # per class: the unadapted model's bars beside the current ones
    base, _ = per_class_and_confusion(w.source_state.labels, w.source_state.predictions, n)
    assert w.numbers.baseline_bars.isVisible()
    np.testing.assert_allclose(w.numbers.baseline_bars.opts["height"], np.nan_to_num(base))
    np.testing.assert_allclose(w.numbers.class_bars.opts["height"], np.nan_to_num(per_class))
    texts = [label.text for _s, label in w.numbers.class_legend.items]
    assert texts == ["unadapted", "now"]


def test_chart_legends_use_the_theme_text_colour(opened):
    w = opened
    w.set_theme("dark")
    colours = {QtGui.QColor(label.opts["color"]).name() for _s, label in w.view.legend.items}
    assert colours == {"#d0d0d0"}, colours
    assert w.numbers.accuracy_legend.text_color().name() == "#d0d0d0"
    w.set_theme("light")


# ------------------------------------------------------------------ features
def test_clicking_a_sample_lists_its_neighbours_in_feature_space(opened, qtbot):
    w = opened
    w.focus_sample(11)
    nb = feature_neighbors(w.state.features, 11, w.neighbors.k.value())
    listed = [w.neighbors.list.item(i).data(QtCore.Qt.ItemDataRole.UserRole)
              for i in range(w.neighbors.list.count())]
    assert listed == nb.indices.tolist()
    assert not w.neighbors.list.item(0).icon().isNull()  # a thumbnail
    assert w.numbers.tabs.currentWidget() is w.neighbors
    assert w.view.neighbor_indices.tolist() == listed
    x, _y = w.view.marks["links"].getData()
    assert len(x) == 2 * len(listed)
    # picking a neighbour moves the focus there
    w.neighbors.list.itemClicked.emit(w.neighbors.list.item(0))
    assert w.view.focus_index == listed[0]
    # a step moves the features: the list follows
    _step(qtbot, w)
    assert w.neighbors.result is not None and w.neighbors.result.index == listed[0]


def test_go_to_sample_marks_it_and_centres_the_map(opened, qtbot):
    w = opened
    w.goto_edit.setText("42")
    qtbot.keyClick(w.goto_edit, QtCore.Qt.Key.Key_Return)
    assert w.view.focus_index == 42
    (x0, x1), (y0, y1) = w.view._vb.viewRange()
    x, y = w.state.embedding[42]
    assert x0 + 0.45 * (x1 - x0) < x < x0 + 0.55 * (x1 - x0)
    assert y0 + 0.45 * (y1 - y0) < y < y0 + 0.55 * (y1 - y0)
    w.goto_edit.setText("99999")
    qtbot.keyClick(w.goto_edit, QtCore.Qt.Key.Key_Return)
    assert "does not exist" in w.status_label.text() and w.view.focus_index == 42


def test_before_and_after_linked_views(opened, qtbot):
    w = opened
    source = w.state
    _step(qtbot, w, 2)
    assert w.toggle_compare(True)
    before = w.compare.view
    # the "before" is the session's source map (the same map as the window's launch state)
    assert before.isVisible() and np.array_equal(before.state.embedding, source.embedding)
    assert np.array_equal(before.state.predictions, source.predictions)
    assert "before" in w.compare.before_title.text()
    # same colours for the same classes
    w.set_color_mode("label")
    a = [b.color().name() for b in before.items["samples"].data["brush"]]
    b = [b.color().name() for b in w.view.items["samples"].data["brush"]]
    assert a == b
    # hover one: the other rings that sample
    w.view.hovered.emit(5)
    assert before.peer_index == 5 and len(before.marks["peer"].data) == 1
    # select in the 'before' view: the same samples are selected in the 'after' view
    before.select_rect(-100, -100, 0, 100)
    np.testing.assert_array_equal(w.view.selection, before.selection)
    assert "selected" in w.selection_label.full_text()
    # pan together
    w.view._vb.setRange(xRange=(-3, 3), yRange=(-2, 2), padding=0)
    np.testing.assert_allclose(np.ravel(before._vb.viewRange()), [-3, 3, -2, 2])
    assert not w.toggle_compare(False)
    assert not before.isVisible()
