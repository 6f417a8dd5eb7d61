"""Marks drawn over the map's layers (private to :mod:`protoview.gui.map`): the selection's
rings, the focused sample with lines to its nearest neighbours in feature space, the
sample hovered in a linked view, and the names on the class centers and prototypes.

Each mark is one item for all its points (never one item per sample); the names are one
:class:`TextsItem` for all of them, capped at :data:`MAX_NAMES`.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from protoview.gui.map._layers import positions, sample_size

MAX_NAMES = 60  # more centers + prototypes than this: no names (unreadable anyway)
FOCUS_COLOR = "#ffb000"


def _inert(item) -> None:
    """Marks never take clicks: a click goes to the glyph or sample under it."""
    item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
    item.setAcceptHoverEvents(False)


class MapMarks:
    """The mark items of ``view`` (an EmbeddingView), added to it above the samples and
    under the centers and proxies: ``marks["selection"]``, ``"links"``, ``"neighbors"``,
    ``"focus"``, ``"peer"``; and ``names``, the texts on the centers and prototypes.

    They show the view's public ``selection``, ``focus_index``, ``neighbor_indices``,
    ``peer_index`` and ``show_names``.
    """

    def __init__(self, view) -> None:
        self.view = view
        self.items = _make_marks(view)
        self.names = TextsItem()
        self.names.setZValue(10)
        view.addItem(self.names, ignoreBounds=True)

    def __getitem__(self, name: str):
        return self.items[name]

    def set_ring_color(self, foreground: str) -> None:
        """Selection rings in the theme's text colour (dark on light, light on dark)."""
        self.items["selection"].setPen(pg.mkPen(foreground, width=1.6))

    def update(self, pos: dict | None = None) -> None:
        """Place every mark at the positions ``pos`` (default: the state's)."""
        view, marks, state = self.view, self.items, self.view.state
        if state is None:
            for name in ("selection", "neighbors", "focus", "peer"):
                marks[name].setData(x=[], y=[])
            marks["links"].setData(x=[], y=[])
            return
        pos = pos or positions(state)
        xy = pos["samples"]
        n = len(xy)
        size = sample_size(view)

        def put(item, idx, extra: float) -> None:
            idx = np.asarray(idx, np.int64)
            idx = idx[(idx >= 0) & (idx < n)]
            p = xy[idx] if idx.size else np.zeros((0, 2))
            ok = np.isfinite(p).all(axis=1)
            item.setData(x=p[ok, 0], y=p[ok, 1], size=size + extra)

        put(marks["selection"], view.selection, 5.0 * view.glyph_scale)
        focus = view.focus_index
        put(marks["focus"], [] if focus is None else [focus], 16.0 * view.glyph_scale)
        nb = view.neighbor_indices if focus is not None else np.zeros(0, np.int64)
        put(marks["neighbors"], nb, 7.0 * view.glyph_scale)
        put(marks["peer"], [] if view.peer_index is None else [view.peer_index],
            13.0 * view.glyph_scale)
        if focus is not None and nb.size and 0 <= focus < n:
            nb = nb[(nb >= 0) & (nb < n)]
            seg = np.empty((2 * nb.size, 2))
            seg[0::2] = xy[focus]
            seg[1::2] = xy[nb]
            ok = np.isfinite(seg).all(axis=1).reshape(-1, 2).all(axis=1).repeat(2)
            marks["links"].setData(x=seg[ok, 0], y=seg[ok, 1], connect="pairs")
        else:
            marks["links"].setData(x=[], y=[])

    # ------------------------------------------------------------ names on the map
    def name_texts(self) -> tuple[list[str], list[str]]:
        """The names shown on the centers (class names) and on the prototypes
        (``P3: six``, the class the prototype's cluster matched, or ``P3``)."""
        view = self.view
        centers = [view.class_name(int(c)) for c in np.asarray(view.state.center_labels)]
        matched = view.layers.prototype_classes()
        protos = [f"P{j}: {view.class_name(int(c))}" if c >= 0 else f"P{j}"
                  for j, c in enumerate(matched)]
        return centers, protos

    def update_names(self, pos: dict | None = None) -> None:
        """The names of the class centers (above the stars) and the prototypes (below the
        triangles), in the theme's colours and ``view.text_scale``; none when hidden."""
        view = self.view
        state = view.state
        texts = []
        if view.show_names and state is not None:
            pos = pos or positions(state)
            centers, protos = self.name_texts()
            if len(centers) + len(protos) <= MAX_NAMES:
                if view.items["centers"].isVisible():
                    texts += [(t, *map(float, pos["centers"][i]), 1.05, True)
                              for i, t in enumerate(centers)]
                if view.items["prototypes"].isVisible():
                    texts += [(t, *map(float, pos["prototypes"][j]), -1.0, False)
                              for j, t in enumerate(protos)]
        font = QtGui.QFont(view.font())
        font.setPointSizeF(max(6.5, 9.0 * view.text_scale))
        fg, bg = view.text_colors
        self.names.set_texts(texts, font, fg, bg)


def _make_marks(view) -> dict:
    """Create the mark items (above the samples, under the centers and proxies)."""
    ring_pen = pg.mkPen("#111111", width=1.6)
    selection = pg.ScatterPlotItem(pxMode=True, symbol="o", pen=ring_pen, brush=None, size=12)
    links = pg.PlotDataItem(connect="pairs", pen=pg.mkPen(FOCUS_COLOR, width=1.6,
                                                          style=QtCore.Qt.PenStyle.DashLine))
    neighbors = pg.ScatterPlotItem(pxMode=True, symbol="s", brush=None, size=13,
                                   pen=pg.mkPen(FOCUS_COLOR, width=2.2))
    focus = pg.ScatterPlotItem(pxMode=True, symbol="o", brush=None, size=24,
                               pen=pg.mkPen(FOCUS_COLOR, width=3.0))
    peer = pg.ScatterPlotItem(pxMode=True, symbol="o", brush=None, size=20,
                              pen=pg.mkPen("#e8336b", width=3.0))
    marks = {"selection": selection, "links": links, "neighbors": neighbors, "focus": focus,
             "peer": peer}
    for z, item in zip((0.5, 0.6, 0.7, 0.8, 0.9), marks.values(), strict=True):
        item.setZValue(z)
        _inert(item)
        view.addItem(item)
    return marks


class TextsItem(pg.GraphicsObject):
    """Many short texts at data positions, drawn by one item in one paint call (a
    TextItem per text costs a layout per change and a paint each: too slow to move with
    every animation frame). Each text sits in a translucent box, ``dy`` text heights
    above (negative: below) its point, in a font that does not scale with the zoom."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[tuple[str, float, float, float, bool]] = []  # text, x, y, dy, bold
        self.text_font = QtGui.QFont()
        self.colors = (QtGui.QColor("#333333"), QtGui.QColor(255, 255, 255, 170))
        _inert(self)

    def set_texts(self, texts, font: QtGui.QFont, foreground: str, background: str | None) -> None:
        self.texts = [t for t in texts if np.isfinite(t[1]) and np.isfinite(t[2])]
        self.text_font = QtGui.QFont(font)
        bg = None
        if background is not None:
            bg = QtGui.QColor(background)
            bg.setAlpha(170)
        self.colors = (QtGui.QColor(foreground), bg)
        self.prepareGeometryChange()
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt override
        rect = self.viewRect()  # the texts may stand out of their points' bounds
        return QtCore.QRectF() if rect is None else rect

    def paint(self, p, *_args) -> None:
        if not self.texts:
            return
        tr = p.transform()
        p.save()
        p.resetTransform()
        bold = QtGui.QFont(self.text_font)
        bold.setBold(True)
        for text, x, y, dy, strong in self.texts:
            font = bold if strong else self.text_font
            metrics = QtGui.QFontMetricsF(font)
            at = tr.map(QtCore.QPointF(x, y))
            w, h = metrics.horizontalAdvance(text) + 6, metrics.height() + 2
            cy = at.y() - dy * h
            box = QtCore.QRectF(at.x() - w / 2, cy - h / 2, w, h)
            if self.colors[1] is not None:
                p.fillRect(box, self.colors[1])
            p.setFont(font)
            p.setPen(self.colors[0])
            p.drawText(box, int(QtCore.Qt.AlignmentFlag.AlignCenter), text)
        p.restore()


def shown_names(view) -> list[str]:
    """The texts of the visible names (for tests)."""
    return [t[0] for t in view.names.texts] if view.names.isVisible() else []


# ---------------------------------------------------------------- lasso
def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: which of ``points`` (N, 2) lie inside ``polygon`` (P, 2) (even-odd rule;
    the polygon is closed implicitly; NaN points are outside). Vectorised over the points,
    one pass per edge (polygons are thinned to at most 512 vertices)."""
    pts = np.asarray(points, np.float64)
    poly = np.asarray(polygon, np.float64)
    poly = poly[np.isfinite(poly).all(axis=1)]
    inside = np.zeros(len(pts), bool)
    if len(poly) < 3 or len(pts) == 0:
        return inside
    if len(poly) > 512:
        poly = poly[np.linspace(0, len(poly) - 1, 512).astype(np.int64)]
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    cand = np.flatnonzero((pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0])
                          & (pts[:, 1] >= lo[1]) & (pts[:, 1] <= hi[1]))
    x, y = pts[cand, 0], pts[cand, 1]
    hit = np.zeros(cand.size, bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        if yi != yj:
            crosses = (yi > y) != (yj > y)
            x_at = (xj - xi) * (y - yi) / (yj - yi) + xi
            hit ^= crosses & (x < x_at)
        xj, yj = xi, yi
    inside[cand] = hit
    return inside
