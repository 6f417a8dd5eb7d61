"""The map's layers (private to :mod:`protoview.gui.map`): the scatter items of samples,
class centers, proxies and prototypes, the proxy lines and the density image, owned by
:class:`MapLayers` with what drawing them caches (palettes, the samples' last style, the
prototype groups, the members of a glyph); and the plain functions over a GeometryState
they draw from (positions, colour codes, members of a clicked glyph).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from protoview.gui.map import _density as density
from protoview.gui.map._bigmap import BigSamples
from protoview.gui.map._items import move_points, recolor_points
from protoview.gui.map._palette import (
    CORRECT_COLOR,
    WRONG_COLOR,
    Palette,
    class_colors,
    entropy_colors,
    group_colors,
)
from protoview.present import derive
from protoview.present.derive import ENTROPY_BINS, TASK_MODE, VERSUS_MODE

_BASE = {"samples": 6.0, "centers": 22.0, "proxies": 13.0, "proto_min": 9.0, "proto_max": 22.0}
#: fixed (green), broken (red), unchanged right (light grey), unchanged wrong (dark grey):
#: each at least 3:1 against the light, dark and presentation backgrounds (the light grey
#: was #cfcfcf, 1.6:1 on white), the two greys 1.9:1 apart
VERSUS_COLORS = (CORRECT_COLOR, WRONG_COLOR, "#949494", "#666666")
LAYERS = ("samples", "centers", "proxies", "prototypes")
_MAX_PALETTES = 32


class MapLayers:
    """The layer items of ``view`` (an EmbeddingView), created in drawing order and added
    to it, and the caches of drawing them (the numbers drawn come from
    :mod:`protoview.present.derive`). ``items``: name -> item (``samples``,
    ``proxy_lines``, ``prototypes``, ``proxies``, ``centers``, ``density``).

    Reads the view's public state (``state``, ``color_mode``, ``glyph_scale``,
    ``highlight_mask``, ``versus_predictions``, ``assignment_target``, ``dense``...);
    call :meth:`forget_state` when the view gets a new state.
    """

    def __init__(self, view) -> None:
        self.view = view
        self.items = _make_items(view)
        self.items["density"] = density.make_item()
        view.addItem(self.items["density"])
        self._palettes: dict[tuple, Palette] = {}
        self._sample_style: tuple | None = None  # (mode, size, palette id, codes, dim)
        self._density_drawn: tuple | None = None  # (mode, palette id, xy, codes, dim) drawn
        self._dense_size = 0.0  # the dots' size a dense map drew
        self.big = BigSamples(self)  # the samples of a dense map, drawn for the view's range
        self._group_info: tuple | None = None  # (key, (matched, colours))
        self._members: dict[tuple[str, int], np.ndarray] = {}

    def __getitem__(self, name: str):
        return self.items[name]

    def set_outline(self, color: str) -> None:
        """The outlines of stars, diamonds and triangles and the proxy lines in ``color``
        (dark on a light background, light on a dark one: never an outline that vanishes)."""
        for name, width in (("centers", 1.5), ("proxies", 1.0), ("prototypes", 1.2)):
            self.items[name].setPen(pg.mkPen(color, width=width))
        line = pg.mkColor(color)
        line.setAlpha(150)
        self.items["proxy_lines"].setPen(pg.mkPen(line, width=1))

    def forget_state(self) -> None:
        """A new state: members and prototype groups are computed again."""
        self._members = {}
        self._group_info = None

    def forget_density(self) -> None:
        """The map is no longer dense: the image hidden, its samples forgotten."""
        self._density_drawn = None
        self.big.clear()

    def sample_dot_size(self) -> float:
        """The diameter of a sample's dot in pixels."""
        return sample_size(self.view)

    def samples_redrawn(self) -> None:
        """A dense map drew its samples for a new range: a large selection's rings follow
        (only those in view are drawn)."""
        if self.view.selection.size > 20_000:  # MapMarks rings those in view
            self.view.marks.update()

    def sample_of_spot(self, spot: int) -> int:
        """The sample drawn as point ``spot`` of the samples scatter."""
        return self.big.sample_of(spot) if self.view.dense else int(spot)

    # ---------------------------------------------------------------- colours
    def palette(self, kind: str) -> Palette:
        """The cached palette of ``kind`` (a colour mode, or ``class``)."""
        view = self.view
        if kind == "entropy":
            key = ("entropy", ENTROPY_BINS)
        elif kind == "assignment" and view.assignment_target == "prototypes":
            key = ("groups", tuple(self.group_info()[1]))
        elif kind == "correctness":
            key = ("correctness", 2)
        elif kind == VERSUS_MODE:
            key = ("versus", len(VERSUS_COLORS))
        elif kind == TASK_MODE:
            layout = derive.task_layout(view.state)
            key = ("class", 1 if layout is None else layout[1])
        else:
            key = ("class", view.num_classes())
        if key not in self._palettes:
            if len(self._palettes) > _MAX_PALETTES:
                self._palettes.clear()
            self._palettes[key] = Palette(_palette_colors(key))
        return self._palettes[key]

    def mode_palette(self) -> Palette:
        """The palette of the samples in the view's colour mode."""
        mode = self.view.color_mode
        own = ("entropy", "assignment", "correctness", VERSUS_MODE, TASK_MODE)
        return self.palette(mode if mode in own else "class")

    def group_info(self) -> tuple[np.ndarray, list[str]]:
        """(matched class per prototype group (G,), colour per group) for the current state:
        a group that matches a class takes its colour (and its name). Cached until the view
        gets a new state or target."""
        view = self.view
        state, target = view.state, view.assignment_target
        key = (target, len(view.class_names))
        cached = self._group_info
        if cached is not None and cached[0] == key:
            return cached[1]
        n_classes = max(view.num_classes(), 1)
        matched = derive.group_classes(state, n_classes)
        info = (matched, group_colors(matched, n_classes))
        self._group_info = (key, info)
        return info

    def prototype_classes(self) -> np.ndarray:
        """(K,) the class each prototype's cluster matched (-1: none)."""
        matched, _ = self.group_info()
        k = len(self.view.state.prototypes_embedding)
        return np.concatenate([matched[:k], np.full(max(0, k - len(matched)), -1, np.int64)])

    def prototype_brushes(self) -> list:
        _, colors = self.group_info()
        k = len(self.view.state.prototypes_embedding)
        return [pg.mkBrush(_with_alpha(colors[j] if j < len(colors) else "#9a9a9a", 235))
                for j in range(k)]

    def members(self, kind: str, index: int) -> np.ndarray:
        """(N,) bool: the members of center / proxy / prototype ``index`` (cached)."""
        key = (kind, index)
        if key not in self._members:
            self._members[key] = derive.members(self.view.state, kind, index)
        return self._members[key]

    # ---------------------------------------------------------------- drawing
    def show_positions(self, pos: dict) -> None:
        """Move every layer's points to ``pos`` (restyled when the samples changed)."""
        items = self.items
        dense = self.view.dense
        if not dense and len(items["samples"].data) != len(pos["samples"]):
            self.apply_styles(pos)
        else:
            if not dense:  # the density image was drawn by apply_styles (no animation there)
                move_points(items["samples"], pos["samples"][:, 0], pos["samples"][:, 1])
            for name in ("centers", "proxies", "prototypes"):
                move_points(items[name], pos[name][:, 0], pos[name][:, 1])
        x, y = _pairs(self.view.state, pos)
        items["proxy_lines"].setData(x=x, y=y, connect="pairs")

    def apply_styles(self, pos: dict | None = None) -> None:
        """setData on every layer with shared brushes (one call per layer)."""
        view, items = self.view, self.items
        state, s = view.state, view.glyph_scale * _font_scale(view)
        pos = pos or positions(state)
        codes = derive.sample_codes(state, view.color_mode, view.versus_predictions)
        self._style_samples(pos["samples"], codes, sample_size(view))
        cls_pal = self.palette("class")
        items["centers"].setData(pos["centers"][:, 0], pos["centers"][:, 1],
                                 brush=cls_pal.brushes_for(state.center_labels),
                                 size=_BASE["centers"] * s)
        items["proxies"].setData(pos["proxies"][:, 0], pos["proxies"][:, 1],
                                 brush=cls_pal.brushes_for(state.proxy_classes),
                                 size=proxy_size(view))
        items["prototypes"].setData(pos["prototypes"][:, 0], pos["prototypes"][:, 1],
                                    brush=self.prototype_brushes(),
                                    size=_prototype_sizes(state.prototype_density) * s)

    def _style_samples(self, xy: np.ndarray, codes: np.ndarray, size: float) -> None:
        """The samples' colours: only what changed since the last call is redone."""
        view, samples = self.view, self.items["samples"]
        highlight = view.highlight_mask
        dim = None if highlight is None else ~highlight
        style = (view.color_mode, size, id(self.mode_palette()), codes,
                 None if dim is None else np.asarray(dim))
        old = self._sample_style
        if view.dense:
            # too many samples for one scatter: the image or the dots around the view
            # (protoview.gui.map._bigmap), drawn again only for other points, colours or
            # dimming (a theme or a text size changes nothing there)
            self._sample_style = None
            pal = self.mode_palette()
            drawn = self._density_drawn
            same_dim = (drawn is not None and (drawn[4] is None) == (dim is None)
                        and (dim is None or np.array_equal(drawn[4], dim)))
            if not (drawn is not None and drawn[:2] == (view.color_mode, id(pal)) and same_dim
                    and np.array_equal(drawn[2], xy) and np.array_equal(drawn[3], codes)):
                colors = density.palette_rgba(pal, len(pal))
                self.big.set_samples(xy, codes, colors, dim)
                self._density_drawn = (view.color_mode, id(pal), xy, codes,
                                       None if dim is None else np.array(dim, copy=True))
            elif size != self._dense_size:
                self.big.set_samples(xy, codes, self.big.colors, dim)
            self._dense_size = size
            return
        if (old is not None and len(samples.data) == len(codes)
                and old[:3] == style[:3] and np.array_equal(old[3], codes)
                and (old[4] is None) == (style[4] is None)
                and (old[4] is None or np.array_equal(old[4], style[4]))):
            # same colours as drawn: move the points only (setData rebuilds every spot:
            # ~0.3 s at 50k points, per call)
            move_points(samples, xy[:, 0], xy[:, 1])
        elif (old is not None and len(samples.data) == len(codes) == len(old[3])
                and old[:3] == style[:3] and old[4] is None and style[4] is None):
            # same mode and points, some colours changed (e.g. predictions after a step)
            brushes = self.mode_palette().brushes_for(codes, dim)
            recolor_points(samples, brushes, np.flatnonzero(old[3] != codes))
            move_points(samples, xy[:, 0], xy[:, 1])
            self._sample_style = (style[0], style[1], style[2], codes.copy(), None)
        else:
            brushes = self.mode_palette().brushes_for(codes, dim)
            samples.setData(xy[:, 0], xy[:, 1], brush=brushes, size=size, pen=None)
            self._sample_style = (style[0], style[1], style[2], codes.copy(),
                                  None if dim is None else np.array(dim, copy=True))


def _palette_colors(key: tuple) -> list[str]:
    if key[0] == "entropy":
        return entropy_colors(ENTROPY_BINS)
    if key[0] == "correctness":
        return [WRONG_COLOR, CORRECT_COLOR]
    if key[0] == "versus":
        return list(VERSUS_COLORS)
    if key[0] == "groups":
        return list(key[1])
    return class_colors(key[1])


def _make_items(view) -> dict:
    """Create the layer items in drawing order (samples under everything else)."""
    samples = pg.ScatterPlotItem(pxMode=True, pen=None, symbol="o", size=6, useCache=True)
    lines = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((90, 90, 90, 150), width=1))
    centers = pg.ScatterPlotItem(pxMode=True, symbol="star", pen=pg.mkPen("k", width=1.5))
    proxies = pg.ScatterPlotItem(pxMode=True, symbol="d", pen=pg.mkPen("k", width=1))
    protos = pg.ScatterPlotItem(pxMode=True, symbol="t", pen=pg.mkPen("k", width=1.2))
    # drawing order: samples, proxy lines, prototypes, proxies, centers on top (a
    # prototype never covers a star)
    items = {"samples": samples, "proxy_lines": lines, "prototypes": protos,
             "proxies": proxies, "centers": centers}
    for z, item in enumerate(items.values()):
        item.setZValue(z)
        view.addItem(item)
    return items


def positions(state) -> dict[str, np.ndarray] | None:
    """Each layer's (n, 2) positions of ``state``, float32 or float64 as the state holds
    them (no copy: a million samples' conversion cost 20 ms a call)."""
    if state is None:
        return None
    centers = _floats(state.centers_embedding)
    empty = empty_centers(state)
    if empty.any():  # a class without samples has no center to show (its row stays laid out)
        centers = centers.astype(np.float64)
        centers[empty] = np.nan
    return {
        "samples": _floats(state.embedding),
        "centers": centers,
        "proxies": _floats(state.proxies_embedding),
        "prototypes": _floats(state.prototypes_embedding),
    }


_EMPTY_CACHE: list = [None, None, None]  # labels, center labels, the answer


def empty_centers(state) -> np.ndarray:
    """:meth:`GeometryState.empty_centers`, cached for the same label arrays (called on
    every redraw)."""
    labels, classes = state.labels, state.center_labels
    if _EMPTY_CACHE[0] is not labels or _EMPTY_CACHE[1] is not classes:
        _EMPTY_CACHE[:] = [labels, classes, state.empty_centers()]
    return _EMPTY_CACHE[2]


def _floats(a) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def same_shapes(a: dict, b: dict) -> bool:
    return all(a[k].shape == b[k].shape for k in b)


def interpolate(start: dict, end: dict, frames: int) -> list[dict]:
    """``frames`` position dicts easing from ``start`` to ``end`` (the last equals ``end``)."""
    out = []
    for f in range(1, frames + 1):
        t = f / frames
        t = 1 - (1 - t) ** 3  # ease-out
        out.append({k: np.where(np.isfinite(start[k]), start[k] * (1 - t) + end[k] * t, end[k])
                    for k in end})
    out[-1] = {k: v.copy() for k, v in end.items()}
    return out


def _pairs(state, pos: dict) -> tuple[np.ndarray, np.ndarray]:
    """Line segments proxy -> its class center, as x, y arrays (2M,) for connect='pairs'."""
    cls = np.asarray(state.proxy_classes, np.int64)
    if cls.size == 0 or pos["centers"].size == 0:
        return np.zeros(0), np.zeros(0)
    index = {int(c): i for i, c in enumerate(state.center_labels)}
    rows = [(j, index[int(c)]) for j, c in enumerate(cls) if int(c) in index]
    if not rows:
        return np.zeros(0), np.zeros(0)
    pj, ci = (np.array(r) for r in zip(*rows, strict=True))
    seg = np.empty((2 * len(pj), 2))
    seg[0::2] = pos["proxies"][pj]
    seg[1::2] = pos["centers"][ci]
    ok = np.isfinite(seg).all(axis=1).reshape(-1, 2).all(axis=1).repeat(2)
    return seg[ok, 0], seg[ok, 1]


#: A sample's dot grows at most this much with the glyph scale (a talk's 1.8 made the dots
#: of a cluster merge into one blob; the stars, diamonds and triangles take all of it).
SAMPLE_SCALE_LIMIT = 1.2


def sample_size(view) -> float:
    """Diameter of a sample's dot in pixels (glyph scale, up to :data:`SAMPLE_SCALE_LIMIT`,
    and font size included)."""
    return _BASE["samples"] * min(view.glyph_scale, SAMPLE_SCALE_LIMIT) * _font_scale(view)


def proxy_size(view) -> float:
    """Diameter in pixels of a proxy's diamond (glyph scale and font size included)."""
    return _BASE["proxies"] * view.glyph_scale * _font_scale(view)


def glyph_size(view) -> float:
    """Diameter in pixels of the largest glyph (a class center's star, the densest
    prototype's triangle), glyph scale and font size included."""
    return max(_BASE["centers"], _BASE["proto_max"]) * view.glyph_scale * _font_scale(view)


def _with_alpha(color: str, alpha: int):
    from PySide6 import QtGui

    q = QtGui.QColor(color)
    q.setAlpha(alpha)
    return q


def _font_scale(view) -> float:
    """Glyph sizes follow the font (high-DPI / large-font systems get larger glyphs)."""
    return max(0.75, view.fontMetrics().height() / 16.0)


def _prototype_sizes(density) -> np.ndarray:
    d = np.asarray(density, np.float64)
    if d.size == 0:
        return np.zeros(0)
    ok = np.isfinite(d)
    if not ok.any() or np.ptp(d[ok]) == 0:
        return np.full(d.size, (_BASE["proto_min"] + _BASE["proto_max"]) / 2)
    t = np.where(ok, (d - d[ok].min()) / np.ptp(d[ok]), 0.5)
    return _BASE["proto_min"] + t * (_BASE["proto_max"] - _BASE["proto_min"])
