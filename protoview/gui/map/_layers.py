"""The map's layers as plain functions over a GeometryState (private to map_view).

Positions, colour codes, members of a clicked glyph, the selection summary and the legend
live here so that :class:`~protoview.gui.map_view.EmbeddingView` stays small.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

_BASE = {"samples": 6.0, "centers": 22.0, "proxies": 13.0, "proto_min": 9.0, "proto_max": 22.0}
MAX_LEGEND_CLASSES = 20
#: The colour mode comparing each sample's verdict with another run's (fixed / broken).
VERSUS_MODE = "fixed/broken"


def make_items(view) -> dict:
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
    if state is None:
        return None
    return {
        "samples": np.asarray(state.embedding, np.float64),
        "centers": np.asarray(state.centers_embedding, np.float64),
        "proxies": np.asarray(state.proxies_embedding, np.float64),
        "prototypes": np.asarray(state.prototypes_embedding, np.float64),
    }


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


def show_positions(view, pos: dict, move, full: bool) -> None:
    items = view.items
    dense = getattr(view, "dense", False)
    if full or (not dense and len(items["samples"].data) != len(pos["samples"])):
        apply_styles(view, pos)
    else:
        if not dense:  # the density image was drawn by apply_styles (no animation there)
            move(items["samples"], pos["samples"][:, 0], pos["samples"][:, 1])
        for name in ("centers", "proxies", "prototypes"):
            move(items[name], pos[name][:, 0], pos[name][:, 1])
    x, y = _pairs(view.state, pos)
    items["proxy_lines"].setData(x=x, y=y, connect="pairs")


def num_classes(state) -> int:
    best = 0
    for arr in (state.labels, state.predictions, state.center_labels, state.proxy_classes):
        arr = np.asarray(arr)
        if arr.size:
            best = max(best, int(arr.max()) + 1)
    return best


def num_groups(state) -> int:
    a = state.assignment
    k = len(state.prototypes_embedding)
    if a is None or np.asarray(a).size == 0:
        return max(k, 1)
    return max(int(np.max(a)) + 1, k, 1)


def sample_codes(state, mode: str, versus: np.ndarray | None = None) -> np.ndarray:
    """The colour code (N,) of each sample in ``mode`` (-1 unknown); ``versus``: the other
    run's predictions (N,) for the fixed / broken mode."""
    n = len(state.embedding)
    if mode == "label":
        return np.asarray(state.labels, np.int64)
    if mode == "prediction":
        return np.asarray(state.predictions, np.int64)
    if mode == "assignment":
        a = state.assignment
        return np.full(n, -1, np.int64) if a is None else np.asarray(a, np.int64)
    if mode == "correctness":
        lab, pred = np.asarray(state.labels), np.asarray(state.predictions)
        codes = (lab == pred).astype(np.int64)
        codes[(lab < 0) | (pred < 0)] = -1
        return codes
    if mode == VERSUS_MODE:
        from protoview.core.session import versus_codes

        return versus_codes(state.predictions, versus, state.labels)
    from protoview.gui.map._palette import entropy_codes

    return entropy_codes(state.entropy, num_classes(state))


def _mode_palette(view):
    mode = view.color_mode
    own = ("entropy", "assignment", "correctness", VERSUS_MODE)
    return view.palette(mode if mode in own else "class")


def sample_size(view) -> float:
    """Diameter of a sample's dot in pixels (glyph scale and font size included)."""
    return _BASE["samples"] * view.glyph_scale * _font_scale(view)


def _nearest_prototype(feats: np.ndarray, protos: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """(N,) index of each row's nearest prototype (squared L2), in chunks of rows."""
    p2 = (protos.astype(np.float64) ** 2).sum(1)
    out = np.empty(len(feats), np.int64)
    for s in range(0, len(feats), chunk):
        f = feats[s:s + chunk].astype(np.float64)
        out[s:s + chunk] = (-2.0 * f @ protos.T.astype(np.float64) + p2).argmin(axis=1)
    return out


def prototype_groups(state, target: str = "prototypes") -> np.ndarray | None:
    """(N,) the prototype each sample belongs to: the assignment when it is to the
    prototypes (k-means, or Sinkhorn to prototypes), else the nearest prototype in
    feature space; None without prototypes (or without features to tell)."""
    k = len(state.prototypes_embedding)
    if target == "prototypes" and state.assignment is not None:
        return np.asarray(state.assignment, np.int64)
    if k == 0:
        return None
    feats = np.asarray(state.features)
    if feats.ndim == 2 and feats.shape[1] and len(feats) == len(state.labels) \
            and np.shape(state.prototypes) == (k, feats.shape[1]):
        return _nearest_prototype(feats, np.asarray(state.prototypes))
    return None


def group_info(view) -> tuple[np.ndarray, list[str]]:
    """(matched class per prototype group (G,), colour per group) for the current state:
    a group that matches a class takes its colour (and its name). Cached until the view
    gets a new state or target (``view._group_info = None``)."""
    from protoview.gui.map._palette import group_colors, match_groups_to_classes

    state, target = view.state, view.assignment_target
    key = (target, len(view.class_names))
    cached = getattr(view, "_group_info", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    n_classes = max(view._num_classes(), 1)
    groups = prototype_groups(state, target)
    k = len(state.prototypes_embedding)
    n_groups = k if groups is None or groups.size == 0 else max(k, int(groups.max()) + 1)
    matched = (np.full(n_groups, -1, np.int64) if groups is None
               else match_groups_to_classes(groups, state.labels, n_groups, n_classes))
    info = (matched, group_colors(matched, n_classes))
    view._group_info = (key, info)
    return info


def prototype_classes(view) -> np.ndarray:
    """(K,) the class each prototype's cluster matched (-1: none)."""
    matched, _ = group_info(view)
    k = len(view.state.prototypes_embedding)
    return np.concatenate([matched[:k], np.full(max(0, k - len(matched)), -1, np.int64)])


def prototype_brushes(view) -> list:
    _, colors = group_info(view)
    k = len(view.state.prototypes_embedding)
    return [pg.mkBrush(_with_alpha(colors[j] if j < len(colors) else "#9a9a9a", 235))
            for j in range(k)]


def _with_alpha(color: str, alpha: int):
    from PySide6 import QtGui

    q = QtGui.QColor(color)
    q.setAlpha(alpha)
    return q


def apply_styles(view, pos: dict | None = None) -> None:
    """setData on every layer with shared brushes (one call per layer)."""
    state, s, items = view.state, view.glyph_scale * _font_scale(view), view.items
    pos = pos or positions(state)
    codes = sample_codes(state, view.color_mode, view.versus_predictions)
    dim = None if view._highlight is None else ~view._highlight
    size = _BASE["samples"] * s
    style = (view.color_mode, size, id(_mode_palette(view)), codes,
             None if dim is None else np.asarray(dim))
    old = getattr(view, "_sample_style", None)
    if getattr(view, "dense", False):
        # too many samples for a scatter: one aggregated image (protoview.gui.map._density)
        from protoview.gui.map import _density as density

        if len(items["samples"].data):
            items["samples"].setData(x=np.zeros(0), y=np.zeros(0))
        view._sample_style = None
        pal = _mode_palette(view)
        density.draw(items["density"], pos["samples"], codes, density.palette_rgba(pal, len(pal)))
        items["density"].setVisible(items["samples"].isVisible())
    elif (old is not None and len(items["samples"].data) == len(codes)
            and old[:3] == style[:3] and np.array_equal(old[3], codes)
            and (old[4] is None) == (style[4] is None)
            and (old[4] is None or np.array_equal(old[4], style[4]))):
        # same colours as drawn: move the points only (setData rebuilds every spot:
        # ~0.3 s at 50k points, per call)
        from protoview.gui.map._items import move_points

        move_points(items["samples"], pos["samples"][:, 0], pos["samples"][:, 1])
    elif (old is not None and len(items["samples"].data) == len(codes) == len(old[3])
            and old[:3] == style[:3] and old[4] is None and style[4] is None):
        # same mode and points, some colours changed (e.g. predictions after a step)
        from protoview.gui.map._items import move_points, recolor_points

        brushes = _mode_palette(view).brushes_for(codes, dim)
        recolor_points(items["samples"], brushes, np.flatnonzero(old[3] != codes))
        move_points(items["samples"], pos["samples"][:, 0], pos["samples"][:, 1])
        view._sample_style = (style[0], style[1], style[2], codes.copy(), None)
    else:
        brushes = _mode_palette(view).brushes_for(codes, dim)
        items["samples"].setData(pos["samples"][:, 0], pos["samples"][:, 1], brush=brushes,
                                 size=size, pen=None)
        view._sample_style = (style[0], style[1], style[2], codes.copy(),
                              None if dim is None else np.array(dim, copy=True))
    cls_pal = view.palette("class")
    items["centers"].setData(pos["centers"][:, 0], pos["centers"][:, 1],
                             brush=cls_pal.brushes_for(state.center_labels),
                             size=_BASE["centers"] * s)
    items["proxies"].setData(pos["proxies"][:, 0], pos["proxies"][:, 1],
                             brush=cls_pal.brushes_for(state.proxy_classes),
                             size=_BASE["proxies"] * s)
    items["prototypes"].setData(pos["prototypes"][:, 0], pos["prototypes"][:, 1],
                                brush=prototype_brushes(view),
                                size=_prototype_sizes(state.prototype_density) * s)


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


def owner_class(state, kind: str, index: int) -> int:
    if kind == "centers":
        return int(state.center_labels[index])
    if kind == "proxies":
        return int(state.proxy_classes[index])
    return index


def members(state, kind: str, index: int) -> np.ndarray:
    """Boolean mask (N,) of the samples belonging to a center / proxy / prototype
    (prototype: nearest in feature space, as k-means assigns)."""
    if kind == "centers":
        return np.asarray(state.labels) == state.center_labels[index]
    feats = getattr(state, "features", None)
    has_feats = feats is not None and np.asarray(feats).ndim == 2 and len(feats) == len(state.labels)
    if kind == "proxies":
        if has_feats and len(state.proxies):
            f = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
            p = state.proxies / np.maximum(np.linalg.norm(state.proxies, axis=1, keepdims=True), 1e-12)
            return (f @ p.T).argmax(axis=1) == index
        return np.asarray(state.predictions) == state.proxy_classes[index]
    if kind == "prototypes":
        if has_feats and len(state.prototypes) and state.prototypes.shape[1] == feats.shape[1]:
            return _nearest_prototype(np.asarray(feats), np.asarray(state.prototypes)) == index
        a = state.assignment
        return np.zeros(len(state.labels), bool) if a is None else np.asarray(a) == index
    raise ValueError(f"unknown kind {kind!r}")


def _name(names: list[str], c: int) -> str:
    return names[c] if 0 <= c < len(names) else ("?" if c < 0 else str(c))


def hover_text(state, i: int, names: list[str]) -> str:
    lab, pred = int(state.labels[i]), int(state.predictions[i])
    conf = float(state.confidence[i])
    mark = "" if lab < 0 or pred < 0 else (" ✓" if lab == pred else " ✗")
    conf_s = f"{conf:.0%}" if np.isfinite(conf) else "n/a"
    return (f"<b>#{i}</b><br>label {_name(names, lab)}<br>"
            f"prediction {_name(names, pred)}{mark}<br>confidence {conf_s}")


def glyph_hover_text(view, kind: str, index: int, members: np.ndarray) -> str:
    """What the card says over a class center, a proxy or a prototype (rich text)."""
    state = view.state
    n = int(members.sum())
    lab, pred = np.asarray(state.labels)[members], np.asarray(state.predictions)[members]
    known = (lab >= 0) & (pred >= 0)
    acc = f"accuracy {np.mean(lab[known] == pred[known]):.0%}" if known.any() else "accuracy n/a"
    if kind == "centers":
        c = int(state.center_labels[index])
        n_proxies = int((np.asarray(state.proxy_classes) == c).sum())
        return (f"<b>class center {view.class_name(c)}</b><br>{n} samples · {acc}"
                f"<br>{n_proxies} {'proxy' if n_proxies == 1 else 'proxies'}")
    if kind == "proxies":
        c = int(state.proxy_classes[index])
        return (f"<b>proxy {index}</b> of class {view.class_name(c)}<br>"
                f"nearest proxy of {n} samples · {acc}")
    d = float(state.prototype_density[index]) if index < len(state.prototype_density) else np.nan
    text = f"<b>prototype P{index}</b><br>{n} members"
    if np.isfinite(d):
        text += f" · density {d:.3g}"
    ok = lab[lab >= 0]
    if ok.size:
        values, counts = np.unique(ok, return_counts=True)
        top = int(np.argmax(counts))
        text += f"<br>mostly {view.class_name(int(values[top]))} ({counts[top] / ok.size:.0%})"
    return text


def selection_summary(state, sel: np.ndarray, names: list[str]) -> str:
    if state is None or sel.size == 0:
        return "No selection (right-drag a box on the map)."
    lab, pred = np.asarray(state.labels)[sel], np.asarray(state.predictions)[sel]
    known = (lab >= 0) & (pred >= 0)
    acc = (f"accuracy {np.mean(lab[known] == pred[known]):.1%}" if known.any()
           else "accuracy n/a" if (lab >= 0).any() else "no labels")
    shown, what = (lab, "classes") if (lab >= 0).any() else (pred, "predicted")
    values, counts = np.unique(shown, return_counts=True)
    order = np.argsort(-counts)[:4]
    mix = ", ".join(f"{_name(names, int(values[j]))}: {counts[j] / sel.size:.0%}" for j in order)
    more = " …" if len(values) > 4 else ""
    return f"{sel.size} selected · {acc} · {what} {mix}{more}"


def export_selection(path: str, state, sel: np.ndarray) -> None:
    from protoview.errors import ParameterError

    if str(path).endswith(".npy"):
        np.save(path, np.asarray(sel, np.int64))
    elif str(path).endswith(".csv"):
        rows = np.column_stack([sel, np.asarray(state.labels)[sel], np.asarray(state.predictions)[sel]])
        np.savetxt(path, rows, fmt="%d", delimiter=",", header="index,label,prediction", comments="")
    else:
        raise ParameterError(str(path), "choose a file name ending in .npy or .csv")


class _ScaledSample(pg.ItemSample):
    """A legend swatch ``scale`` times pyqtgraph's fixed 20 px (talk size, large
    exports): the glyph grows with the text instead of overlapping the next column."""

    def __init__(self, item, scale: float) -> None:
        super().__init__(item)
        self._scale = float(scale)
        self.setFixedWidth(20 * self._scale)
        self.setFixedHeight(20 * self._scale)

    def boundingRect(self):  # noqa: N802 - Qt override
        from PySide6 import QtCore

        return QtCore.QRectF(0, 0, 20 * self._scale, 20 * self._scale)

    def paint(self, p, *args) -> None:
        p.save()
        p.scale(self._scale, self._scale)
        super().paint(p, *args)
        p.restore()


_LEGEND_GLYPHS = {"samples": ("o", 8.0), "centers": ("star", 15.0), "proxies": ("d", 10.0),
                  "prototypes": ("t", 11.0)}


def rebuild_legend(view) -> None:
    """Legend: the four layers, then the colours of the current mode (up to 20 entries).

    Text and glyphs follow ``view.text_scale`` (presentation mode, large exports) and the
    theme's text colour (``view.text_colors``)."""
    legend, state, items = view.legend, view.state, view.items
    entries = _mode_entries(view)
    counts = tuple(len(items[name].data) for name in ("centers", "proxies", "prototypes"))
    scale = view.text_scale
    key = (len(state.embedding), counts, scale, view.text_colors,
           tuple((None if b is None else b.color().rgba(), t) for b, t in entries))
    if getattr(view, "_legend_key", None) == key:
        return  # unchanged: rebuilding costs ~15 ms per entry, too much for every step
    view._legend_key = key
    legend.clear()
    legend.opts["labelTextSize"] = f"{9.0 * scale:.1f}pt"
    legend.opts["labelTextColor"] = pg.mkColor(view.text_colors[0])
    legend.setColumnCount(2 if len(entries) + 4 > 12 else 1)
    view._legend_keep = []
    dark = pg.mkPen(view.text_colors[0], width=1)

    def add(symbol: str, size: float, brush, text: str, pen=None) -> None:
        dummy = pg.ScatterPlotItem(symbol=symbol, size=size, pen=pen, brush=brush)
        view._legend_keep.append(dummy)
        legend.addItem(_ScaledSample(dummy, scale), text)

    grey = pg.mkBrush("#9a9a9a")
    add(*_LEGEND_GLYPHS["samples"], grey, f"samples ({len(state.embedding)})")
    for name, label in (("centers", "class centers"), ("proxies", "proxies"),
                        ("prototypes", "prototypes")):
        n = len(items[name].data)
        if n:
            add(*_LEGEND_GLYPHS[name], grey, f"{label} ({n})", pen=dark)
    shown = 1 + sum(1 for c in counts if c)
    if legend.columnCount > 1 and shown % 2:
        # rows fill left to right: pad the layer rows so the classes start on a new row
        add("o", 0.0, None, "")
    for brush, text in entries:
        add("o", 0.0 if brush is None else 8.0, brush, text)


def _mode_entries(view) -> list[tuple]:
    mode, state = view.color_mode, view.state
    pal = _mode_palette(view)
    if mode == "correctness":
        return [(pal.brush(1), "correct"), (pal.brush(0), "wrong")]
    if mode == "entropy":
        return [(pal.brush(0), "low entropy"), (pal.brush(len(pal) - 1), "high entropy")]
    if mode == VERSUS_MODE:
        if view.versus_predictions is None:
            return [(pal.brush(-1), "choose a run to compare with")]
        from protoview.core.session import VERSUS_NAMES

        codes = sample_codes(state, mode, view.versus_predictions)
        counts = np.bincount(codes[codes >= 0], minlength=len(VERSUS_NAMES))
        return [(None, f"vs {view.versus_name}:"),
                *((pal.brush(k), f"{name} ({counts[k]})") for k, name in enumerate(VERSUS_NAMES))]
    if mode == "assignment" and state.assignment is None:
        return [(pal.brush(-1), "no assignment yet (run k-means)")]
    codes = np.unique(sample_codes(state, mode))
    codes = codes[codes >= 0]
    if codes.size > MAX_LEGEND_CLASSES:
        return [(pal.brush(int(codes[0])), f"{codes.size} {'groups' if mode == 'assignment' else 'classes'}")]
    if mode == "assignment":
        if view.assignment_target == "classes":
            return [(pal.brush(int(c)), f"to {_name(view.class_names, int(c))}") for c in codes]
        matched, _ = group_info(view)
        out = []
        for c in codes:
            m = int(matched[c]) if c < len(matched) else -1
            text = f"P{int(c)}" + (f" ≈ {_name(view.class_names, m)}" if m >= 0 else "")
            out.append((pal.brush(int(c)), text))
        return out
    prefix = {"label": "", "prediction": "pred "}[mode]
    return [(pal.brush(int(c)), f"{prefix}{_name(view.class_names, int(c))}") for c in codes]


