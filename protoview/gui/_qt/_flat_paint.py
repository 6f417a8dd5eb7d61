"""A paint device that bakes every transform into the drawing (private to
:mod:`protoview.gui`): what is painted on a :class:`FlatPaintDevice` is handed on to
another painter (an SVG generator's, a PDF writer's) in that painter's own 1:1 device
coordinates, so vector files hold plain geometry and plain strokes.

Why: pyqtgraph draws with cosmetic pens (a width in pixels whatever the zoom) and its
pixel-sized glyphs as unit paths under a scaled painter. Qt's SVG generator writes that as
``vector-effect="non-scaling-stroke"`` inside scaled groups, which librsvg and
ImageMagick do not honour: stars become black blobs, lines thick bars. Here each path is
mapped to device coordinates first and drawn with an ordinary pen of the width it has on
screen; texts and images keep their transform (text stays text).

Clipping is done on the geometry, never written as a clip path (ImageMagick's own SVG
renderer draws clip paths inverted): what lies outside the clip's bounds is left out,
stroked lines are cut at them, a filled glyph that straddles them is drawn whole.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui

from protoview.gui._qt._clip import cut_lines

_Dirty = QtGui.QPaintEngine.DirtyFlag
_CLIP = _Dirty.DirtyClipPath | _Dirty.DirtyClipRegion | _Dirty.DirtyClipEnabled
_SOLID = (QtCore.Qt.BrushStyle.NoBrush, QtCore.Qt.BrushStyle.SolidPattern)
_Mode = QtGui.QPaintEngine.PolygonDrawMode


def _scale_of(transform: QtGui.QTransform) -> float:
    """The length scale of ``transform`` (square root of its area scale)."""
    return math.sqrt(abs(transform.m11() * transform.m22() - transform.m12() * transform.m21()))


def plain_pen(pen: QtGui.QPen, transform: QtGui.QTransform) -> QtGui.QPen:
    """``pen`` as drawn through ``transform``, for geometry already mapped by it: a
    cosmetic pen keeps its width (0 = a 1 px hairline), another one is scaled with the
    transform; never cosmetic."""
    out = QtGui.QPen(pen)
    if pen.isCosmetic():
        out.setWidthF(pen.widthF() if pen.widthF() > 0 else 1.0)
    else:
        out.setWidthF(max(pen.widthF(), 0.0) * _scale_of(transform) or 1.0)
    out.setCosmetic(False)
    return out


def _mapped_brush(brush: QtGui.QBrush, transform: QtGui.QTransform) -> QtGui.QBrush:
    """A gradient or texture brush follows the geometry into device coordinates."""
    if brush.style() in _SOLID:
        return brush
    out = QtGui.QBrush(brush)
    out.setTransform(brush.transform() * transform)
    return out


def _pieces(path: QtGui.QPainterPath, pen: QtGui.QPen, brush: QtGui.QBrush) -> list:
    """``path`` as drawn: a dashed stroke one path per subpath (each subpath starts its
    own dash pattern; ImageMagick's SVG renderer runs one pattern on across them, which
    turns the neighbour links solid), anything else whole."""
    if pen.style() in (QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenStyle.NoPen) \
            or brush.style() != QtCore.Qt.BrushStyle.NoBrush:
        return [path]
    out = []
    for polygon in path.toSubpathPolygons():
        piece = QtGui.QPainterPath()
        piece.addPolygon(polygon)
        out.append(piece)
    return out


def resolved_font(font: QtGui.QFont) -> QtGui.QFont:
    """``font`` with its family set to the one it resolves to on this machine (the font
    Qt draws with: "DejaVu Sans" rather than the alias "Sans Serif")."""
    out = QtGui.QFont(font)
    family = QtGui.QFontInfo(font).family()
    if family:
        out.setFamily(family)
    return out


class _FlatEngine(QtGui.QPaintEngine):
    """Forwards every primitive to ``target`` (a QPainter on the real device) with the
    source painter's transform applied to the geometry (see the module docstring)."""

    def __init__(self, target: QtGui.QPainter) -> None:
        super().__init__(QtGui.QPaintEngine.PaintEngineFeature.AllFeatures)
        self.target = target
        self.clip: QtCore.QRectF | None = None  # bounds of the source's clip, device coords
        self.clip_on = False
        self.primitives = 0  # drawn (not left out by the clip)

    # --------------------------------------------------------------- engine protocol
    def begin(self, _device) -> bool:
        return True

    def end(self) -> bool:
        return True

    def type(self) -> QtGui.QPaintEngine.Type:
        return QtGui.QPaintEngine.Type.User

    def updateState(self, state) -> None:  # noqa: N802 - Qt override
        """Follows the source's clip (its bounds in device coordinates); pen, brush,
        transform and the rest are read from the source painter when drawing."""
        flags = state.state()
        if flags & _Dirty.DirtyClipEnabled:
            self.clip_on = state.isClipEnabled()
        if not flags & (_Dirty.DirtyClipPath | _Dirty.DirtyClipRegion):
            return
        op = state.clipOperation()
        if op == QtCore.Qt.ClipOperation.NoClip:
            self.clip, self.clip_on = None, False
            return
        if flags & _Dirty.DirtyClipPath:
            rect = state.clipPath().boundingRect()
        else:
            rect = QtCore.QRectF(state.clipRegion().boundingRect())
        rect = state.transform().mapRect(rect)
        if op == QtCore.Qt.ClipOperation.IntersectClip and self.clip is not None:
            rect = self.clip.intersected(rect)
        self.clip, self.clip_on = rect, True

    # --------------------------------------------------------------- primitives
    def drawPath(self, path: QtGui.QPainterPath) -> None:  # noqa: N802 - Qt override
        source = self.painter()
        transform = source.transform()
        pen = plain_pen(source.pen(), transform)
        brush = _mapped_brush(source.brush(), transform)
        mapped = transform.map(path)
        bounds = mapped.boundingRect()
        if source.pen().style() != QtCore.Qt.PenStyle.NoPen:
            half = pen.widthF() / 2
            bounds = bounds.adjusted(-half, -half, half, half)
        clip = self._clip_rect()
        if clip is not None and not clip.intersects(bounds):
            return
        if clip is not None and brush.style() == QtCore.Qt.BrushStyle.NoBrush \
                and not clip.contains(bounds):
            mapped = cut_lines(mapped, clip)  # a stroke only: cut where the clip ends
        target = self._prepare(QtGui.QTransform(), pen, brush)
        for piece in _pieces(mapped, pen, brush):
            target.drawPath(piece)

    def drawPolygon(self, points, mode) -> None:  # noqa: N802 - Qt override
        path = QtGui.QPainterPath()
        path.addPolygon(QtGui.QPolygonF(list(points)))
        if mode == _Mode.PolylineMode:
            source = self.painter()
            source.save()  # a polyline is never filled
            source.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            try:
                self.drawPath(path)
            finally:
                source.restore()
            return
        path.closeSubpath()
        if mode == _Mode.WindingMode:
            path.setFillRule(QtCore.Qt.FillRule.WindingFill)
        self.drawPath(path)

    def drawPixmap(self, rect, pixmap, source_rect) -> None:  # noqa: N802 - Qt override
        if target := self._prepare_mapped(QtCore.QRectF(rect)):
            target.drawPixmap(rect, pixmap, source_rect)

    def drawImage(self, rect, image, source_rect, _flags=None) -> None:  # noqa: N802
        if target := self._prepare_mapped(QtCore.QRectF(rect)):
            target.drawImage(rect, image, source_rect)

    def drawTiledPixmap(self, rect, pixmap, offset) -> None:  # noqa: N802 - Qt override
        if target := self._prepare_mapped(QtCore.QRectF(rect)):
            target.drawTiledPixmap(rect, pixmap, offset)

    def drawTextItem(self, point, item) -> None:  # noqa: N802 - Qt override
        """Text stays text: drawn at its transform (a translation, for pyqtgraph's
        labels), in the pen's colour and its font, named by the family Qt drew it with
        (not an alias such as "Sans Serif" that other programs may not resolve)."""
        metrics = QtGui.QFontMetricsF(item.font())
        box = QtCore.QRectF(point.x(), point.y() - metrics.ascent(), item.width(),
                            metrics.height())
        pen = QtGui.QPen(self.painter().pen())
        pen.setCosmetic(False)
        if target := self._prepare_mapped(box, pen):
            font = resolved_font(item.font())
            if target.font() != font:
                target.setFont(font)
            target.drawText(point, item.text())

    # --------------------------------------------------------------- helpers
    def _clip_rect(self) -> QtCore.QRectF | None:
        return self.clip if self.clip_on else None

    def _prepare_mapped(self, rect: QtCore.QRectF,
                        pen: QtGui.QPen | None = None) -> QtGui.QPainter | None:
        """The target painter with the source's transform, for something whose bounds in
        the source's coordinates are ``rect``; None when the clip leaves all of it out."""
        transform = self.painter().transform()
        clip = self._clip_rect()
        if clip is not None and not clip.intersects(transform.mapRect(rect)):
            return None
        return self._prepare(transform, pen)

    def _prepare(self, transform: QtGui.QTransform, pen: QtGui.QPen | None = None,
                 brush: QtGui.QBrush | None = None) -> QtGui.QPainter:
        """The target painter with the source's hints and opacity, ``transform`` and the
        given pen and brush. Only what differs is set: the SVG generator starts a new
        group for every change, so a map of 50k dots stays one group per colour change."""
        source, target = self.painter(), self.target
        self.primitives += 1
        if target.renderHints() != source.renderHints():
            target.setRenderHints(target.renderHints(), False)
            target.setRenderHints(source.renderHints())
        if target.opacity() != source.opacity():
            target.setOpacity(source.opacity())
        if target.transform() != transform:
            target.setTransform(transform)
        if pen is not None and target.pen() != pen:
            target.setPen(pen)
        if brush is not None and target.brush() != brush:
            target.setBrush(brush)
        return target


class FlatPaintDevice(QtGui.QPaintDevice):
    """A ``width`` x ``height`` pixel device (96 dpi) whose painting is handed on to
    ``target`` with the transforms baked in (see the module docstring). Paint on it with
    a QPainter (a QGraphicsView's ``render``, say); ``target`` must stay active meanwhile.
    """

    def __init__(self, width: int, height: int, target: QtGui.QPainter) -> None:
        super().__init__()
        self.size = (int(width), int(height))
        self.engine = _FlatEngine(target)
        Metric = QtGui.QPaintDevice.PaintDeviceMetric  # noqa: N806 - a Qt enum
        w, h = self.size
        self._metrics = {  # Qt asks often (every transform reset): answer from a table
            Metric.PdmWidth: w, Metric.PdmHeight: h,
            Metric.PdmWidthMM: round(w * 25.4 / 96), Metric.PdmHeightMM: round(h * 25.4 / 96),
            Metric.PdmDpiX: 96, Metric.PdmDpiY: 96,
            Metric.PdmPhysicalDpiX: 96, Metric.PdmPhysicalDpiY: 96,
            Metric.PdmDepth: 32, Metric.PdmNumColors: 2**31 - 1,
            Metric.PdmDevicePixelRatio: 1,
            Metric.PdmDevicePixelRatioScaled: round(self.devicePixelRatioFScale()),
        }

    def paintEngine(self) -> QtGui.QPaintEngine:  # noqa: N802 - Qt override
        return self.engine

    def metric(self, metric) -> int:
        return self._metrics.get(metric, 0)


__all__ = ["FlatPaintDevice", "plain_pen", "resolved_font"]
