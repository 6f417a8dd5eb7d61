"""The samples of a large map as an image at the screen's resolution (private to
:mod:`protoview.gui.map`).

Above :data:`DENSITY_THRESHOLD` samples the map does not hand every sample to a scatter
item (building one costs ~5 us a point, painting one ~0.25 us: 50k points pan at ~80
repaints/s, 1M would take seconds). While more than :data:`VISIBLE_POINTS` samples lie in
the view, the samples in and around the view are counted per pixel of the screen
(:func:`render`): each pixel takes the colour of its most frequent colour code (the colour
mode's palette) with an opacity that grows with log(count); no sample is dropped, and the
counts per colour code of the image are kept (``Rendered.per_code``) so that a test can
compare them with the data's. With fewer samples in view they are a scatter of just those
samples (:mod:`protoview.gui.map._bigmap` chooses). Centers, proxies and prototypes stay
glyphs on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg

DENSITY_THRESHOLD = 50_000
VISIBLE_POINTS = 10_000
_MIN_ALPHA = 0.55
#: the (pixel, code) count table is one bincount while it has at most this many entries;
#: above (many codes on a large screen) the counts come from a sort of the keys
_TABLE_LIMIT = 24_000_000


@dataclass
class Rendered:
    """An image of samples: ``image`` (height, width, 4) uint8, row 0 at ``y0`` (the
    bottom); ``rect`` (x0, y0, x1, y1) the data rectangle it covers; ``counts`` (height,
    width) samples per pixel; ``per_code`` (K + 1,) the samples of each colour code in
    the image (the last: unknown codes); ``drawn`` how many samples it counts; ``spread``
    the radius in pixels that lone samples were widened by (0: none, see :func:`render`)."""

    image: np.ndarray
    rect: tuple[float, float, float, float]
    counts: np.ndarray
    per_code: np.ndarray
    drawn: int
    spread: int = 0


def palette_rgba(palette, n_codes: int) -> np.ndarray:
    """(n_codes + 1, 4) uint8 colours of codes 0..n_codes-1, the last row for unknown."""
    out = np.empty((n_codes + 1, 4), np.uint8)
    for i in range(n_codes + 1):
        c = palette.brush(i if i < n_codes else -1).color()
        out[i] = (c.red(), c.green(), c.blue(), 255)
    return out


def render(xy: np.ndarray, codes: np.ndarray, colors: np.ndarray,
           rect: tuple[float, float, float, float], width: int, height: int,
           dot_px: float = 0.0) -> Rendered:
    """The samples ``xy`` (N, 2) inside ``rect`` (x0, y0, x1, y1; a sample on the right or
    top edge is outside, one on the left or bottom edge inside) counted on a ``width`` x
    ``height`` grid of pixels; ``codes`` (N,) index ``colors`` (K + 1, 4), any code
    outside [0, K) counts as unknown (the last colour). Non-finite samples are not drawn.

    ``dot_px``: the diameter of a sample's dot in the scatter the map shows when zoomed in
    further. Where most samples have a pixel of their own (fewer than 3 a filled pixel on
    average) they are widened towards that dot, opaque, into empty pixels only (no count
    changes, no filled pixel changes colour), so zooming in from the image to the dots does
    not jump from faint specks to dots."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    width, height = max(int(width), 1), max(int(height), 1)
    k1 = len(colors)
    fx = np.asarray(xy[:, 0], np.float64) - x0
    fx *= width / max(x1 - x0, 1e-300)
    fy = np.asarray(xy[:, 1], np.float64) - y0
    fy *= height / max(y1 - y0, 1e-300)
    inside = (fx >= 0) & (fx < width) & (fy >= 0) & (fy < height)  # NaN: outside
    if inside.all():
        cell = fy.astype(np.int64) * width + fx.astype(np.int64)
        c = np.asarray(codes, np.int64)
    else:
        cell = fy[inside].astype(np.int64) * width + fx[inside].astype(np.int64)
        c = np.asarray(codes, np.int64)[inside]
    c = np.where((c < 0) | (c >= k1 - 1), k1 - 1, c)
    n_pix = width * height
    total = np.bincount(cell, minlength=n_pix)
    if n_pix * k1 <= _TABLE_LIMIT:
        # a row of counts per code; the most frequent code per pixel by a running max
        table = np.bincount(c * n_pix + cell, minlength=n_pix * k1).reshape(k1, n_pix)
        per_code = table.sum(axis=1)
        best, top = table[0].copy(), np.zeros(n_pix, np.int64)
        for k in range(1, k1):
            if per_code[k]:
                more = table[k] > best
                best[more] = table[k][more]
                top[more] = k
    else:  # many colour codes: count (pixel, code) pairs by sorting their keys
        keys, counts = np.unique(cell * k1 + c, return_counts=True)
        key_cell, key_code = keys // k1, keys % k1
        order = np.lexsort((counts, key_cell))  # by pixel, then count: a pixel's last wins
        key_cell, key_code = key_cell[order], key_code[order]
        last = np.flatnonzero(np.r_[key_cell[1:] != key_cell[:-1], True])
        top = np.zeros(n_pix, np.int64)
        top[key_cell[last]] = key_code[last]
        per_code = np.bincount(keys % k1, weights=counts, minlength=k1).astype(np.int64)
    img = colors[top]  # (n_pix, 4)
    filled = total > 0
    level = np.log1p(total[filled]) / np.log1p(max(int(total.max(initial=0)), 1))
    img[:, 3] = 0
    n_filled = int(np.count_nonzero(filled))
    lone = float(np.clip((3.0 - cell.size / max(n_filled, 1)) / 2.0, 0.0, 1.0))
    floor = _MIN_ALPHA + (1 - _MIN_ALPHA) * lone
    img[filled, 3] = np.round(255 * (floor + (1 - floor) * level)).astype(np.uint8)
    img = img.reshape(height, width, 4)
    radius = int(round(lone * max(dot_px - 1.0, 0.0) / 2.0))
    if radius:
        img = _widen(img, filled.reshape(height, width), radius)
    return Rendered(img, (x0, y0, x1, y1), total.reshape(height, width), per_code,
                    int(cell.size), radius)


def _widen(img: np.ndarray, filled: np.ndarray, radius: int) -> np.ndarray:
    """Each empty pixel within ``radius`` (a disc) of a filled one takes the colour of the
    nearest (the first in a fixed order among equals); filled pixels stay as they are."""
    out = img.copy()
    taken = filled.copy()
    h, w = filled.shape
    offsets = sorted(((dy, dx) for dy in range(-radius, radius + 1)
                      for dx in range(-radius, radius + 1)
                      if 0 < dy * dy + dx * dx <= radius * radius + radius),
                     key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    for dy, dx in offsets:
        # target [y, x] takes source [y - dy, x - dx]
        ty, sy = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h - max(dy, 0))
        tx, sx = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w - max(dx, 0))
        put = filled[sy, sx] & ~taken[ty, tx]
        out[ty, tx][put] = img[sy, sx][put]
        taken[ty, tx] |= put
    return out


def make_item() -> pg.ImageItem:
    item = pg.ImageItem(axisOrder="row-major")
    item.setZValue(-1)  # under the glyphs (the scatter layers start at 0)
    item.setVisible(False)
    return item


def show(item: pg.ImageItem, rendered: Rendered) -> None:
    """Put ``rendered`` on ``item`` over its data rectangle."""
    from PySide6 import QtCore

    x0, y0, x1, y1 = rendered.rect
    item.setImage(rendered.image, autoLevels=False)
    item.setRect(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))


def tooltip(n: int) -> str:
    return (f"{n:,} samples: where more than {VISIBLE_POINTS:,} are in view they are drawn "
            "as an image, each pixel in its most frequent colour, more opaque where denser; "
            "zoom in for single dots. Hover and selection work on single samples at any zoom.")
