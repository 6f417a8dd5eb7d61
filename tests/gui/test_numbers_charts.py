"""The Numbers dock's charts stay readable (issue 20): the accuracy chart's legend under the
plot, never over its curves; run colours apart; one step visible and the last step inside
the plot; passes marked; the tabs never squash the chart; class names elided to their room
with the full name on hover, and reset with the dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from protoview.gui.panels import NumbersPanel
from protoview.gui.panels._plots import ClassAxis
from protoview.gui.panels._run_curves import RUN_COLORS, run_pen
from protoview.present import HistoryRow, RunRecord
from tests.gui.fakes import random_state

SHAPES = ["0_circle", "1_square", "2_triangle", "3_pentagon", "4_hexagon", "5_star", "6_cross",
          "7_crescent", "8_diamond", "9_ellipse"]


def _rows(steps: int, level: float, per_pass: int = 9) -> list[HistoryRow]:
    """A run's rows, its online accuracy pooled over passes of ``per_pass`` steps."""
    return [HistoryRow(s, level + 0.002 * s, level, np.nan, 0.01, pass_index=(s - 1) // per_pass)
            for s in range(1, steps + 1)]


def _panel(qtbot, width: int = 460, height: int = 820) -> NumbersPanel:
    panel = NumbersPanel()
    qtbot.addWidget(panel)
    panel.resize(width, height)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def _settle(qtbot, panel) -> None:
    qtbot.wait(30)
    panel.accuracy_plot.getPlotItem().layout.activate()


def _three_runs() -> list[RunRecord]:
    """tsd and tent near 80 %, lame (the current run) collapsed near 10 %: the lower half of
    the plot, where the legend used to sit."""
    return [RunRecord(1, "tsd", history=_rows(20, 0.78)),
            RunRecord(2, "tent", history=_rows(20, 0.77)),
            RunRecord(3, "lame", history=_rows(20, 0.1))]


def _scene_rect(item) -> QtCore.QRectF:
    return item.mapRectToScene(item.boundingRect())


# ------------------------------------------------------------------ 4. the legend
@pytest.mark.parametrize(("scale", "width"), [(1.0, 460), (1.6, 380)])
def test_the_legend_sits_under_the_plot_never_over_its_curves(qtbot, scale, width) -> None:
    panel = _panel(qtbot, width)
    panel.set_text_scale(scale)  # 1.6: presentation mode's numbers column
    runs = _three_runs()
    panel.set_history(runs[2].history, 0.55, runs, current_run=3)
    _settle(qtbot, panel)
    legend, view = panel.accuracy_legend, panel.accuracy_plot.getViewBox()
    assert legend.texts() == ["#3 lame (online)", "#1 tsd", "#2 tent"]
    legend_rect, view_rect = _scene_rect(legend), view.sceneBoundingRect()
    assert legend_rect.height() > 0
    assert legend_rect.top() >= view_rect.bottom(), (legend_rect, view_rect)  # under the plot
    assert not legend_rect.intersects(view_rect)
    # every entry inside the legend, the legend inside the widget: none clipped
    shown = panel.accuracy_plot.sceneRect()
    assert shown.contains(legend_rect), (shown, legend_rect)
    for _entry, cell, _text in legend.cells:
        assert legend.boundingRect().adjusted(-0.5, -0.5, 0.5, 0.5).contains(cell)
    assert legend.shown_texts() == legend.texts()  # nothing elided at these widths
    assert view_rect.height() > 100  # the plot keeps its room


def test_the_legend_flows_into_the_columns_the_width_holds(qtbot) -> None:
    panel = _panel(qtbot, 700)
    runs = _three_runs()
    panel.set_history(runs[2].history, 0.55, runs, current_run=3)
    _settle(qtbot, panel)
    wide = panel.accuracy_legend.columns
    height = _scene_rect(panel.accuracy_legend).height()
    panel.resize(200, 820)
    _settle(qtbot, panel)
    assert wide == 3 and panel.accuracy_legend.columns == 1
    assert _scene_rect(panel.accuracy_legend).height() > 2 * height
    # a name longer than the whole width is elided, and the tooltip names them all
    runs[0].method = "tsd " + "very long name " * 6
    panel.set_history(runs[2].history, 0.55, runs, current_run=3)
    _settle(qtbot, panel)
    shown = panel.accuracy_legend.shown_texts()
    assert shown[1].endswith("…") and len(shown[1]) < len(panel.accuracy_legend.texts()[1])
    assert panel.accuracy_legend.texts()[1] in panel.accuracy_legend.toolTip()


def _lab(color: QtGui.QColor) -> np.ndarray:
    rgb = np.array([color.redF(), color.greenF(), color.blueF()])
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ lin / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_run_colours_are_distinct_and_the_current_run_stands_out(qtbot) -> None:
    panel = _panel(qtbot)
    current = ["#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"]  # online, full set, probe, unadapted
    colours = [QtGui.QColor(c) for c in (*RUN_COLORS, *current)]
    labs = [_lab(c) for c in colours]
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(labs) for b in labs[i + 1:]]
    assert min(gaps) > 25, min(gaps)  # tsd purple beside tent pink was ~20 apart
    # a run keeps its pen while others come and go; colour and dash together repeat late
    pens = {(run_pen(k).color().name(), run_pen(k).style()) for k in range(1, 13)}
    assert len(pens) == 12
    runs = _three_runs()
    panel.set_history(runs[2].history, 0.55, runs, current_run=3)
    others = [c for c in panel.runs.curves if c.isVisible()]
    assert [c.opts["pen"].color().name() for c in others] == [RUN_COLORS[0], RUN_COLORS[1]]
    assert panel.online_curve.opts["pen"].widthF() > max(c.opts["pen"].widthF() for c in others)
    assert all(c.zValue() < panel.online_curve.zValue() for c in others)
    entries = panel.accuracy_legend.entries
    assert entries[0].strong and not any(e.strong for e in entries[1:])  # the current run, bold


# ------------------------------------------------------------------ 9. chart details
def test_one_step_is_visible_and_the_last_step_lies_inside_the_plot(qtbot) -> None:
    panel = _panel(qtbot)
    rows = _rows(1, 0.8)
    rows[0].full_accuracy = 0.8
    panel.set_history(rows, 0.55, [RunRecord(1, "tsd", history=rows)], current_run=1)
    _settle(qtbot, panel)
    scatter = panel.online_curve.scatter
    assert scatter.isVisible() and list(scatter.data["size"]) == [pytest.approx(7.0)]
    view = panel.accuracy_plot.getViewBox()
    right = view.sceneBoundingRect().right()
    for steps in (1, 20, 500):
        rows = _rows(steps, 0.5)
        panel.set_history(rows, 0.55, [RunRecord(1, "tsd", history=rows)], current_run=1)
        _settle(qtbot, panel)
        at = view.mapViewToScene(QtCore.QPointF(float(steps), 0.5))
        assert at.x() <= right - 4, (steps, at.x(), right)  # a 7 px marker is whole
    # many steps in one pass: a line, no marker
    rows = _rows(30, 0.5, per_pass=100)
    panel.set_history(rows, 0.55, [RunRecord(1, "tsd", history=rows)], current_run=1)
    assert panel.online_curve.opts["symbol"] is None


def test_passes_are_marked_and_the_online_curve_breaks_there(qtbot) -> None:
    panel = _panel(qtbot)
    rows = _rows(19, 0.7)  # demo: 9 steps a pass; step 10 and step 19 start passes
    panel.set_history(rows, 0.55, [RunRecord(1, "tsd", history=rows)], current_run=1)
    assert panel.runs.pass_texts() == [(9.5, "pass 2"), (18.5, "pass 3")]
    _settle(qtbot, panel)
    plot_rect = panel.accuracy_plot.getViewBox().sceneBoundingRect()
    for line in panel.runs.pass_lines:  # "pass 3", one step from the end, is whole
        assert plot_rect.contains(line.label.mapRectToScene(line.label.boundingRect()))
    connect = panel.online_curve.opts["connect"]
    assert connect[8] == 0 and connect[17] == 0 and connect[:8].all() and connect[9:17].all()
    # step 19 begins pass 3 alone: no line reaches it, so it has a marker
    sizes = panel.online_curve.scatter.data["size"]
    assert sizes[-1] > 0 and not sizes[:-1].any()
    # an earlier run breaks at its passes too
    other = RunRecord(1, "tent", history=_rows(19, 0.6))
    panel.set_history(rows, 0.55, [other, RunRecord(2, "tsd", history=rows)], current_run=2)
    assert panel.runs.curves[0].opts["connect"][8] == 0
    # a current run shorter than the others: their passes are marked where they break
    panel.set_history(rows[:5], 0.55, [other, RunRecord(2, "tsd", history=rows[:5])],
                      current_run=2)
    assert panel.runs.pass_texts() == [(9.5, "pass 2"), (18.5, "pass 3")]
    # rows of an unknown pass (an older snapshot): one line, no marks
    old = [HistoryRow(s, 0.7, 0.7, np.nan, 0.01) for s in range(1, 20)]
    panel.set_history(old, 0.55, [], current_run=0)
    assert panel.runs.pass_texts() == [] and panel.online_curve.opts["connect"][:-1].all()


def test_pass_names_never_cover_each_other(qtbot) -> None:
    """A long run, 100 steps of 9-step passes: the names of lines one pass apart met in
    the middle of the plot ("pass 3" on "pass 4"). Each name sits on its line's right, else
    its left, else is left out; every line stays, and the first pass's name is shown."""
    panel = _panel(qtbot)
    rows = _rows(100, 0.7)
    panel.set_history(rows, 0.55, [RunRecord(1, "tsd", history=rows)], current_run=1)
    _settle(qtbot, panel)
    lines = panel.runs.pass_lines
    assert len(panel.runs.pass_texts()) == 11  # passes 2..12: every line drawn
    shown = [ln.label for ln in lines if ln.isVisible() and ln.label.isVisible()]
    assert 2 <= len(shown) < 11 and shown[0].format.strip() == "pass 2"
    plot_rect = panel.accuracy_plot.getViewBox().sceneBoundingRect()
    boxes = [label.mapRectToScene(label.boundingRect()) for label in shown]
    for i, a in enumerate(boxes):
        assert plot_rect.contains(a)
        for b in boxes[i + 1:]:
            assert not a.intersects(b), [label.format for label in shown]
    # wider: more names find room; a short run: all of them
    panel.resize(1400, 820)
    _settle(qtbot, panel)
    assert len([ln for ln in lines if ln.isVisible() and ln.label.isVisible()]) > len(shown)
    rows = _rows(30, 0.7)
    panel.set_history(rows, 0.55, [RunRecord(1, "tsd", history=rows)], current_run=1)
    _settle(qtbot, panel)
    assert [ln.label.format.strip() for ln in lines if ln.isVisible() and ln.label.isVisible()] \
        == ["pass 2", "pass 3", "pass 4"]


# ------------------------------------------------------------------ 5. the tabs
def test_the_tabs_never_squash_the_accuracy_chart(opened, qtbot) -> None:
    w = opened
    w.resize(1400, 900)
    n = w.numbers
    for talk in (False, True):
        w.toggle_presentation(talk)
        qtbot.wait(100)
        heights = {}
        for i in range(n.tabs.count()):
            n.tabs.setCurrentIndex(i)
            qtbot.wait(30)
            heights[n.tabs.tabText(i)] = n.accuracy_plot.height()
        assert len(set(heights.values())) == 1, (talk, heights)  # Balance, Neighbours: same
        assert n.accuracy_plot.height() >= n.accuracy_plot.minimumHeight() > 100
    w.toggle_presentation(False)


# ------------------------------------------------------------------ 10. class names
def _tick_room(axis: ClassAxis) -> float:
    lo, hi = axis.range
    return axis.geometry().width() / (hi - lo)


def test_class_names_are_elided_to_their_room_and_named_on_hover(qtbot) -> None:
    panel = _panel(qtbot, 460)
    s = random_state(300, c=10)
    panel.set_class_names(SHAPES)
    panel.update_numbers(s, [], 0.55)
    _settle(qtbot, panel)
    axis = panel.class_plot.getAxis("bottom")
    labels = axis.tick_labels()
    assert len(labels) == 10
    metrics = QtGui.QFontMetricsF(axis.style["tickFont"])
    room = _tick_room(axis)
    assert all(metrics.horizontalAdvance(t) <= room for t in labels), (labels, room)
    assert any(t.endswith("…") for t in labels)  # too long for ~40 px: elided ...
    # ... and readable
    assert all(t.startswith(name[:3]) for t, name in zip(labels, SHAPES, strict=True))
    assert panel.per_class_text(3.1, 0.5).startswith("3_pentagon: ")  # hover: the full name
    view = panel.class_plot.getViewBox()
    panel.class_plot.scene().sigMouseMoved.emit(view.mapViewToScene(QtCore.QPointF(3, 0.5)))
    assert panel.class_plot.toolTip().startswith("3_pentagon: ")
    assert panel.confusion_text(2, 4).startswith("label 4_hexagon → predicted 2_triangle")
    # wide enough: the whole names
    panel.resize(1500, 820)
    _settle(qtbot, panel)
    assert axis.tick_labels() == SHAPES
    # far too narrow for three letters: the class numbers
    panel.resize(200, 820)
    panel.set_text_scale(1.6)
    _settle(qtbot, panel)
    assert axis.tick_labels()[:3] in (["0", "1", "2"], ["0", "", "2"])


def test_a_new_dataset_resets_every_class_axis(qtbot) -> None:
    panel = _panel(qtbot, 1500)
    panel.set_class_names(SHAPES)
    panel.update_numbers(random_state(300, c=10), [], 0.55)
    panel.show_balance(np.arange(300) % 10, 10, "proxies")
    panel.tabs.setCurrentWidget(panel.balance_tab)
    _settle(qtbot, panel)
    assert panel.class_plot.getAxis("bottom").tick_labels() == SHAPES
    assert panel.balance_plot.getAxis("bottom").tick_labels() == SHAPES
    # an unlabelled folder: other names, no labels
    unlabelled = random_state(300, c=10)
    unlabelled.labels = np.full(300, -1, np.int64)
    names = [f"pred {i}" for i in range(10)]
    panel.set_class_names(names)
    assert panel.confusion_plot.getAxis("bottom").tick_labels() == names  # at once
    panel.update_numbers(unlabelled, [], float("nan"))
    panel.show_balance(None, 0)
    assert panel.class_plot.getAxis("bottom").tick_labels() == []  # no bar, no name
    assert panel.balance_plot.getAxis("bottom").tick_labels() == []
    assert panel.confusion_plot.getAxis("left").tick_labels() == names
    assert panel.per_class_text(1, 0.5) == ""


def test_after_a_talk_the_per_class_legend_is_as_before(qtbot) -> None:
    panel = _panel(qtbot)
    s = random_state(300, c=10)
    panel.set_baseline(s)
    panel.update_numbers(s, [], 0.55)
    qtbot.wait(50)

    def rows():
        return [(label.geometry().height(), label.geometry().top())
                for _s, label in panel.class_legend.items]

    before = rows(), panel.class_legend.geometry().height()
    panel.set_text_scale(1.6)
    qtbot.wait(50)
    assert rows()[0][0] > before[0][0][0]
    panel.set_text_scale(1.0)
    qtbot.wait(50)
    assert (rows(), panel.class_legend.geometry().height()) == before
