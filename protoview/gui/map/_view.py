"""EmbeddingView: the one map of samples, class centers, proxies and k-means prototypes.

Whole arrays per layer, ``pen=None`` for samples and brushes from a cached
:class:`~protoview.gui.map.Palette` (never one QBrush per point), drawn by the view's
:class:`~protoview.gui.map._layers.MapLayers`. Between steps the
points glide from the old to the new layout in ``ANIMATION_FRAMES`` frames.

On top of the layers (:mod:`~protoview.gui.map._marks`): rings on the selected samples,
the focused sample joined to its nearest neighbours in feature space, the sample hovered
in a linked view, and the names of the class centers and prototypes (``show_names``).
Selecting: right-drag a box, or left-drag in box / lasso mode; a left click on a sample
focuses it, on empty space clears the highlight, the selection and the focus.

Above ``density_threshold`` samples (default
:data:`~protoview.gui.map.DENSITY_THRESHOLD`) the map is ``dense``: the samples are drawn
for the view's range (:mod:`~protoview.gui.map._bigmap`): an image at the screen's
resolution while many are in view, a scatter of just those in view when few are; no
animation between steps. Hover, click, box and lasso find single samples at any zoom
(a grid index); centers, proxies and prototypes stay glyphs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from protoview.gui.map import _density as density
from protoview.gui.map import _layers
from protoview.gui.map._animation import ANIMATION_FRAMES, ANIMATION_MS, Glide
from protoview.gui.map._entropy_bar import EntropyBar
from protoview.gui.map._items import HoverCard, SelectViewBox
from protoview.gui.map._layers import LAYERS, VERSUS_COLORS, MapLayers
from protoview.gui.map._legend import MapLegend
from protoview.gui.map._marks import MapMarks
from protoview.gui.map._palette import Palette
from protoview.gui.map._picking import PickingMixin
from protoview.gui.map._spatial import finite_bounds
from protoview.present import derive
from protoview.present.derive import COLOR_MODES, VERSUS_MODE

__all__ = ["ANIMATION_FRAMES", "ANIMATION_MS", "COLOR_MODES", "LAYERS", "VERSUS_COLORS", "VERSUS_MODE",
           "EmbeddingView"]
_GLYPH_KINDS = ("centers", "proxies", "prototypes")


class EmbeddingView(PickingMixin, pg.PlotWidget):
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
        self.compact_legend = False  # a talk: the classes are named on the stars instead
        self.versus_predictions: np.ndarray | None = None  # (N,) of the run compared with
        self.versus_name = ""
        self.thumbnail: Callable[[int], np.ndarray] | None = None
        self.selection = np.zeros(0, np.int64)
        self.focus_index: int | None = None
        self.neighbor_indices = np.zeros(0, np.int64)
        self.peer_index: int | None = None
        self._highlight: np.ndarray | None = None
        self._hover_index: int | None = None
        self.dense = False
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.setMenuEnabled(False)
        self.getPlotItem().hideButtons()
        self.layers = MapLayers(self)
        self.items = self.layers.items  # the layer items by name (samples, ..., density)
        self.marks = MapMarks(self)  # marks["selection"], ...; the names on the glyphs
        self.names = self.marks.names
        self.map_legend = MapLegend(self)
        self.legend = self.map_legend.item
        self.entropy_bar = EntropyBar(self)
        self.hover_card = HoverCard(self)
        self.glide = Glide(self, self._draw_positions)
        self._vb.sig_box_selected.connect(self._on_box)
        self._vb.sig_lasso_selected.connect(self._on_lasso)
        self._vb.sig_empty_click.connect(self._on_empty_click)
        self._vb.sigRangeChanged.connect(self._on_range_changed)
        self._vb.sigResized.connect(self._on_range_changed)
        self._vb.sigRangeChangedManually.connect(lambda *_: setattr(self, "follow", False))
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        for name in _GLYPH_KINDS:
            self.items[name].sigClicked.connect(
                lambda _item, pts, _ev, kind=name: self.highlight(kind, pts[0].index())
            )
        self.items["samples"].sigClicked.connect(
            lambda _item, pts, _ev: self.focus_sample(self.layers.sample_of_spot(self._topmost(pts))))

    # ---------------------------------------------------------------- public
    def set_state(self, state, class_names: list[str] | None = None, animate: bool = True) -> None:
        """Show ``state``; glide from the current layout when the point counts match.

        A highlight ends with a new state (its members may have changed); the selection
        and the focused sample stay while the samples are the same ones (same count)."""
        old = self.state
        self.state = state
        if class_names is not None:
            self.class_names = list(class_names)
        elif len(self.class_names) < self.num_classes():
            self.class_names = [str(i) for i in range(self.num_classes())]
        if self._highlight is not None:
            self._highlight = None
            self.highlight_changed.emit("")
        self.layers.forget_state()
        if old is None or len(old.embedding) != len(state.embedding):
            self.selection = np.zeros(0, np.int64)
            self.show_focus(None)
            self.peer_index = None
            self.selection_changed.emit(self.selection)
        dense = len(state.embedding) > self.density_threshold
        if dense != self.dense:
            self.dense = dense
            animate = False
            if not dense:
                self.layers.forget_density()
            self.setToolTip(density.tooltip(len(state.embedding)) if dense else "")
            self.hover_card.hide()
        elif dense:
            animate = False
            self.setToolTip(density.tooltip(len(state.embedding)))
        targets = _layers.positions(state)
        starts = _layers.positions(old) if old is not None else None
        first = old is None
        self._apply_styles()
        if animate and starts is not None and _layers.same_shapes(starts, targets):
            self.glide.start(starts, targets)
        else:
            self.glide.jump(targets)  # styles above already placed the points
        if first or (self.follow and self._moved_out(targets)):
            self.fit_view(targets)
            self.settle()  # a dense map's samples for the new range, at once

    def fit_view(self, targets: dict | None = None) -> None:
        """Frame every shown point, leaving room at the top for the legend. The view keeps
        following the map after each step until the user pans or zooms; double-click (or
        View → Fit map) fits it again and resumes following."""
        targets = targets if targets is not None else _layers.positions(self.state)
        if not targets:
            return
        box = finite_bounds(targets.values())
        if box is None:
            return
        x0, y0, x1, y1 = (float(v) for v in box)
        self._fitted_box = (x0, y0, x1, y1)
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
    _fitted_box: tuple | None = None  # the points' bounds when the view was last fitted

    def _moved_out(self, targets: dict) -> bool:
        """The points' bounds differ from the last fit's by over 1% of their extent (a map
        that only gained prototypes among its samples, or a new legend line, does not
        re-frame the view: nothing seems to jump)."""
        if self._fitted_box is None:
            return True
        box = finite_bounds(targets.values())
        if box is None:
            return False
        old = np.asarray(self._fitted_box)
        extent = max(float(old[2] - old[0]), float(old[3] - old[1]), 1e-9)
        return bool(np.abs(box - old).max() > 0.01 * extent)

    def settle(self) -> None:
        """Draw a dense map's samples for the view's range now, not after the pending
        delay (an export draws the view at once)."""
        if self.dense:
            self.layers.big.settle()

    def _on_range_changed(self, *_args) -> None:
        """Panned, zoomed or resized: the hover card's sample is elsewhere now (it comes
        back with the next move of the pointer); a dense map draws its samples again."""
        if self.hover_card.isVisible():
            self._set_hover(None)
        if self.dense:
            self.layers.big.range_changed()

    def _on_empty_click(self, pos) -> None:
        """A click that no glyph or dot took: on a dense map's image, the sample under it
        is focused; elsewhere the marks are cleared."""
        index = self.nearest_sample(pos.x(), pos.y()) if self.dense else None
        if index is not None:
            self.focus_sample(index)
        else:
            self.clear_marks()

    def mouseDoubleClickEvent(self, ev) -> None:  # noqa: N802 - Qt override
        self.fit_view()
        ev.accept()

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
            self.marks.update_names()

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
        self.entropy_bar.restyle()
        if self.state is not None:
            self._apply_styles()

    def set_text_colors(self, foreground: str, background: str) -> None:
        """The theme's text and background colours (legend, names, selection rings)."""
        self.text_colors = (foreground, background)
        self.marks.set_ring_color(foreground)
        dark_background = QtGui.QColor(background).lightness() < 128
        self.layers.set_outline(foreground if dark_background else "#111111")
        self.entropy_bar.restyle()
        if self.state is not None:
            self._apply_styles()

    def set_compact_legend(self, on: bool) -> None:
        """A small legend (the layers; the classes in one line when they are named on the
        stars): for a talk, where a legend of every class covers a third of the map."""
        self.compact_legend = bool(on)
        if self.state is not None:
            self._apply_styles()

    def set_show_names(self, on: bool) -> None:
        """Names of the classes on the stars and of the prototypes' classes on them."""
        self.show_names = bool(on)
        if self.state is not None:
            self.marks.update_names()

    @property
    def assignment_target(self) -> str:
        """What the state's assignment codes are: ``prototypes`` (groups, coloured by the
        class they match) or ``classes`` (Sinkhorn to proxies / centers: class colours)."""
        target = getattr(self.state, "assignment_target", "prototypes")
        return "prototypes" if target == "prototypes" else "classes"

    def is_animating(self) -> bool:
        return self.glide.is_active()

    def finish_animation(self) -> None:
        self.glide.finish()

    def sample_codes(self) -> np.ndarray:
        """The colour code (N,) of each sample in the current colour mode (-1 = unknown)."""
        return derive.sample_codes(self.state, self.color_mode, self.versus_predictions)

    def set_versus(self, predictions: np.ndarray | None, name: str = "") -> None:
        """The run the ``fixed/broken`` mode compares with: its predictions (N,) int64 and
        its name (None: none chosen). Per sample: fixed = right here and wrong there,
        broken = wrong here and right there, else unchanged (right or wrong in both)."""
        predictions = None if predictions is None else np.asarray(predictions, np.int64)
        if predictions is self.versus_predictions and name == self.versus_name:
            return  # as it is (every result tells the runs again; their predictions are kept)
        self.versus_predictions, self.versus_name = predictions, name
        if self.state is not None and self.color_mode == VERSUS_MODE:
            self._apply_styles()

    def highlight(self, kind: str, index: int) -> np.ndarray:
        """Highlight the members of center / proxy / prototype ``index``; dim the rest."""
        members = self.layers.members(kind, int(index))
        self._highlight = members
        self._apply_styles()
        what = {"centers": "class center", "proxies": "proxy", "prototypes": "prototype"}[kind]
        name = self.class_name(derive.owner_class(self.state, kind, int(index)))
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

    def focus_sample(self, index: int | None, center: bool = False) -> None:
        """Mark sample ``index`` (None: none) and emit ``focus_changed``; ``center`` pans
        the view to it. Its neighbours come from :meth:`set_neighbors`."""
        if index is not None and (self.state is None or not 0 <= int(index) < len(self.state.embedding)):
            return
        self.show_focus(None if index is None else int(index))
        if center and index is not None:
            self.center_on(int(index))
        self.focus_changed.emit(-1 if self.focus_index is None else self.focus_index)

    def center_on(self, index: int) -> None:
        """Pan the view to sample ``index`` (the zoom stays; the view stops following)."""
        x, y = self.state.embedding[int(index)]
        if np.isfinite([x, y]).all():
            (x0, x1), (y0, y1) = self._vb.viewRange()
            w, h = x1 - x0, y1 - y0
            self._vb.setRange(xRange=(x - w / 2, x + w / 2), yRange=(y - h / 2, y + h / 2),
                              padding=0.0)
            self.follow = False

    def set_neighbors(self, indices) -> None:
        """Draw lines from the focused sample to these samples (its neighbours)."""
        self.neighbor_indices = np.asarray(indices, np.int64).reshape(-1)
        if self.state is not None:
            self.marks.update(self._current_positions())

    def set_peer(self, index: int) -> None:
        """Mark the sample hovered in a linked view (-1: none)."""
        index = None if index is None or index < 0 else int(index)
        if index == self.peer_index:
            return
        self.peer_index = index
        if self.state is not None:
            self.marks.update(self._current_positions())

    def class_name(self, c: int) -> str:
        return derive.class_name(self.class_names, c)

    def num_classes(self) -> int:
        """How many classes the state names (labels, predictions, centers, proxies)."""
        return derive.num_classes(self.state)

    def palette(self, kind: str) -> Palette:
        """The cached palette of ``kind`` (a colour mode, or ``class``)."""
        return self.layers.palette(kind)

    @property
    def highlight_mask(self) -> np.ndarray | None:
        """(N,) bool: the highlighted members (the rest is dimmed); None: no highlight."""
        return self._highlight

    @highlight_mask.setter
    def highlight_mask(self, mask: np.ndarray | None) -> None:
        """Set without redrawing (a copy of another view draws once, with its marks)."""
        self._highlight = mask

    def set_select_mode(self, mode: str | None) -> None:
        """What a left-drag does: ``box``, ``lasso`` or None (pan)."""
        self._vb.select_mode = mode or "pan"

    def show_focus(self, index: int | None) -> None:
        """Mark sample ``index`` (None: none) without emitting ``focus_changed`` (a linked
        view follows the window's focus this way)."""
        if index != self.focus_index:
            self.neighbor_indices = np.zeros(0, np.int64)
        self.focus_index = index
        if self.state is not None:
            self.marks.update(self._current_positions())

    # ---------------------------------------------------------------- internals
    def _apply_styles(self) -> None:
        self.layers.apply_styles()
        self.map_legend.rebuild()
        self.entropy_bar.follow_mode()
        pos = self._current_positions()
        self.marks.update(pos)
        self.marks.update_names(pos)

    def _current_positions(self) -> dict:
        """Where the points are drawn now (mid-animation: the current frame)."""
        return self.glide.current(_layers.positions(self.state))

    def _draw_positions(self, pos: dict) -> None:
        self.layers.show_positions(pos)
        self.marks.update(pos)
        self.marks.update_names(pos)
