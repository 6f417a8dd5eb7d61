"""The map's legend (private to :mod:`protoview.gui.map`): the four layers, then the
colours of the current mode (up to :data:`MAX_LEGEND_CLASSES` entries), in the theme's
text colour and the view's text scale (presentation mode, large exports)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from protoview.present import VERSUS_NAMES
from protoview.present.derive import TASK_MODE, VERSUS_MODE, class_name, sample_codes, task_legend

MAX_LEGEND_CLASSES = 20
_LEGEND_GLYPHS = {"samples": ("o", 8.0), "centers": ("star", 15.0), "proxies": ("d", 10.0),
                  "prototypes": ("t", 11.0)}


class _ScaledSample(pg.ItemSample):
    """A legend swatch ``scale`` times pyqtgraph's fixed 20 px (talk size, large
    exports): the glyph grows with the text instead of overlapping the next column."""

    def __init__(self, item, scale: float) -> None:
        super().__init__(item)
        self._scale = float(scale)
        self.setFixedWidth(20 * self._scale)
        self.setFixedHeight(20 * self._scale)

    def boundingRect(self):  # noqa: N802 - Qt override
        return QtCore.QRectF(0, 0, 20 * self._scale, 20 * self._scale)

    def paint(self, p, *args) -> None:
        p.save()
        p.scale(self._scale, self._scale)
        super().paint(p, *args)
        p.restore()


#: The largest text scale of a compact (presentation) legend.
COMPACT_TEXT_SCALE = 1.5


class MapLegend:
    """The legend item of ``view`` (an EmbeddingView: ``item``, added to it) and the
    glyphs its entries show; rebuilt only when what it says changes."""

    def __init__(self, view) -> None:
        self.view = view
        self.item = view.addLegend(offset=(8, 8), labelTextSize="9pt")
        self._key: tuple | None = None
        self._glyphs: list[pg.ScatterPlotItem] = []  # the entries' swatches keep these

    def rebuild(self) -> None:
        """Legend: the four layers, then the colours of the current mode.

        Text and glyphs follow ``view.text_scale`` and the theme's text colour
        (``view.text_colors``)."""
        view, legend = self.view, self.item
        state, items = view.state, view.items
        entries = self._mode_entries()
        # points placed (a timeline's proxies of classes not arrived yet are NaN: not drawn)
        counts = tuple(_placed(items[name]) for name in ("centers", "proxies", "prototypes"))
        # a talk's legend grows less than the rest of the text (it must not cover the map)
        scale = min(view.text_scale, COMPACT_TEXT_SCALE) if view.compact_legend else view.text_scale
        key = (len(state.embedding), counts, scale, view.text_colors, view.compact_legend,
               tuple((None if b is None else b.color().rgba(), t) for b, t in entries))
        if self._key == key:
            return  # unchanged: rebuilding costs ~15 ms per entry, too much for every step
        self._key = key
        legend.clear()
        legend.opts["labelTextSize"] = f"{9.0 * scale:.1f}pt"
        legend.opts["labelTextColor"] = pg.mkColor(view.text_colors[0])
        legend.setColumnCount(2 if len(entries) + 4 > 12 and not view.compact_legend else 1)
        self._glyphs = []
        dark = pg.mkPen(view.text_colors[0], width=1)

        def add(symbol: str, size: float, brush, text: str, pen=None) -> None:
            dummy = pg.ScatterPlotItem(symbol=symbol, size=size, pen=pen, brush=brush)
            self._glyphs.append(dummy)
            legend.addItem(_ScaledSample(dummy, scale), text)

        grey = pg.mkBrush("#9a9a9a")
        if not view.compact_legend:  # a talk: a dot is a sample, the row is not worth its room
            add(*_LEGEND_GLYPHS["samples"], grey, f"samples ({len(state.embedding):,})")
        for name, label in (("centers", "class centers"), ("proxies", "proxies"),
                            ("prototypes", "prototypes")):
            n = _placed(items[name])
            if n:
                add(*_LEGEND_GLYPHS[name], grey, f"{label} ({n})", pen=dark)
        shown = 1 + sum(1 for c in counts if c)
        if legend.columnCount > 1 and shown % 2:
            # rows fill left to right: pad the layer rows so the classes start on a new row
            add("o", 0.0, None, "")
        for brush, text in entries:
            add("o", 0.0 if brush is None else 8.0, brush, text)
        # place the new entries now, not at the next turn of the event loop: a replay's
        # frames are grabbed one after the other (a frame with another proxy count
        # rebuilds the legend), before any turn comes
        legend.layout.activate()

    def _mode_entries(self) -> list[tuple]:
        view = self.view
        mode, state = view.color_mode, view.state
        pal = view.layers.mode_palette()
        if mode == "correctness":
            return [(pal.brush(1), "correct"), (pal.brush(0), "wrong")]
        if mode == "entropy":
            return [(pal.brush(0), "low entropy"), (pal.brush(len(pal) - 1), "high entropy")]
        if mode == VERSUS_MODE:
            return _versus_entries(view, pal)
        if mode == TASK_MODE:
            return [(pal.brush(code), text) for code, text in task_legend(state)]
        if mode == "assignment" and state.assignment is None:
            return [(pal.brush(-1), "no assignment yet (run k-means)")]
        if view.compact_legend and view.show_names:
            # a talk: the classes are named on their stars, the groups on their prototypes'
            # triangles; one line instead of one per class or group
            if mode in ("label", "prediction"):
                what = "true class" if mode == "label" else "predicted class"
                return [(None, f"colour: {what}, named on its star")]
            if mode == "assignment" and view.assignment_target == "classes":
                return [(None, "colour: assigned class, named on its star")]
            if mode == "assignment" and view.items["prototypes"].isVisible():
                return [(None, "colour: group, named on its triangle")]
        codes = _present_codes(sample_codes(state, mode))
        if codes.size > MAX_LEGEND_CLASSES:
            what = "groups" if mode == "assignment" else "classes"
            return [(pal.brush(int(codes[0])), f"{codes.size} {what}")]
        names = view.class_names
        if mode == "assignment":
            if view.assignment_target == "classes":
                return [(pal.brush(int(c)), f"to {class_name(names, int(c))}") for c in codes]
            matched, _ = view.layers.group_info()
            out = []
            for c in codes:
                m = int(matched[c]) if c < len(matched) else -1
                text = f"P{int(c)}" + (f" ≈ {class_name(names, m)}" if m >= 0 else "")
                out.append((pal.brush(int(c)), text))
            return out
        prefix = {"label": "", "prediction": "pred "}[mode]
        return [(pal.brush(int(c)), f"{prefix}{class_name(names, int(c))}") for c in codes]


def _present_codes(codes: np.ndarray) -> np.ndarray:
    """The codes >= 0 that occur, sorted (a bincount: ~8x faster than np.unique at 1M)."""
    codes = np.asarray(codes, np.int64)
    codes = codes[codes >= 0]
    if codes.size == 0:
        return codes
    top = int(codes.max())
    if top > 4 * codes.size + 1_000_000:  # sparse, huge codes: sort them instead
        return np.unique(codes)
    return np.flatnonzero(np.bincount(codes, minlength=top + 1))


def _versus_entries(view, pal) -> list[tuple]:
    if view.versus_predictions is None:
        return [(pal.brush(-1), "choose a run to compare with")]
    codes = sample_codes(view.state, VERSUS_MODE, view.versus_predictions)
    counts = np.bincount(codes[codes >= 0], minlength=len(VERSUS_NAMES))
    return [(None, f"vs {view.versus_name}:"),
            *((pal.brush(k), f"{name} ({counts[k]})") for k, name in enumerate(VERSUS_NAMES))]


def _placed(item: pg.ScatterPlotItem) -> int:
    """The points of ``item`` with a position (NaN ones are not drawn)."""
    data = item.data
    return int(np.count_nonzero(np.isfinite(data["x"]) & np.isfinite(data["y"]))) if len(data) else 0
