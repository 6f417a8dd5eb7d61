"""The samples of a very large map as one aggregated image (private to
:mod:`protoview.gui.map`).

Above :data:`DENSITY_THRESHOLD` samples a scatter of every point is too slow to build and
to paint; the samples become a ``BINS`` x ``BINS`` image instead: each bin takes the
colour of the most frequent colour code among its points (the current colour mode's
palette), with an opacity that grows with log(count). Centers, proxies and prototypes
stay glyphs on top.

Measured offscreen (2 CPU cores shared with a running build): at 1,000,000 samples
``set_state`` 0.4-0.8 s, a repaint ~13 ms, a change of colour mode 0.7 s
(tests/gui/test_map_density.py prints them).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

DENSITY_THRESHOLD = 200_000
BINS = 512
_MIN_ALPHA = 0.3


def palette_rgba(palette, n_codes: int) -> np.ndarray:
    """(n_codes + 1, 4) uint8 colours of codes 0..n_codes-1, the last row for unknown."""
    out = np.empty((n_codes + 1, 4), np.uint8)
    for i in range(n_codes + 1):
        c = palette.brush(i if i < n_codes else -1).color()
        out[i] = (c.red(), c.green(), c.blue(), 255)
    return out


def density_image(xy: np.ndarray, codes: np.ndarray, colors: np.ndarray,
                  bins: int = BINS) -> tuple[np.ndarray | None, QtCore.QRectF | None]:
    """An RGBA image (bins, bins, 4) uint8 indexed [x, y] and the data rectangle it covers.

    codes (N,) index ``colors`` (K + 1, 4), with any code outside [0, K) drawn in the
    last (unknown) colour. Returns (None, None) when no point is finite.
    """
    xy = np.asarray(xy)
    ok = np.isfinite(xy).all(axis=1)
    if not ok.any():
        return None, None
    pts = xy[ok]
    k = len(colors) - 1
    c = np.asarray(codes, np.int64)[ok]
    c = np.where((c < 0) | (c >= k), k, c)
    lo = pts.min(axis=0).astype(np.float64)
    span = np.maximum(pts.max(axis=0) - lo, 1e-9).astype(np.float64)
    ij = np.minimum(((pts - lo) / span * bins).astype(np.int64), bins - 1)
    cell = ij[:, 0] * bins + ij[:, 1]
    # count per (cell, code), then the most frequent code per cell
    keys, counts = np.unique(cell * (k + 1) + c, return_counts=True)
    key_cell, key_code = keys // (k + 1), keys % (k + 1)
    order = np.lexsort((counts, key_cell))  # by cell, then count: a cell's last is its max
    key_cell, key_code = key_cell[order], key_code[order]
    last = np.flatnonzero(np.r_[key_cell[1:] != key_cell[:-1], True])
    total = np.bincount(cell, minlength=bins * bins)
    img = np.zeros((bins * bins, 4), np.uint8)
    top_cells = key_cell[last]
    img[top_cells] = colors[key_code[last]]
    filled = total > 0
    level = np.log1p(total[filled]) / np.log1p(max(int(total.max()), 1))
    img[filled, 3] = np.round(255 * (_MIN_ALPHA + (1 - _MIN_ALPHA) * level)).astype(np.uint8)
    rect = QtCore.QRectF(lo[0], lo[1], span[0], span[1])
    return img.reshape(bins, bins, 4), rect


def make_item() -> pg.ImageItem:
    item = pg.ImageItem(axisOrder="col-major")
    item.setZValue(-1)  # under the glyphs (the scatter layers start at 0)
    item.setVisible(False)
    return item


def draw(item: pg.ImageItem, xy: np.ndarray, codes: np.ndarray, colors: np.ndarray) -> None:
    img, rect = density_image(xy, codes, colors)
    if img is None:
        item.clear()
        return
    item.setImage(img, autoLevels=False)
    item.setRect(rect)
    item.setVisible(True)


def tooltip(n: int) -> str:
    return (f"{n:,} samples, drawn as a density image (more than {DENSITY_THRESHOLD:,}): "
            "each cell shows its most frequent colour, more opaque where denser. "
            "Hover on single samples is off; box selection still works.")
