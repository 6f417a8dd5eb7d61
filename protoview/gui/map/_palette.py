"""Colours for the map: a small cached set of brushes, readable for 10 and for 100+ classes.

pyqtgraph's symbol atlas is keyed by brush object, so every point must reuse one of a few
``QBrush`` objects (a new brush per point makes ``setData`` 40x slower). :class:`Palette`
owns those brushes; :func:`class_colors` gives the colours for any number of classes.
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PySide6 import QtGui

from protoview.present.derive import ENTROPY_BINS

_TAB10 = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]
_TAB20_EXTRA = [
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]
UNKNOWN_COLOR = "#9a9a9a"
CORRECT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"


@lru_cache(maxsize=32)
def class_colors(n: int) -> tuple[str, ...]:
    """``n`` distinct colours as ``#rrggbb``: tab10, then tab20, then a golden-angle list.

    The generated list (n > 20) walks hue by the golden angle and cycles lightness and
    saturation, so neighbouring class ids never get similar colours (glasbey-like).
    """
    if n < 0:
        raise ValueError(f"number of colours must be >= 0, got {n}")
    if n <= 10:
        return tuple(_TAB10[:n])
    if n <= 20:
        return tuple((_TAB10 + _TAB20_EXTRA)[:n])
    out = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        light = (0.42, 0.58, 0.34, 0.70)[i % 4]
        sat = (0.85, 0.65, 0.95)[(i // 4) % 3]
        r, g, b = colorsys.hls_to_rgb(hue, light, sat)
        out.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return tuple(out)


def entropy_colors(n: int = ENTROPY_BINS) -> list[str]:
    """A perceptually ordered ramp (viridis-like) of ``n`` colours, low -> high."""
    anchors = np.array(
        [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float
    )
    t = np.linspace(0, 1, max(n, 1))
    pos = t * (len(anchors) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(anchors) - 2)
    frac = (pos - lo)[:, None]
    rgb = anchors[lo] * (1 - frac) + anchors[lo + 1] * frac
    return [f"#{int(r):02x}{int(g):02x}{int(b):02x}" for r, g, b in rgb]


class Palette:
    """Cached brushes for a list of colours plus one for "unknown" (code -1).

    ``brushes_for(codes)`` maps an int array (N,) to an object array (N,) of shared QBrush
    objects; codes outside ``[0, len)`` get the unknown brush. ``dimmed`` gives the same
    colours at low alpha, for highlighting a subset.
    """

    def __init__(self, colors: list[str] | tuple[str, ...], alpha: int = 220) -> None:
        self.colors = list(colors)
        self._brushes = self._make(alpha)
        self._dim = self._make(40)

    def _make(self, alpha: int) -> np.ndarray:
        brushes = []
        for c in [*self.colors, UNKNOWN_COLOR]:
            q = QtGui.QColor(c)
            q.setAlpha(alpha)
            brushes.append(QtGui.QBrush(q))
        arr = np.empty(len(brushes), dtype=object)
        arr[:] = brushes
        return arr

    def __len__(self) -> int:
        return len(self.colors)

    def _index(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        bad = (codes < 0) | (codes >= len(self.colors))
        return np.where(bad, len(self.colors), codes)

    def brushes_for(self, codes: np.ndarray, dim_mask: np.ndarray | None = None) -> np.ndarray:
        """Shared brushes (N,) object array for ``codes`` (N,) int; dimmed where ``dim_mask``."""
        idx = self._index(codes)
        out = self._brushes[idx]
        if dim_mask is not None and dim_mask.any():
            out = out.copy()
            out[dim_mask] = self._dim[idx[dim_mask]]
        return out

    def brush(self, code: int) -> QtGui.QBrush:
        return self._brushes[self._index(np.array([code]))[0]]


def group_colors(matched: np.ndarray, n_classes: int) -> list[str]:
    """Colours of groups (prototypes, clusters): a group matched to class c
    (:func:`protoview.present.derive.group_classes`) takes class c's colour, so a cluster keeps its
    colour when its group is its class; every other group gets a colour that no class of
    the map uses (never another class's colour)."""
    matched = np.asarray(matched, np.int64)
    k = len(matched)
    spare = iter(class_colors(n_classes + k)[n_classes:])
    cls = class_colors(n_classes)
    return [cls[int(c)] if 0 <= c < n_classes else next(spare) for c in matched]
