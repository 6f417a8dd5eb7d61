"""EmbeddingView: the one map of samples, class centers, proxies and k-means prototypes.

Whole arrays per layer, ``pen=None`` for samples and brushes from a cached
:class:`~protoview.gui.palette.Palette` (never one QBrush per point). Between steps the
points glide from the old to the new layout in ``ANIMATION_FRAMES`` frames.

On top of the layers (:mod:`~protoview.gui.map._marks`): rings on the selected samples,
the focused sample joined to its nearest neighbours in feature space, the sample hovered
in a linked view, and the names of the class centers and prototypes (``show_names``).
Selecting: right-drag a box, or left-drag in box / lasso mode; a left click on a sample
focuses it, on empty space clears the highlight, the selection and the focus.

Above ``density_threshold`` samples (default
:data:`~protoview.gui._map_density.DENSITY_THRESHOLD`, 200,000) the samples are drawn as
one aggregated density image instead of a scatter (no animation, no hover on single
samples; box selection still works); centers, proxies and prototypes stay glyphs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from protoview.gui.map import _density as density
from protoview.gui.map import _layers as layers
from protoview.gui.map import _marks as marks
from protoview.gui.map._items import HoverCard, SelectViewBox, move_points
from protoview.gui.map._palette import ENTROPY_BINS, Palette, class_colors, entropy_colors

COLOR_MODES = ("label", "prediction", "assignment", "correctness", "entropy", layers.VERSUS_MODE)
#: fixed (green), broken (red), unchanged right (light grey), unchanged wrong (dark grey)
VERSUS_COLORS = ("#2ca02c", "#d62728", "#cfcfcf", "#6f6f6f")
LAYERS = ("samples", "centers", "proxies", "prototypes")
ANIMATION_FRAMES = 8
ANIMATION_MS = 250
_GLYPH_KINDS = ("centers", "proxies", "prototypes")


def map_freshness(state) -> str:
    """What the map shows, for its label: ``"map of step 12 — 40% refreshed"`` while the
    samples are being refreshed to the current model, ``"map of step 12 — exact"`` once
    all are; ``""`` without an adaptation run."""
    metrics = getattr(state, "metrics", None) or {}
    if "map_step" not in metrics:
        return ""
    step = int(metrics["map_step"])
    refreshed = float(metrics.get("refreshed", 1.0))
    if refreshed >= 1.0:
        return f"map of step {step} — exact"
    return f"map of step {step} — {int(refreshed * 100)}% refreshed"


class EmbeddingView(pg.PlotWidget):
    """The map. Feed it a :class:`~protoview.core.state.GeometryState` with :meth:`set_state`.

    Signals: ``selection_changed(object)`` with the selected sample indices (K,) int64;
    ``highlight_changed(str)`` with a description of the highlighted members ("" = none);
    ``focus_changed(int)`` with the focused sample (-1 = none); ``hovered(int)`` with the
    sample under the pointer (-1 = none; a linked view marks it).
    """

    selection_changed = QtCore.Signal(object)
    highlight_changed = QtCore.Signal(str)
    focus_changed = QtCore.Signal(int)
    hovered = QtCore.Signal(int)

    def __init__(self, parent=None) -> None:
        self._vb = SelectViewBox()
        super().__init__(parent, viewBox=self._vb)
        self.setObjectName("EmbeddingView")
        self.state = None
        self.class_names: list[str] = []
        self.color_mode = "label"
        self.glyph_scale = 1.0
        self.text_scale = 1.0
        self.text_colors = ("#333333", "#ffffff")  # (text, background) of the theme
        self.show_names = True
        self.assignment_target = "prototypes"  # or "classes" (Sinkhorn to proxies/centers)
        self.versus_predictions: np.ndarray | None = None  # (N,) of the run compared with
        self.versus_name = ""
        self.thumbnail: Callable[[int], np.ndarray] | None = None
        self.selection = np.zeros(0, np.int64)
        self.focus_index: int | None = None
        self.neighbor_indices = np.zeros(0, np.int64)
        self.peer_index: int | None = None
        self._highlight: np.ndarray | None = None
        self._hover_index: int | None = None
        self._palettes: dict[tuple, Palette] = {}
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.setMenuEnabled(False)
        self.getPlotItem().hideButtons()
        self.items = layers.make_items(self)
        self.items["density"] = density.make_item()
        self.addItem(self.items["density"])
        self.marks = marks.make_marks(self)
        self.names = marks.make_names(self)
        self.dense = False
        self.legend = self.addLegend(offset=(8, 8), labelTextSize="9pt")
        self.entropy_bar = self._make_entropy_bar()
        self.hover_card = HoverCard(self)
        self._anim = QtCore.QTimer(self)
        self._anim.setInterval(ANIMATION_MS // ANIMATION_FRAMES)
        self._anim.timeout.connect(self._animation_frame)
        self._frames: list[dict] = []
        self._vb.sig_box_selected.connect(self._on_box)
        self._vb.sig_lasso_selected.connect(self._on_lasso)
        self._vb.sig_empty_click.connect(lambda _pos: self.clear_marks())
        self._vb.sigRangeChangedManually.connect(lambda *_: setattr(self, "follow", False))
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        for name in _GLYPH_KINDS:
            self.items[name].sigClicked.connect(
                lambda _item, pts, _ev, kind=name: self.highlight(kind, pts[0].index())
            )
        self.items["samples"].sigClicked.connect(
            lambda _item, pts, _ev: self.focus_sample(self._topmost(pts)))

    # ---------------------------------------------------------------- public
    def set_state(self, state, class_names: list[str] | None = None, animate: bool = True) -> None:
        """Show ``state``; glide from the current layout when the point counts match.

        A highlight ends with a new state (its members may have changed); the selection
        and the focused sample stay while the samples are the same ones (same count)."""
        old = self.state
        self.state = state
        if class_names is not None:
            self.class_names = list(class_names)
        elif len(self.class_names) < self._num_classes():
            self.class_names = [str(i) for i in range(self._num_classes())]
        if self._highlight is not None:
            self._highlight = None
            self.highlight_changed.emit("")
        self._members_cache: dict = {}
        self._group_info = None
        if old is None or len(old.embedding) != len(state.embedding):
            self.selection = np.zeros(0, np.int64)
            self._set_focus(None)
            self.peer_index = None
            self.selection_changed.emit(self.selection)
        dense = len(state.embedding) > self.density_threshold
        if dense != self.dense:
            self.dense = dense
            animate = False
            if not dense:
                self.items["density"].setVisible(False)
                self.items["density"].clear()
            self.setToolTip(density.tooltip(len(state.embedding)) if dense else "")
            self.hover_card.hide()
        elif dense:
            animate = False
            self.setToolTip(density.tooltip(len(state.embedding)))
        targets = layers.positions(state)
        starts = layers.positions(old) if old is not None else None
        first = old is None
        self._apply_styles()
        if animate and starts is not None and layers.same_shapes(starts, targets):
            self._frames = layers.interpolate(starts, targets, ANIMATION_FRAMES)
            self._show_positions(self._frames.pop(0))
            self._anim.start()
        else:
            self._anim.stop()
            self._frames = []
            self._show_positions(targets)  # styles above already placed the points
        if first or self.follow:
            self.fit_view(targets)
        if self.selection.size:  # other samples (another dataset or snapshot): nothing stays selected
            same = old is not None and len(old.embedding) == len(state.embedding)
            if same:
                self.selection_changed.emit(self.selection)  # its summary follows the state
            else:
                self._update_selection(np.zeros(0, np.int64))

    def fit_view(self, targets: dict | None = None) -> None:
        """Frame every shown point, leaving room at the top for the legend. The view keeps
        following the map after each step until the user pans or zooms; double-click (or
        View → Fit map) fits it again and resumes following."""
        targets = targets if targets is not None else layers.positions(self.state)
        if not targets:
            return
        pts = np.concatenate([v.reshape(-1, 2) for v in targets.values()])
        pts = pts[np.isfinite(pts).all(axis=1)]
        if pts.size == 0:
            return
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        w, h = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
        legend_px = self.legend.boundingRect().height() if self.legend.isVisible() else 0.0
        view_px = max(self._vb.height(), 1.0)
        # the legend covers legend_px of the view's height: add that share above the points
        share = min(max(legend_px + 16.0, 0.0) / view_px, 0.45)
        top = h * share / (1.0 - share)
        self._vb.setRange(
            xRange=(x0 - 0.04 * w, x1 + 0.04 * w), yRange=(y0 - 0.04 * h, y1 + 0.04 * h + top),
            padding=0.0,
        )
        self.follow = True

    follow = True
    density_threshold = density.DENSITY_THRESHOLD

    def mouseDoubleClickEvent(self, ev) -> None:  # noqa: N802 - Qt override
        self.fit_view()
        ev.accept()

    def leaveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        """The pointer left the map: no hover card stays behind."""
        self._set_hover(None)
        super().leaveEvent(ev)

    def set_color_mode(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise ValueError(f"unknown colour mode {mode!r}; choose one of {COLOR_MODES}")
        self.color_mode = mode
        if self.state is not None:
            self._apply_styles()

    def set_layer_visible(self, name: str, visible: bool) -> None:
        if name not in LAYERS:
            raise ValueError(f"unknown layer {name!r}; choose one of {LAYERS}")
        self.items[name].setVisible(visible)
        if name == "samples" and self.dense:
            self.items["density"].setVisible(visible)
        if name == "proxies":
            self.items["proxy_lines"].setVisible(visible)
        if self.state is not None:
            marks.update_names(self)

    def layer_visible(self, name: str) -> bool:
        return self.items[name].isVisible()

    def set_glyph_scale(self, scale: float) -> None:
        """Multiply every glyph size (presentation mode uses ~1.8)."""
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"glyph scale must be > 0, got {scale}")
        self.glyph_scale = float(scale)
        if self.state is not None:
            self._apply_styles()

    def set_text_scale(self, scale: float) -> None:
        """Multiply the size of the legend, the names and the colour bar's text."""
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"text scale must be > 0, got {scale}")
        self.text_scale = float(scale)
        self._style_entropy_bar()
        if self.state is not None:
            self._apply_styles()

    def set_text_colors(self, foreground: str, background: str) -> None:
        """The theme's text and background colours (legend, names, selection rings)."""
        self.text_colors = (foreground, background)
        marks.set_ring_color(self.marks, foreground)
        self._style_entropy_bar()
        if self.state is not None:
            self._apply_styles()

    def set_show_names(self, on: bool) -> None:
        """Names of the classes on the stars and of the prototypes' classes on them."""
        self.show_names = bool(on)
        if self.state is not None:
            marks.update_names(self)

    def set_assignment_target(self, target: str) -> None:
        """What the assignment's codes are: ``prototypes`` (groups, coloured by the class
        they match) or ``classes`` (Sinkhorn to proxies / centers: class colours)."""
        if target not in ("prototypes", "classes"):
            raise ValueError(f"unknown assignment target {target!r}")
        if target != self.assignment_target:
            self.assignment_target = target
            self._group_info = None
            if self.state is not None:
                self._apply_styles()

    def is_animating(self) -> bool:
        return self._anim.isActive()

    def finish_animation(self) -> None:
        if self._frames:
            self._show_positions(self._frames[-1])
        self._frames = []
        self._anim.stop()

    def sample_codes(self) -> np.ndarray:
        """The colour code (N,) of each sample in the current colour mode (-1 = unknown)."""
        return layers.sample_codes(self.state, self.color_mode, self.versus_predictions)

    def set_versus(self, predictions: np.ndarray | None, name: str = "") -> None:
        """The run the ``fixed/broken`` mode compares with: its predictions (N,) int64 and
        its name (None: none chosen). Per sample: fixed = right here and wrong there,
        broken = wrong here and right there, else unchanged (right or wrong in both)."""
        self.versus_predictions = None if predictions is None else np.asarray(predictions, np.int64)
        self.versus_name = name
        if self.state is not None and self.color_mode == layers.VERSUS_MODE:
            self._apply_styles()

    def highlight(self, kind: str, index: int) -> np.ndarray:
        """Highlight the members of center / proxy / prototype ``index``; dim the rest."""
        members = self._members(kind, int(index))
        self._highlight = members
        self._apply_styles()
        what = {"centers": "class center", "proxies": "proxy", "prototypes": "prototype"}[kind]
        name = self.class_name(layers.owner_class(self.state, kind, int(index)))
        if kind == "prototypes":
            name = f"P{int(index)}"
        self.highlight_changed.emit(f"{what} {name}: {int(members.sum())} members")
        return np.flatnonzero(members)

    def clear_highlight(self) -> None:
        self._highlight = None
        if self.state is not None:
            self._apply_styles()
        self.highlight_changed.emit("")

    def clear_marks(self) -> None:
        """A click on empty space: no highlight, no selection, no focused sample."""
        if self._highlight is not None:
            self.clear_highlight()
        self.set_selection(np.zeros(0, np.int64))
        self.focus_sample(None)

    def select_rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Select the samples inside the box (data coordinates); returns their indices."""
        self._on_box(QtCore.QRectF(QtCore.QPointF(x0, y0), QtCore.QPointF(x1, y1)).normalized())
        return self.selection

    def select_polygon(self, polygon: np.ndarray) -> np.ndarray:
        """Select the samples inside ``polygon`` (P, 2) in data coordinates (the lasso)."""
        self._on_lasso(np.asarray(polygon, np.float64))
        return self.selection

    def set_selection(self, indices, emit: bool = True) -> None:
        """Select these samples (K,) and ring them on the map."""
        sel = np.unique(np.asarray(indices, np.int64))
        if self.state is not None:
            sel = sel[(sel >= 0) & (sel < len(self.state.embedding))]
        if np.array_equal(sel, self.selection):
            return
        self.selection = sel
        if self.state is not None:
            marks.update(self, self._current_positions())
        if emit:
            self.selection_changed.emit(self.selection)

    def selection_summary(self) -> str:
        return layers.selection_summary(self.state, self.selection, self.class_names)

    def export_selection(self, path: str) -> None:
        """Write the selected indices to ``.npy`` or ``.csv`` (index,label,prediction)."""
        layers.export_selection(path, self.state, self.selection)

    def focus_sample(self, index: int | None, center: bool = False) -> None:
        """Mark sample ``index`` (None: none) and emit ``focus_changed``; ``center`` pans
        the view to it. Its neighbours come from :meth:`set_neighbors`."""
        if index is not None and (self.state is None or not 0 <= int(index) < len(self.state.embedding)):
            return
        self._set_focus(None if index is None else int(index))
        if center and index is not None:
            x, y = self.state.embedding[int(index)]
            if np.isfinite([x, y]).all():
                (x0, x1), (y0, y1) = self._vb.viewRange()
                w, h = x1 - x0, y1 - y0
                self._vb.setRange(xRange=(x - w / 2, x + w / 2), yRange=(y - h / 2, y + h / 2),
                                  padding=0.0)
                self.follow = False
        self.focus_changed.emit(-1 if self.focus_index is None else self.focus_index)

    def set_neighbors(self, indices) -> None:
        """Draw lines from the focused sample to these samples (its neighbours)."""
        self.neighbor_indices = np.asarray(indices, np.int64).reshape(-1)
        if self.state is not None:
            marks.update(self, self._current_positions())

    def set_peer(self, index: int) -> None:
        """Mark the sample hovered in a linked view (-1: none)."""
        index = None if index is None or index < 0 else int(index)
        if index == self.peer_index:
            return
        self.peer_index = index
        if self.state is not None:
            marks.update(self, self._current_positions())

    def hover_text(self, index: int) -> str:
        return layers.hover_text(self.state, int(index), self.class_names)

    def glyph_hover_text(self, kind: str, index: int) -> str:
        return layers.glyph_hover_text(self, kind, int(index), self._members(kind, int(index)))

    def show_hover(self, index: int, widget_pos: QtCore.QPoint) -> None:
        thumb = None
        if self.thumbnail is not None:
            try:
                thumb = self.thumbnail(int(index))
            except Exception:  # noqa: BLE001 - a thumbnail is optional decoration
                thumb = None
        self.hover_card.show_at(widget_pos, self.hover_text(index), thumb)

    def class_name(self, c: int) -> str:
        return self.class_names[c] if 0 <= c < len(self.class_names) else str(c)

    # ---------------------------------------------------------------- internals
    def _num_classes(self) -> int:
        return layers.num_classes(self.state) if self.state is not None else 0

    _class_name = class_name

    def _members(self, kind: str, index: int) -> np.ndarray:
        cache = getattr(self, "_members_cache", None)
        if cache is None:
            cache = self._members_cache = {}
        key = (kind, index)
        if key not in cache:
            cache[key] = layers.members(self.state, kind, index)
        return cache[key]

    def palette(self, kind: str) -> Palette:  # noqa: D102 - cached palettes by kind
        n = self._num_classes()
        if kind == "entropy":
            key = ("entropy", ENTROPY_BINS)
        elif kind == "assignment" and self.assignment_target == "prototypes":
            key = ("groups", tuple(layers.group_info(self)[1]))
        elif kind == "correctness":
            key = ("correctness", 2)
        elif kind == layers.VERSUS_MODE:
            key = ("versus", len(VERSUS_COLORS))
        else:
            key = ("class", n)
        if key not in self._palettes:
            if len(self._palettes) > 32:
                self._palettes.clear()
            if key[0] == "entropy":
                colors = entropy_colors(ENTROPY_BINS)
            elif key[0] == "correctness":
                colors = ["#d62728", "#2ca02c"]
            elif key[0] == "versus":
                colors = list(VERSUS_COLORS)
            elif key[0] == "groups":
                colors = list(key[1])
            else:
                colors = class_colors(key[1])
            self._palettes[key] = Palette(colors)
        return self._palettes[key]

    def _apply_styles(self) -> None:
        layers.apply_styles(self)
        layers.rebuild_legend(self)
        self._update_entropy_bar()
        pos = self._current_positions()
        marks.update(self, pos)
        marks.update_names(self, pos)

    def _current_positions(self) -> dict:
        """Where the points are drawn now (mid-animation: the current frame)."""
        target = layers.positions(self.state)
        shown = getattr(self, "_shown_positions", None)
        if shown is not None and target is not None and layers.same_shapes(shown, target):
            return shown
        return target

    def _show_positions(self, pos: dict, full: bool = False) -> None:
        layers.show_positions(self, pos, move_points, full)
        self._shown_positions = pos
        marks.update(self, pos)
        marks.update_names(self, pos)

    def _animation_frame(self) -> None:
        if not self._frames:
            self._anim.stop()
            return
        self._show_positions(self._frames.pop(0))
        if not self._frames:
            self._anim.stop()

    def _on_box(self, rect: QtCore.QRectF) -> None:
        if self.state is None:
            return
        emb = self.state.embedding
        inside = (
            (emb[:, 0] >= rect.left()) & (emb[:, 0] <= rect.right())
            & (emb[:, 1] >= rect.top()) & (emb[:, 1] <= rect.bottom())
        )
        self._update_selection(np.flatnonzero(inside))

    def _on_lasso(self, polygon: np.ndarray) -> None:
        if self.state is None:
            return
        inside = marks.points_in_polygon(self.state.embedding, polygon)
        self._update_selection(np.flatnonzero(inside))

    def _update_selection(self, indices: np.ndarray) -> None:
        self.selection = np.asarray(indices, np.int64)
        if self.state is not None:
            marks.update(self, self._current_positions())
        self.selection_changed.emit(self.selection)

    def _set_focus(self, index: int | None) -> None:
        if index != self.focus_index:
            self.neighbor_indices = np.zeros(0, np.int64)
        self.focus_index = index
        if self.state is not None:
            marks.update(self, self._current_positions())

    def _topmost(self, pts) -> int:
        return int(pts[-1].index()) if len(pts) else -1

    def nearest_sample(self, x: float, y: float, max_px: float = 8.0) -> int | None:
        """The sample nearest to data point (x, y) within ``max_px`` screen pixels."""
        if self.state is None or self.dense or not self.items["samples"].isVisible():
            return None  # no hover on single samples in the density image
        sx, sy = self._vb.viewPixelSize()
        if not (sx > 0 and sy > 0):
            return None
        emb = self._current_positions()["samples"]
        d2 = ((emb[:, 0] - x) / sx) ** 2 + ((emb[:, 1] - y) / sy) ** 2
        d2 = np.where(np.isfinite(d2), d2, np.inf)
        if d2.size == 0:
            return None
        i = int(np.argmin(d2))
        return i if d2[i] <= max_px**2 else None

    def glyph_at(self, scene_pos) -> tuple[str, int] | None:
        """The center, proxy or prototype under ``scene_pos`` (topmost first), or None."""
        for kind in ("centers", "proxies", "prototypes"):
            item = self.items[kind]
            if not item.isVisible() or not len(item.data):
                continue
            pts = item.pointsAt(item.mapFromScene(scene_pos))
            if len(pts):
                return kind, int(pts[0].index())
        return None

    def _on_mouse_moved(self, scene_pos) -> None:
        if self.state is None:
            return
        glyph = self.glyph_at(scene_pos)
        widget_pos = self.mapFromScene(scene_pos)
        if glyph is not None:  # a star / diamond / triangle describes itself, not a sample
            self._set_hover(None)
            self.hover_card.show_at(widget_pos, self.glyph_hover_text(*glyph), None)
            return
        view_pos = self._vb.mapSceneToView(scene_pos)
        index = self.nearest_sample(view_pos.x(), view_pos.y())
        self._set_hover(index)
        if index is not None:
            self.show_hover(index, widget_pos)

    def _set_hover(self, index: int | None) -> None:
        if index is None:
            self.hover_card.hide()
        if index != self._hover_index:
            self._hover_index = index
            self.hovered.emit(-1 if index is None else index)

    # ---------------------------------------------------------------- entropy bar
    def _make_entropy_bar(self) -> pg.ColorBarItem:
        colors = entropy_colors(ENTROPY_BINS)
        cmap = pg.ColorMap(np.linspace(0, 1, len(colors)), [pg.mkColor(c) for c in colors])
        bar = pg.ColorBarItem(values=(0, 1), colorMap=cmap, interactive=False,
                              orientation="horizontal", width=12, label="entropy (nats)",
                              colorMapMenu=False)
        bar.setVisible(False)
        self.getPlotItem().layout.addItem(bar, 4, 1)
        return bar

    def _style_entropy_bar(self) -> None:
        fg = self.text_colors[0]
        axis = self.entropy_bar.getAxis("bottom")
        axis.setPen(fg)
        axis.setTextPen(fg)
        font = axis.font() if hasattr(axis, "font") else None
        from PySide6 import QtGui

        font = QtGui.QFont(self.font())
        font.setPointSizeF(8.5 * self.text_scale)
        axis.setStyle(tickFont=font)
        axis.setLabel("entropy (nats): low = confident", color=fg,
                      **{"font-size": f"{8.5 * self.text_scale:.1f}pt"})

    def _update_entropy_bar(self) -> None:
        on = self.color_mode == "entropy" and self.state is not None
        if on:
            top = float(np.log(max(self._num_classes(), 2)))
            self.entropy_bar.setLevels((0.0, top))
            if not getattr(self, "_entropy_styled", False):
                self._style_entropy_bar()
                self._entropy_styled = True
        self.entropy_bar.setVisible(on)
        # a hidden item still takes its row: give it no height when off
        self.entropy_bar.setMaximumHeight(10_000 if on else 0)
