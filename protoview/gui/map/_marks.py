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

from protoview.gui.map._layers import glyph_size, positions, proxy_size, sample_size

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

        put(marks["selection"], _rings(view, xy), 5.0 * view.glyph_scale)
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
                              for i, t in enumerate(centers)
                              if np.isfinite(pos["centers"][i]).all()]
                if view.items["prototypes"].isVisible():
                    texts += [(t, *map(float, pos["prototypes"][j]), -1.0, False)
                              for j, t in enumerate(protos)]
        font = QtGui.QFont(view.font())
        font.setPointSizeF(max(6.5, 9.0 * view.text_scale))
        fg, bg = view.text_colors
        obstacles = np.zeros((0, 2))
        if texts and view.items["proxies"].isVisible():  # the diamonds: no name on them
            obstacles = np.asarray(pos["proxies"], np.float64).reshape(-1, 2)
        self.names.set_texts(texts, font, fg, bg, clearance=glyph_size(view) / 2,
                             obstacles=obstacles, obstacle_radius=proxy_size(view) / 2,
                             cover=[view.legend])


#: a dense map rings at most this many selected samples, those in view (a lasso over half
#: of a million samples would otherwise be a scatter of half a million rings)
MAX_RINGS = 20_000


def _rings(view, xy: np.ndarray) -> np.ndarray:
    """The selected samples that get a ring: all of them, or on a dense map with a large
    selection those in the view's range (at most :data:`MAX_RINGS`)."""
    sel = view.selection
    if not view.dense or sel.size <= MAX_RINGS:
        return sel
    (x0, x1), (y0, y1) = view.getViewBox().viewRange()
    p = xy[sel[(sel >= 0) & (sel < len(xy))]]
    inside = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
    return sel[np.flatnonzero(inside)[:MAX_RINGS]]


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
    every animation frame). Each text sits in a translucent box beside its point, in a
    font that does not scale with the zoom.

    Texts never sit on each other nor on another text's glyph: each is placed, in order
    (the bold ones, class centers, first), at the first free spot around its point, out
    of its glyph's ``clearance`` pixels: its own side first (``dy`` > 0 above, < 0 below),
    then the other side, right, left, the corners, then farther up and down; inside the
    view where possible. A bold text with no free spot takes the least covered one; any
    other is left out (hovering its glyph still names it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[tuple[str, float, float, float, bool]] = []  # text, x, y, dy, bold
        self.text_font = QtGui.QFont()
        self.colors = (QtGui.QColor("#333333"), QtGui.QColor(255, 255, 255, 170))
        self.clearance = 11.0
        self.obstacles = np.zeros((0, 2))  # other glyphs' data positions (the proxies)
        self.obstacle_radius = 0.0
        self.cover: list = []  # items over the map (the legend): no name under them
        self._placed: tuple[tuple, list] | None = None  # (key, placed) of the last paint
        _inert(self)

    def set_texts(self, texts, font: QtGui.QFont, foreground: str, background: str | None,
                  clearance: float = 11.0, obstacles=None, obstacle_radius: float = 0.0,
                  cover=()) -> None:
        """``texts``: ``(text, x, y, dy, bold)``; ``obstacles`` (N, 2): data positions of
        other glyphs, ``obstacle_radius`` pixels each, and ``cover``: graphics items drawn
        over the map, which no text is placed on."""
        self.texts = [t for t in texts if np.isfinite(t[1]) and np.isfinite(t[2])]
        self.text_font = QtGui.QFont(font)
        self.clearance = float(clearance)
        obstacles = np.zeros((0, 2)) if obstacles is None else np.asarray(obstacles, float)
        self.obstacles = obstacles[np.isfinite(obstacles).all(axis=1)]
        self.obstacle_radius = float(obstacle_radius)
        self.cover = list(cover)
        bg = None
        if background is not None:
            bg = QtGui.QColor(background)
            bg.setAlpha(170)
        self.colors = (QtGui.QColor(foreground), bg)
        self._placed = None
        self.prepareGeometryChange()
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt override
        rect = self.viewRect()  # the texts may stand out of their points' bounds
        return QtCore.QRectF() if rect is None else rect

    def placed(self, transform: QtGui.QTransform, bounds: QtCore.QRectF | None = None,
               covered=()) -> list[tuple[str, QtCore.QRectF, bool]]:
        """``(text, box, bold)`` of each text drawn, its box in the device pixels of
        ``transform`` (data -> device); ``bounds``: the visible device rectangle;
        ``covered``: device rectangles drawn over the map (the legend's)."""
        bold = QtGui.QFont(self.text_font)
        bold.setBold(True)
        metrics = {False: QtGui.QFontMetricsF(self.text_font), True: QtGui.QFontMetricsF(bold)}
        order = sorted(range(len(self.texts)), key=lambda i: not self.texts[i][4])
        anchors = [transform.map(QtCore.QPointF(t[1], t[2])) for t in self.texts]
        r = self.clearance
        taken = np.array([(a.x() - r, a.y() - r, a.x() + r, a.y() + r) for a in anchors],
                         np.float64).reshape(-1, 4)  # every glyph, then each placed text
        q = self.obstacle_radius
        others = [transform.map(QtCore.QPointF(float(u), float(v))) for u, v in self.obstacles]
        others = [(o.x() - q, o.y() - q, o.x() + q, o.y() + q) for o in others]
        others += [(c.left(), c.top(), c.right(), c.bottom()) for c in covered]
        fixed = np.array(others, np.float64).reshape(-1, 4)
        out = []
        for i in order:
            text, _x, _y, dy, strong = self.texts[i]
            w = metrics[strong].horizontalAdvance(text) + 6
            h = metrics[strong].height() + 2
            boxes = _candidates(anchors[i].x(), anchors[i].y(), w, h, r + 1, dy)
            own = np.ones(len(taken), bool)
            own[i] = False  # its own glyph: the candidates are out of it already
            cover = _overlap(boxes, taken[own]) + _overlap(boxes, fixed)
            if bounds is not None:
                inside = ((boxes[:, 0] >= bounds.left()) & (boxes[:, 2] <= bounds.right())
                          & (boxes[:, 1] >= bounds.top()) & (boxes[:, 3] <= bounds.bottom()))
                cover = cover + np.where(inside, 0.0, 0.5 * w * h)
            free = np.flatnonzero(cover <= 0)
            if free.size:
                pick = int(free[0])
            elif strong:
                pick = int(np.argmin(cover))
            else:
                continue
            box = boxes[pick]
            taken = np.vstack([taken, box])
            out.append((text, QtCore.QRectF(box[0], box[1], box[2] - box[0], box[3] - box[1]),
                        strong))
        return out

    def paint(self, p, *_args) -> None:
        if not self.texts:
            return
        tr = p.transform()
        view = self.getViewBox()
        bounds = None
        if view is not None:
            bounds = tr.mapRect(self.mapRectFromItem(view, view.boundingRect()))
        covered = [tr.mapRect(self.mapRectFromItem(item, item.boundingRect()))
                   for item in self.cover if item.isVisible()]
        key = (tuple(tr.map(QtCore.QPointF(u, v)).toTuple() for u, v in ((0, 0), (1, 1))),
               None if bounds is None else bounds.getRect(),
               tuple(c.getRect() for c in covered))
        if self._placed is None or self._placed[0] != key:  # not again for a hover's repaint
            self._placed = (key, self.placed(tr, bounds, covered))
        placed = self._placed[1]
        p.save()
        p.resetTransform()
        bold = QtGui.QFont(self.text_font)
        bold.setBold(True)
        for text, box, strong in placed:
            if self.colors[1] is not None:
                p.fillRect(box, self.colors[1])
            p.setFont(bold if strong else self.text_font)
            p.setPen(self.colors[0])
            p.drawText(box, int(QtCore.Qt.AlignmentFlag.AlignCenter), text)
        p.restore()


def _candidates(x: float, y: float, w: float, h: float, r: float, dy: float) -> np.ndarray:
    """(K, 4) boxes ``x0, y0, x1, y1`` of a ``w`` x ``h`` text around the point ``(x, y)``
    (device pixels, y down), ``r`` pixels out of it, in the order they are tried."""
    up, down = (x, y - r - h / 2), (x, y + r + h / 2)
    first, second = (up, down) if dy >= 0 else (down, up)
    centres = [first, second, (x + r + w / 2, y), (x - r - w / 2, y),
               (x + r / 2 + w / 2, y - r - h / 2), (x - r / 2 - w / 2, y - r - h / 2),
               (x + r / 2 + w / 2, y + r + h / 2), (x - r / 2 - w / 2, y + r + h / 2),
               (x, first[1] + (h if first[1] > y else -h)),
               (x, second[1] + (h if second[1] > y else -h))]
    c = np.array(centres, np.float64)
    return np.column_stack([c[:, 0] - w / 2, c[:, 1] - h / 2, c[:, 0] + w / 2, c[:, 1] + h / 2])


def _overlap(boxes: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """(K,) area of each of ``boxes`` (K, 4) covered by ``taken`` (M, 4) (summed)."""
    if not len(taken):
        return np.zeros(len(boxes))
    w = (np.minimum(boxes[:, None, 2], taken[None, :, 2])
         - np.maximum(boxes[:, None, 0], taken[None, :, 0])).clip(0)
    h = (np.minimum(boxes[:, None, 3], taken[None, :, 3])
         - np.maximum(boxes[:, None, 1], taken[None, :, 1])).clip(0)
    return (w * h).sum(1)


def shown_names(view) -> list[str]:
    """The texts of the visible names (for tests)."""
    return [t[0] for t in view.names.texts] if view.names.isVisible() else []
