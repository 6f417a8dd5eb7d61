"""The charts' pieces (private to :mod:`protoview.gui.panels`): a plot with whole-number
ticks, class names as ticks, and the counts written in the confusion matrix's cells."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

MAX_NAMED_TICKS = 20  # more classes than this: numbered ticks


class IntegerAxis(pg.AxisItem):
    """An axis that only ticks whole numbers (steps, classes, targets): never 0.1-0.9."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph override
        levels = [(spacing, [v for v in values if float(v).is_integer()])
                  for spacing, values in super().tickValues(minVal, maxVal, size)
                  if spacing >= 1]
        levels = [lv for lv in levels if lv[1]]
        if not levels:
            lo, hi = math.ceil(minVal), math.floor(maxVal)
            levels = [(1.0, [float(v) for v in range(lo, hi + 1)])] if hi >= lo else []
        return levels


def make_plot(title: str, left: str, bottom: str, integer_x: bool = True) -> pg.PlotWidget:
    axes = {"bottom": IntegerAxis("bottom")} if integer_x else {}
    w = pg.PlotWidget(title=title, axisItems=axes)
    w.setMenuEnabled(False)
    w.setLabel("left", left)
    w.setLabel("bottom", bottom)
    w.showGrid(x=True, y=True, alpha=0.25)
    w.getPlotItem().hideButtons()
    return w


def class_ticks(n: int, names: list[str]) -> list | None:
    if n > MAX_NAMED_TICKS:
        return None
    return [[(float(i), names[i] if i < len(names) else str(i)) for i in range(n)]]


class CellCounts(pg.GraphicsObject):
    """The counts written in the confusion matrix's cells, painted by one item: dark
    text on the bright (yellow) cells, white on the dark ones."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[tuple[str, float, float, bool]] = []  # text, column, row, bright
        self._font = QtGui.QFont()
        self.setZValue(5)

    def set_counts(self, counts, font: QtGui.QFont) -> None:
        self.counts, self._font = list(counts), QtGui.QFont(font)
        self.prepareGeometryChange()
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt override
        rect = self.viewRect()
        return QtCore.QRectF() if rect is None else rect

    def paint(self, p, *_args) -> None:
        tr = p.transform()
        p.save()
        p.resetTransform()
        p.setFont(self._font)
        h = QtGui.QFontMetricsF(self._font).height()
        for text, x, y, bright in self.counts:
            at = tr.map(QtCore.QPointF(x, y))
            p.setPen(QtGui.QColor("#000000" if bright else "#ffffff"))
            p.drawText(QtCore.QRectF(at.x() - 3 * h, at.y() - h, 6 * h, 2 * h),
                       int(QtCore.Qt.AlignmentFlag.AlignCenter), text)
        p.restore()
