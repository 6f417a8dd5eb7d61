"""Small pieces of the map (private to :mod:`protoview.gui.map`): moving scatter points
in place, a box-selecting ViewBox, the hover card."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from protoview.gui._qt import pixmap_from_array


def move_points(item: pg.ScatterPlotItem, x: np.ndarray, y: np.ndarray) -> None:
    """Move the points of ``item`` to ``x``, ``y`` (N,) without ``setData``.

    Writes pyqtgraph's record array in place and resets its cached bounds and picture —
    the same steps ``setData`` ends with, minus rebuilding styles (1.4 ms vs 290 ms at
    100k points). Falls back to ``setData`` when the point count differs. This touches
    pyqtgraph internals in this one place; a test checks it against ``setData``.
    """
    data = item.data
    if len(data) != len(x):
        item.setData(x=x, y=y)
        return
    data["x"] = x
    data["y"] = y
    item.prepareGeometryChange()
    item.informViewBoundsChanged()
    item.bounds = [None, None]
    item.invalidate()
    item.sigPlotChanged.emit(item)


def recolor_points(item: pg.ScatterPlotItem, brushes, changed: np.ndarray) -> None:
    """Give the points ``changed`` (indices) their new ``brushes`` (a brush per point, N)
    without ``setData``: only those spots are re-looked-up in the symbol atlas (a step
    that changes 5% of the predictions at 50k points: ~10 ms instead of ~300 ms). Same
    pyqtgraph internals as :func:`move_points`; a test compares the colours."""
    if changed.size == 0:
        return
    sub = item.data[changed]  # a copy of those records
    sub["brush"] = [brushes[i] for i in changed.tolist()]
    sub["sourceRect"] = 0
    item.updateSpots(sub)  # fills sourceRect from the atlas for exactly these spots
    item.data[changed] = sub
    item.invalidate()


class SelectViewBox(pg.ViewBox):
    """A ViewBox that selects samples: right-drag always draws a box; a left-drag draws a
    box in ``select_mode == "box"`` and a free-hand lasso in ``"lasso"`` (``"pan"``: the
    left drag pans). The wheel zooms as usual.

    Signals: ``sig_box_selected(QRectF)`` in view (data) coordinates when a box ends;
    ``sig_lasso_selected(object)`` with the lasso's (P, 2) polygon in view coordinates;
    ``sig_empty_click(QPointF)`` for a left click that no glyph or sample took (view
    coordinates: the map clears its highlight and selection there).
    """

    sig_box_selected = QtCore.Signal(QtCore.QRectF)
    sig_lasso_selected = QtCore.Signal(object)
    sig_empty_click = QtCore.Signal(QtCore.QPointF)
    MODES = ("pan", "box", "lasso")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.select_mode = "pan"
        self._lasso: list[tuple[float, float]] = []
        self.lasso_curve = pg.PlotCurveItem(pen=pg.mkPen("#e8336b", width=2))
        self.lasso_curve.setZValue(1e6)
        self.lasso_curve.setVisible(False)
        self.addItem(self.lasso_curve, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - Qt override
        left = ev.button() == QtCore.Qt.MouseButton.LeftButton
        if left and self.select_mode == "lasso":
            ev.accept()
            p = self.mapToView(ev.pos())
            if ev.isStart():
                start = self.mapToView(ev.buttonDownPos())
                self._lasso = [(start.x(), start.y())]
            self._lasso.append((p.x(), p.y()))
            xy = np.asarray(self._lasso + self._lasso[:1])
            self.lasso_curve.setData(xy[:, 0], xy[:, 1])
            self.lasso_curve.setVisible(True)
            if ev.isFinish():
                self.lasso_curve.setVisible(False)
                polygon, self._lasso = np.asarray(self._lasso, np.float64), []
                self.sig_lasso_selected.emit(polygon)
            return
        selecting = ev.button() == QtCore.Qt.MouseButton.RightButton or (
            left and self.select_mode == "box")
        if not selecting:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        start, pos = ev.buttonDownPos(), ev.pos()
        if ev.isFinish():
            self.rbScaleBox.hide()
            a = self.mapToView(start)
            b = self.mapToView(pos)
            self.sig_box_selected.emit(QtCore.QRectF(a, b).normalized())
        else:
            self.updateScaleBox(start, pos)

    def mouseClickEvent(self, ev):  # noqa: N802 - Qt override: no context menu on right click
        if ev.button() == QtCore.Qt.MouseButton.RightButton:
            ev.accept()
            return
        if ev.button() == QtCore.Qt.MouseButton.LeftButton and not ev.double():
            ev.accept()
            self.sig_empty_click.emit(self.mapToView(ev.pos()))
            return
        super().mouseClickEvent(ev)


class HoverCard(QtWidgets.QFrame):
    """A floating card over the map: a thumbnail (optional) above a few lines of text."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("HoverCard")
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        self.image = QtWidgets.QLabel(self)
        self.text = QtWidgets.QLabel(self)
        self.text.setTextFormat(QtCore.Qt.TextFormat.RichText)
        layout.addWidget(self.image)
        layout.addWidget(self.text)
        self.hide()

    def show_at(self, pos: QtCore.QPoint, html: str, thumb: np.ndarray | None) -> None:
        self.text.setText(html)
        if thumb is not None:
            self.image.setPixmap(pixmap_from_array(thumb, self.fontMetrics().height() * 4))
            self.image.show()
        else:
            self.image.clear()
            self.image.hide()
        self.adjustSize()
        self.place(pos)

    def place(self, pos: QtCore.QPoint) -> None:
        """Show the card as it is beside ``pos`` (inside its parent)."""
        parent = self.parentWidget()
        x = min(pos.x() + 14, max(0, parent.width() - self.width()))
        y = min(pos.y() + 14, max(0, parent.height() - self.height()))
        self.move(x, y)
        self.show()
        self.raise_()
