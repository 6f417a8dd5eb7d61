"""A uniform grid over the map's samples (private to :mod:`protoview.gui.map`): the samples
sorted by cell, built once per layout with numpy, so that hover finds the sample under the
pointer and the lasso tests only the samples of the cells its box covers, at any number of
samples.

A row of cells is one contiguous slice of the sorted samples, so the samples of a box are at
most one slice per row of the grid (no Python loop over cells or samples).
"""

from __future__ import annotations

import numpy as np

#: about this many samples per cell on average (the grid has at most MAX_CELLS per axis)
PER_CELL = 4
MAX_CELLS = 1024


class GridIndex:
    """The finite samples of ``xy`` (N, 2) on a ``g`` x ``g`` grid over their bounds.

    ``order``: the sample indices sorted by cell (row by row, y then x); ``starts``: where
    each cell's samples begin in ``order`` (g * g + 1); ``xy``: their positions in that order.
    """

    def __init__(self, xy: np.ndarray) -> None:
        xy = np.asarray(xy)
        self.n = len(xy)
        finite = finite_rows(xy)
        idx = np.flatnonzero(finite) if not finite.all() else np.arange(len(xy))
        pts = np.asarray(xy[idx], np.float64)
        g = int(np.clip(np.sqrt(max(len(idx), 1) / PER_CELL), 1, MAX_CELLS))
        self.g = g
        if len(idx):
            self.lo, hi = _column_min_max(pts)
            span = np.maximum(hi - self.lo, 1e-12)
        else:
            self.lo, span = np.zeros(2), np.ones(2)
        self.size = span / g  # a cell's width and height
        ij = np.clip(((pts - self.lo) / self.size).astype(np.int64), 0, g - 1)
        cell = ij[:, 1] * g + ij[:, 0]
        order = np.argsort(cell, kind="stable")
        self.order = idx[order]
        self.xy = pts[order]
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=g * g))])

    def _columns_rows(self, x0: float, y0: float, x1: float, y1: float):
        """The cell columns i0..i1 and rows j0..j1 that the box covers (None: none)."""
        a = np.floor((np.array([x0, y0]) - self.lo) / self.size)
        b = np.floor((np.array([x1, y1]) - self.lo) / self.size)
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            return None
        if b[0] < 0 or b[1] < 0 or a[0] >= self.g or a[1] >= self.g:
            return None
        i0, j0 = (int(v) for v in np.clip(a, 0, self.g - 1))
        i1, j1 = (int(v) for v in np.clip(b, 0, self.g - 1))
        return i0, i1, j0, j1

    def candidates(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Positions in ``order`` of the samples in the cells the box touches (a superset
        of the samples in the box, one slice per row of cells)."""
        cr = self._columns_rows(x0, y0, x1, y1)
        if cr is None:
            return np.zeros(0, np.int64)
        i0, i1, j0, j1 = cr
        rows = np.arange(j0, j1 + 1) * self.g
        begin, end = self.starts[rows + i0], self.starts[rows + i1 + 1]
        lengths = end - begin
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int64)
        # the concatenated ranges begin[r]..end[r], without a loop
        offsets = np.repeat(begin - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return np.arange(total, dtype=np.int64) + offsets

    def in_rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """The sample indices inside the box (edges included), sorted."""
        pos = self.candidates(x0, y0, x1, y1)
        p = self.xy[pos]
        keep = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        return np.sort(self.order[pos[keep]])

    def in_polygon(self, polygon: np.ndarray) -> np.ndarray:
        """The sample indices inside ``polygon`` (P, 2) (even-odd rule), sorted: only the
        samples of the cells under the polygon's box are tested."""
        poly = np.asarray(polygon, np.float64)
        poly = poly[np.isfinite(poly).all(axis=1)]
        if len(poly) < 3:
            return np.zeros(0, np.int64)
        (x0, y0), (x1, y1) = poly.min(axis=0), poly.max(axis=0)
        pos = self.candidates(x0, y0, x1, y1)
        inside = points_in_polygon(self.xy[pos], poly)
        return np.sort(self.order[pos[inside]])

    def nearest(self, x: float, y: float, rx: float, ry: float) -> int | None:
        """The sample nearest to (x, y) in the metric where ``rx`` by ``ry`` (data units)
        is a unit circle, if it lies within it; of equals, the one drawn last (highest
        index, on top in a scatter)."""
        if not (rx > 0 and ry > 0):
            return None
        pos = self.candidates(x - rx, y - ry, x + rx, y + ry)
        if pos.size == 0:
            return None
        p = self.xy[pos]
        d2 = ((p[:, 0] - x) / rx) ** 2 + ((p[:, 1] - y) / ry) ** 2
        best = d2.min()
        if best > 1.0:
            return None
        return int(self.order[pos[d2 == best]].max())


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


def finite_bounds(arrays) -> np.ndarray | None:
    """(x0, y0, x1, y1) of the finite points of these (n, 2) arrays; None: none."""
    lo, hi = [], []
    for a in arrays:
        a = np.asarray(a).reshape(-1, 2)
        if not len(a):
            continue
        a_lo, a_hi = _column_min_max(a)  # NaN / inf spread: then the slow way
        if not (np.isfinite(a_lo).all() and np.isfinite(a_hi).all()):
            a = a[finite_rows(a)]
            if not len(a):
                continue
            a_lo, a_hi = _column_min_max(a)
        lo.append(a_lo)
        hi.append(a_hi)
    if not lo:
        return None
    return np.array([*np.min(lo, axis=0), *np.max(hi, axis=0)], np.float64)


def finite_rows(a: np.ndarray) -> np.ndarray:
    """(n,) bool: the rows of ``a`` (n, 2) with both coordinates finite (per column: a
    reduction along rows of two columns is ~25x slower in numpy)."""
    return np.isfinite(a[:, 0]) & np.isfinite(a[:, 1])


def _column_min_max(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([a[:, 0].min(), a[:, 1].min()], np.float64),
            np.array([a[:, 0].max(), a[:, 1].max()], np.float64))
