"""Cutting stroked lines at a rectangle (private to :mod:`protoview.gui`): the geometric
clip of :mod:`~protoview.gui._qt._flat_paint`, which writes no clip paths."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui


def cut_segment(x0: float, y0: float, x1: float, y1: float,
                rect: QtCore.QRectF) -> tuple[float, float, float, float] | None:
    """The part of the segment (x0, y0)-(x1, y1) inside ``rect`` (Liang-Barsky), or None
    when none of it is (or a coordinate is not finite)."""
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return None
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - rect.left()), (dx, rect.right() - x0),
                 (-dy, y0 - rect.top()), (dy, rect.bottom() - y0)):
        if p == 0:
            if q < 0:
                return None  # parallel to this edge and outside it
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy


def cut_lines(path: QtGui.QPainterPath, rect: QtCore.QRectF) -> QtGui.QPainterPath:
    """The lines of ``path`` (curves flattened) cut at ``rect``: the parts inside it, as
    an open path for stroking (never filled)."""
    out = QtGui.QPainterPath()
    for polygon in path.toSubpathPolygons():
        points = [(p.x(), p.y()) for p in polygon]
        end = None  # where the last kept piece ended: join to it when it goes on there
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            piece = cut_segment(x0, y0, x1, y1, rect)
            if piece is None:
                end = None
                continue
            a, b = QtCore.QPointF(piece[0], piece[1]), QtCore.QPointF(piece[2], piece[3])
            if end is None or end != a:
                out.moveTo(a)
            out.lineTo(b)
            end = b
    return out


__all__ = ["cut_lines", "cut_segment"]
