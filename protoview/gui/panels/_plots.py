"""The charts' pieces (private to :mod:`protoview.gui.panels`): a plot with whole-number
ticks, an axis of class names that stay readable (elided to the room each tick has),
a legend laid out under a plot instead of over its curves, and the counts written in
the confusion matrix's cells."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

MAX_NAMED_TICKS = 20  # more classes than this: numbered ticks
ELLIPSIS = "…"
LEFT_MIDDLE = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter


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


class ClassAxis(IntegerAxis):
    """An axis of classes (or Sinkhorn targets) ``0..n-1``, named by ``names``.

    Every class gets a tick; its name is elided to the room the tick has (the width
    between ticks on a horizontal axis, :data:`LEFT_CHARS` average characters on a
    vertical one), and where even a few letters do not fit the ticks fall back to the
    class numbers (the chart's hover text names the class). More than
    :data:`MAX_NAMED_TICKS` classes: whole numbers, thinned as any axis. ``n = 0``: no
    ticks at all (e.g. unlabelled data: no bar to name).
    """

    LEFT_CHARS = 9

    def __init__(self, orientation: str) -> None:
        super().__init__(orientation)
        self.class_count = 0
        self.names: list[str] = []

    def set_classes(self, n: int, names: list[str]) -> None:
        n, names = int(n), list(names)
        if (n, names) == (self.class_count, self.names):
            return
        self.class_count, self.names = n, names
        self.picture = None  # drawn again (as pyqtgraph's setTicks does)
        self.update()

    def name(self, i: int) -> str:
        return self.names[i] if 0 <= i < len(self.names) else str(i)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph override
        n = self.class_count
        minVal, maxVal = sorted((minVal, maxVal))  # noqa: N806 - an inverted axis (confusion)
        if n <= 0:
            return []
        if n > MAX_NAMED_TICKS:
            return [(s, [v for v in vs if 0 <= v < n])
                    for s, vs in super().tickValues(minVal, maxVal, size)]
        return [(1.0, [float(i) for i in range(n) if minVal <= i <= maxVal])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph override
        indices = [int(round(v)) for v in values]
        if self.class_count > MAX_NAMED_TICKS or not values:
            return [str(i) for i in indices]
        metrics = QtGui.QFontMetricsF(self.style["tickFont"] or QtGui.QFont())
        names = [self.name(i) for i in indices]
        return tick_texts(names, indices, metrics, self._room(metrics))

    def _room(self, metrics: QtGui.QFontMetricsF) -> float:
        """Pixels a tick's text may take."""
        lo, hi = self.range
        span = max(abs(hi - lo), 1e-9)
        if self.orientation in ("left", "right"):
            if self.geometry().height() / span < 0.9 * metrics.height():
                return 0.0  # the rows are lower than a line: numbers
            return self.LEFT_CHARS * metrics.averageCharWidth()
        return self.geometry().width() / span - 0.4 * metrics.averageCharWidth()

    def tick_labels(self) -> list[str]:
        """The texts the axis draws now, class by class (for tests)."""
        lo, hi = self.range
        values = [v for _s, vs in self.tickValues(lo, hi, 0) for v in vs]
        return self.tickStrings(values, 1.0, 1.0)


def tick_texts(names: list[str], indices: list[int], metrics: QtGui.QFontMetricsF,
               room: float) -> list[str]:
    """Each name elided to ``room`` pixels; the class numbers where that would leave fewer
    than three letters of an elided name (every k-th number when even numbers crowd)."""
    mode = QtCore.Qt.TextElideMode.ElideRight
    elided = [metrics.elidedText(n, mode, room) if room > 0 else "" for n in names]
    if all(len(e.rstrip(ELLIPSIS)) >= 3 for e, n in zip(elided, names, strict=True) if e != n):
        return elided
    k = max(1, math.ceil(metrics.horizontalAdvance("00") / max(room, 1.0))) if room > 0 else 1
    if room <= 0 and len(indices) > 1:  # a vertical axis whose rows are too low
        k = 2
    return [str(i) if i % k == 0 else "" for i in indices]


def make_plot(title: str, left: str, bottom: str, integer_x: bool = True,
              class_x: bool = False) -> pg.PlotWidget:
    """A plot with its titles; ``class_x``: a :class:`ClassAxis` at the bottom."""
    axes = {"bottom": ClassAxis("bottom")} if class_x else (
        {"bottom": IntegerAxis("bottom")} if integer_x else {})
    w = pg.PlotWidget(title=title, axisItems=axes)
    w.setMenuEnabled(False)
    w.setLabel("left", left)
    w.setLabel("bottom", bottom)
    w.showGrid(x=True, y=True, alpha=0.25)
    w.getPlotItem().hideButtons()
    return w


def scale_chart_text(plots: list[pg.PlotWidget], legends: list, scale: float,
                     base: QtGui.QFont) -> QtGui.QFont:
    """Grow ``plots``' tick labels, axis titles and titles and ``legends``' texts
    (:class:`ChartLegend`) by ``scale`` (a talk; 1.0: as made), in the sizes the numbers'
    charts use (ticks 8.5 pt, titles 10.5 pt, legends 8 pt). Returns the tick font."""
    tick = QtGui.QFont(base)
    tick.setPointSizeF(8.5 * scale)
    for plot in plots:
        item = plot.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setStyle(tickFont=tick)
            axis.label.setFont(tick)
        item.titleLabel.setText(item.titleLabel.text, size=f"{10.5 * scale:.1f}pt")
    legend = QtGui.QFont(base)
    legend.setPointSizeF(8.0 * scale)
    for entry in legends:
        entry.set_font(legend)
    return tick


def hover_text(plot: pg.PlotWidget, text_at) -> None:
    """The plot's tooltip says ``text_at(x, y)`` of the point under the mouse (data
    coordinates; an empty text: no tooltip), e.g. the full name of an elided class."""
    view = plot.getViewBox()

    def moved(pos) -> None:
        inside = view.sceneBoundingRect().contains(pos)
        at = view.mapSceneToView(pos)
        plot.setToolTip(text_at(at.x(), at.y()) if inside else "")

    plot.scene().sigMouseMoved.connect(moved)


@dataclass(frozen=True)
class LegendEntry:
    """One entry of a :class:`ChartLegend`: its text, the line's pen (None: no line), a
    marker (``"o"``, ``"t"`` or None) in ``brush``, and whether it is emphasised (bold:
    the current run beside others)."""

    text: str
    pen: QtGui.QPen | None
    symbol: str | None = None
    brush: str | None = None
    strong: bool = False


class ChartLegend(pg.GraphicsWidget):
    """A legend in a plot's own layout, under its bottom axis: never over the curves.

    The entries flow in as many columns as the plot's width holds (row by row, in their
    order); a text wider than the whole width is elided and the legend's tooltip names
    every entry. Its height follows, so the plot's view box gives the room. Text in the
    colour of the plot's axis text (so it follows the theme). Painted by itself, one item.
    """

    SAMPLE = 22.0  # pixels of line sample before each text

    def __init__(self, plot: pg.PlotWidget) -> None:
        super().__init__()
        self.axis = plot.getAxis("bottom")
        self.entries: list[LegendEntry] = []
        self.text_font = QtGui.QFont()
        self.text_font.setPointSizeF(8.0)
        self.cells: list[tuple[LegendEntry, QtCore.QRectF, str]] = []  # entry, cell, text
        self.columns = 1
        self._height = 0.0
        self.setSizePolicy(pg.QtWidgets.QSizePolicy.Policy.Expanding,
                           pg.QtWidgets.QSizePolicy.Policy.Fixed)
        plot.getPlotItem().layout.addItem(self, 4, 0, 1, 3)  # under the bottom axis

    # ------------------------------------------------------------ contents
    def set_entries(self, entries: list[LegendEntry]) -> None:
        self.entries = list(entries)
        self._lay_out()

    def set_font(self, font: QtGui.QFont) -> None:
        self.text_font = QtGui.QFont(font)
        self._lay_out()

    def texts(self) -> list[str]:
        """The entries' full texts, in order (for tests and callers)."""
        return [e.text for e in self.entries]

    def text_color(self) -> QtGui.QColor:
        """The colour the texts are painted in: the plot's axis text (the theme's)."""
        return self.axis.textPen().color()

    def shown_texts(self) -> list[str]:
        """The texts as drawn (elided where the width is short)."""
        return [text for _e, _r, text in self.cells]

    # ------------------------------------------------------------ layout
    def _fonts(self) -> tuple[QtGui.QFont, QtGui.QFont]:
        bold = QtGui.QFont(self.text_font)
        bold.setBold(True)
        return self.text_font, bold

    def _lay_out(self) -> None:
        width = self.size().width()
        if width <= 1:  # not laid out yet: one column, the resize lays it out again
            width = 1e9
        regular, bold = self._fonts()
        metrics = {False: QtGui.QFontMetricsF(regular), True: QtGui.QFontMetricsF(bold)}
        line = metrics[True].height() + 2
        gap, pad = metrics[False].averageCharWidth(), 4.0
        widths = [self.SAMPLE + gap + metrics[e.strong].horizontalAdvance(e.text) + 2 * gap
                  for e in self.entries]
        columns = fitting_columns(widths, width - 2 * pad)
        col_widths = [max(widths[j::columns], default=0.0) for j in range(columns)]
        cells, x0 = [], [pad + sum(col_widths[:j]) for j in range(columns)]
        for i, e in enumerate(self.entries):
            row, col = divmod(i, columns)
            cell = QtCore.QRectF(x0[col], pad + row * line, col_widths[col], line)
            room = min(cell.width(), width - pad - x0[col]) - self.SAMPLE - 3 * gap
            text = metrics[e.strong].elidedText(e.text, QtCore.Qt.TextElideMode.ElideRight,
                                                max(room, 1.0))
            cells.append((e, cell, text))
        self.cells, self.columns = cells, columns
        rows = math.ceil(len(self.entries) / columns) if self.entries else 0
        height = 2 * pad + rows * line if rows else 0.0
        elided = any(text != e.text for e, _c, text in cells)
        self.setToolTip("\n".join(e.text for e in self.entries) if elided else "")
        if height != self._height:
            self._height = height
            self.setMinimumHeight(height)
            self.setMaximumHeight(height)
            self.updateGeometry()
        self.update()

    def sizeHint(self, which, constraint=None):  # noqa: N802 - Qt override
        width = {QtCore.Qt.SizeHint.MinimumSize: 0.0, QtCore.Qt.SizeHint.MaximumSize: 1e6}
        return QtCore.QSizeF(width.get(which, 100.0), self._height)

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        if ev.oldSize().width() != ev.newSize().width():
            self._lay_out()

    # ------------------------------------------------------------ paint
    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt override
        return QtCore.QRectF(0, 0, self.size().width(), self.size().height())

    def paint(self, p, *_args) -> None:
        if not self.cells:
            return
        regular, bold = self._fonts()
        color = self.text_color()
        gap = QtGui.QFontMetricsF(regular).averageCharWidth()
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        for e, cell, text in self.cells:
            cy = cell.center().y()
            x = cell.left()
            if e.pen is not None:
                p.setPen(e.pen)
                p.drawLine(QtCore.QPointF(x + 1, cy), QtCore.QPointF(x + self.SAMPLE - 1, cy))
            if e.symbol is not None:
                _marker(p, e.symbol, QtCore.QPointF(x + self.SAMPLE / 2, cy), e.brush)
            p.setPen(color)
            p.setFont(bold if e.strong else regular)
            box = QtCore.QRectF(x + self.SAMPLE + gap, cell.top(), cell.width(), cell.height())
            p.drawText(box, int(LEFT_MIDDLE), text)


def fitting_columns(widths: list[float], room: float) -> int:
    """The most columns (entries placed row by row) whose widest entries fit in ``room``
    pixels side by side; at least 1."""
    for columns in range(len(widths), 1, -1):
        if sum(max(widths[j::columns]) for j in range(columns)) <= room:
            return columns
    return 1


def _marker(p: QtGui.QPainter, symbol: str, at: QtCore.QPointF, brush: str | None) -> None:
    r = 3.0
    p.setPen(QtCore.Qt.PenStyle.NoPen)
    p.setBrush(QtGui.QColor(brush or "#777777"))
    if symbol == "t":  # pyqtgraph's "t": a triangle pointing down
        p.drawPolygon(QtGui.QPolygonF([QtCore.QPointF(at.x() - r, at.y() - r),
                                       QtCore.QPointF(at.x() + r, at.y() - r),
                                       QtCore.QPointF(at.x(), at.y() + r)]))
    else:
        p.drawEllipse(at, r, r)
    p.setBrush(QtCore.Qt.BrushStyle.NoBrush)


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
