"""The accuracy chart's runs side by side (private): the earlier runs' online accuracy curves
beside the current run's, one colour, dash and legend entry each; the vertical lines where
the current run's stream changes shift (continual streams), named by the domain, and where
a new pass of the stream starts (the online accuracy pools over a pass, so it restarts
there: the curves break at the line instead of joining the passes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from protoview.gui.panels._plots import ChartLegend, LegendEntry

#: Colours of the other runs: none is the current run's blue / orange / green or the
#: unadapted model's grey, and neighbours in the list are far apart in hue.
RUN_COLORS = ("#d62728", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
#: Dash patterns of the other runs, cycled beside the colours (12 runs before a repeat).
RUN_DASHES = (QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenStyle.DashLine,
              QtCore.Qt.PenStyle.DotLine, QtCore.Qt.PenStyle.DashDotLine)
#: At most this many earlier runs are drawn (the most recent ones).
MAX_RUN_CURVES = 8
CURRENT_WIDTH, OTHER_WIDTH = 2.6, 1.6  # the current run stands out
POINT_SIZE = 7.0  # the marker of a point that no line reaches (one step, a pass's first)
SHIFT_COLOR = "#555555"
PASS_COLOR = "#8a8a8a"


def run_pen(number: int) -> QtGui.QPen:
    """The pen of run ``number`` (1-based) drawn beside the current one: its own colour
    and dash for as long as the session keeps it."""
    k = max(int(number) - 1, 0)
    pen = pg.mkPen(RUN_COLORS[k % len(RUN_COLORS)], width=OTHER_WIDTH)
    pen.setStyle(RUN_DASHES[k % len(RUN_DASHES)])
    return pen


def pass_starts(history) -> list[tuple[int, int]]:
    """``(step, pass_index)`` of each row that starts a new pass of the stream (not the
    first pass); rows of an unknown pass (-1, older snapshots) start none."""
    out, last = [], None
    for row in history:
        k = int(getattr(row, "pass_index", -1))
        if k >= 0 and last is not None and last >= 0 and k != last:
            out.append((int(row.step), k))
        last = k
    return out


def draw_curve(item: pg.PlotDataItem, history, values, color: str) -> None:
    """Draw ``values`` (one per row of ``history``) on ``item``: a line within each pass,
    broken where a pass starts, NaN left out, and a marker on every point that no line
    reaches (after one step, or on a pass's first step)."""
    steps = np.array([float(h.step) for h in history], np.float64)
    y = np.asarray(values, np.float64)
    passes = np.array([int(getattr(h, "pass_index", -1)) for h in history], np.int64)
    ok = np.isfinite(y)
    steps, y, passes = steps[ok], y[ok], passes[ok]
    n = len(steps)
    connect = np.ones(n, bool)
    if n:
        new_pass = (passes[1:] != passes[:-1]) & (passes[1:] >= 0) & (passes[:-1] >= 0)
        connect[:-1] = ~new_pass
        connect[-1] = False
    reached = np.zeros(n, bool)  # a line touches the point
    reached[:-1] |= connect[:-1]
    reached[1:] |= connect[:-1]
    if reached.all():
        item.setData(steps, y, connect=connect, symbol=None)
    else:
        item.setData(steps, y, connect=connect, symbol="o",
                     symbolSize=np.where(reached, 0.0, POINT_SIZE), symbolPen=None,
                     symbolBrush=color)


class RunOverlay:
    """Owns the extra items of one accuracy plot and its legend entries.

    ``current``: the legend entries of the current run's curves, in legend order (the
    online one renamed after the run, all of them bold, when other runs are shown).
    """

    def __init__(self, plot: pg.PlotWidget, legend: ChartLegend,
                 current: list[LegendEntry]) -> None:
        self.plot, self.legend, self.current = plot, legend, list(current)
        self.curves: list[pg.PlotDataItem] = []
        self.drawn: list = []  # the other runs drawn (the last MAX_RUN_CURVES with steps)
        self.lines: list[pg.InfiniteLine] = []  # shift marks
        self.pass_lines: list[pg.InfiniteLine] = []
        self._legend_key: tuple | None = None
        self.text_scale = 1.0
        self.font = QtGui.QFont()
        view = plot.getViewBox()
        view.sigResized.connect(self._fit_names)
        view.sigXRangeChanged.connect(self._fit_names)

    # ---------------------------------------------------------------- runs
    def set_runs(self, runs, current: int, visible_current: list[bool]) -> float:
        """Draw the runs other than ``current`` (their online accuracy); returns the
        largest step drawn. ``visible_current``: which current curves have data."""
        others = [r for r in runs if r.number != current and r.history][-MAX_RUN_CURVES:]
        self.drawn = others
        while len(self.curves) < len(others):
            curve = self.plot.plot([], [])
            curve.setZValue(-1)  # under the current run
            self.curves.append(curve)
        largest = 0.0
        for k, curve in enumerate(self.curves):
            if k >= len(others):
                curve.setData([], [])
                curve.setVisible(False)
                continue
            run = others[k]
            pen = run_pen(run.number)
            curve.setPen(pen)
            draw_curve(curve, run.history, [h.online_accuracy for h in run.history],
                       pen.color().name())
            curve.setVisible(True)
            largest = max(largest, float(run.history[-1].step))
        current_run = next((r for r in runs if r.number == current), None)
        self._legend(others, current_run, visible_current)
        return largest

    def _legend(self, others, current_run, visible_current: list[bool]) -> None:
        both = [*others, *([current_run] if current_run is not None else [])]
        streams = len({r.stream for r in both}) > 1  # name the stream only when they differ
        label = current_run.name(streams) if current_run is not None else ""
        names = tuple((r.number, r.name(streams)) for r in others)
        key = (names, label, tuple(visible_current))
        if key == self._legend_key:
            return
        self._legend_key = key
        entries = []
        for entry, shown in zip(self.current, visible_current, strict=True):
            if not shown and others:
                continue
            text = entry.text
            if others and label and text.startswith("online"):
                text = f"{label} (online)"
            entries.append(replace(entry, text=text, strong=bool(others)))
        entries += [LegendEntry(name, run_pen(number)) for number, name in names]
        self.legend.set_entries(entries)

    # ---------------------------------------------------------------- marks
    def set_marks(self, marks: list[tuple[int, str]]) -> None:
        """Vertical lines at ``(step, domain)``: just before the step whose batch holds the
        domain's first samples; named at the top."""
        self._place(self.lines, [(s, f" {name} ") for s, name in marks], SHIFT_COLOR,
                    QtCore.Qt.PenStyle.DotLine, 0.985, 0)

    def set_passes(self, starts: list[tuple[int, int]]) -> None:
        """Vertical lines just before each step that starts a pass, ``(step, pass_index)``
        (0-based), named "pass 2", ... at the bottom."""
        self._place(self.pass_lines, [(s, f" pass {k + 1} ") for s, k in starts], PASS_COLOR,
                    QtCore.Qt.PenStyle.DashLine, 0.02, 1)

    def _place(self, lines: list[pg.InfiniteLine], marks: list[tuple[int, str]], color: str,
               style, position: float, bottom: int) -> None:
        while len(lines) < len(marks):
            # the name's side is chosen by _fit_names
            line = pg.InfiniteLine(
                angle=90, movable=False, pen=pg.mkPen(color, width=1, style=style),
                label="", labelOpts={"position": position, "color": color,
                                     "anchors": [(0, bottom), (1, bottom)]})
            line.label.setFont(self.font)
            self.plot.addItem(line, ignoreBounds=True)
            lines.append(line)
        for k, line in enumerate(lines):
            if k < len(marks):
                step, text = marks[k]
                line.setValue(step - 0.5)
                line.setVisible(True)  # first: a hidden label ignores new text
                line.label.setFormat(text)
            else:
                line.setVisible(False)
        self._fit_names(rows=(lines,))

    def _fit_names(self, *_args, rows=None) -> None:
        """Each mark's name beside its line where it is whole and covers no other name of
        its row: on the line's right, else its left, else not shown (marks closer than
        their names, many passes on a long run); the lines all stay. ``rows``: the rows of
        marks to fit (default both; a view change moves both)."""
        view = self.plot.getViewBox()
        (x0, x1), _y = view.viewRange()
        width = view.width()
        if width <= 0 or x1 <= x0:
            return
        scale = width / (x1 - x0)
        metrics = QtGui.QFontMetricsF(self.font)
        for lines in rows or (self.lines, self.pass_lines):
            end = -np.inf  # the right end of the last name placed in this row
            for line in sorted((ln for ln in lines if ln.isVisible()), key=lambda ln: ln.value()):
                label = line.label
                x = (line.value() - x0) * scale
                w = metrics.horizontalAdvance(label.format) + 2.0
                if x < 0 or x > width:
                    side = None
                elif x >= end and x + w <= width:
                    side, end = 0, x + w
                elif x - w >= max(end, 0.0):
                    side, end = 1, x
                else:
                    side = None
                if side is None:
                    label.setVisible(False)
                    continue
                anchors = [(side, label.anchors[0][1])] * 2
                if label.isVisible() and label.anchors == anchors:
                    continue  # as it was: the label follows the view by itself
                label.anchors = anchors
                label.setVisible(True)  # places it (and takes a text set while hidden)

    def mark_texts(self) -> list[str]:
        """The shown shift marks' names (for tests)."""
        return [line.label.format.strip() for line in self.lines if line.isVisible()]

    def pass_texts(self) -> list[tuple[float, str]]:
        """The shown pass marks, ``(x, text)`` (for tests)."""
        return [(line.value(), line.label.format.strip()) for line in self.pass_lines
                if line.isVisible()]

    def set_text_scale(self, scale: float, font) -> None:
        self.text_scale, self.font = scale, QtGui.QFont(font)
        for line in (*self.lines, *self.pass_lines):
            line.label.setFont(font)
        self._fit_names()
