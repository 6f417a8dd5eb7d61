"""The accuracy chart's runs side by side (private): the earlier runs' online accuracy curves
beside the current run's, one colour and one legend entry each, and the vertical lines
where the current run's stream changes shift (continual streams), named by the domain."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore

#: Colours of the other runs (the current run keeps blue / orange / green).
RUN_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728", "#7f7f7f",
              "#393b79")
#: At most this many earlier runs are drawn (the most recent ones).
MAX_RUN_CURVES = len(RUN_COLORS)
SHIFT_COLOR = "#555555"


class RunOverlay:
    """Owns the extra items of one accuracy plot. ``current_items``: (item, name) of the
    current run's curves, in legend order (renamed after the run when others are shown)."""

    def __init__(self, plot: pg.PlotWidget, legend, current_items: list[tuple[object, str]]) -> None:
        self.plot, self.legend, self.current_items = plot, legend, current_items
        self.curves: list[pg.PlotDataItem] = []
        self.lines: list[pg.InfiniteLine] = []
        self._legend_key: tuple | None = None
        self.text_scale = 1.0

    # ---------------------------------------------------------------- runs
    def set_runs(self, runs, current: int, visible_current: list[bool]) -> float:
        """Draw the runs other than ``current`` (their online accuracy); returns the
        largest step drawn. ``visible_current``: which current items have data."""
        others = [r for r in runs if r.number != current and r.history][-MAX_RUN_CURVES:]
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
            steps = [float(h.step) for h in run.history]
            curve.setData(steps, [h.online_accuracy for h in run.history])
            curve.setPen(pg.mkPen(RUN_COLORS[k % len(RUN_COLORS)], width=1.6))
            curve.setVisible(True)
            largest = max(largest, max(steps))
        current_run = next((r for r in runs if r.number == current), None)
        self._legend(others, current_run, visible_current)
        return largest

    def _legend(self, others, current_run, visible_current: list[bool]) -> None:
        both = [*others, *([current_run] if current_run is not None else [])]
        streams = len({r.stream for r in both}) > 1  # name the stream only when they differ
        label = current_run.name(streams) if current_run is not None else ""
        names = tuple(r.name(streams) for r in others)
        key = (names, label, tuple(visible_current), self.text_scale)
        if key == self._legend_key:
            return  # a rebuild costs ~15 ms an entry: only when the runs change
        self._legend_key = key
        self.legend.clear()
        for (item, name), shown in zip(self.current_items, visible_current, strict=True):
            if not shown and others:
                continue
            if others and label and name.startswith("online"):
                name = f"{label} (online)"
            self.legend.addItem(item, name)
        for k, name in enumerate(names):
            self.legend.addItem(self.curves[k], name)
        self.legend.setColumnCount(2 if len(others) + len(self.current_items) > 6 else 1)

    # ---------------------------------------------------------------- shift marks
    def set_marks(self, marks: list[tuple[int, str]]) -> None:
        """Vertical lines at ``(step, domain)``: just before the step whose batch holds the
        domain's first samples."""
        while len(self.lines) < len(marks):
            line = pg.InfiniteLine(
                angle=90, movable=False,
                pen=pg.mkPen(SHIFT_COLOR, width=1, style=QtCore.Qt.PenStyle.DotLine),
                label="", labelOpts={"position": 0.985, "color": SHIFT_COLOR,
                                     "anchors": [(0, 0), (0, 0)]})
            self.plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)
        for k, line in enumerate(self.lines):
            if k < len(marks):
                step, name = marks[k]
                line.setValue(step - 0.5)
                line.setVisible(True)  # first: a hidden label ignores new text
                line.label.setFormat(f" {name}")
            else:
                line.setVisible(False)

    def mark_texts(self) -> list[str]:
        """The shown marks' names (for tests)."""
        return [line.label.format.strip() for line in self.lines if line.isVisible()]

    def set_text_scale(self, scale: float, font) -> None:
        self.text_scale = scale
        self._legend_key = None
        for line in self.lines:
            line.label.setFont(font)
