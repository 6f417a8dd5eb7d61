"""Pointing at and picking samples on the map (private to :mod:`protoview.gui.map`): the
hover card of the sample or glyph under the pointer, the nearest sample, and selection
by box and lasso. Mixed into :class:`~protoview.gui.map.EmbeddingView`, whose state,
layers, marks and signals it uses."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from protoview.gui.map._spatial import points_in_polygon
from protoview.present import compute, derive


class PickingMixin:
    """Hover, nearest sample, box and lasso selection of an EmbeddingView."""

    def leaveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        """The pointer left the map: no hover card stays behind."""
        self._set_hover(None)
        super().leaveEvent(ev)

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
            self.marks.update(self._current_positions())
        if emit:
            self.selection_changed.emit(self.selection)

    def selection_summary(self) -> str:
        return derive.selection_summary(self.state, self.selection, self.class_names)

    def export_selection(self, path: str) -> None:
        """Write the selected indices to ``.npy`` or ``.csv`` (index,label,prediction)."""
        compute.write_selection(path, self.state, self.selection)

    def hover_text(self, index: int) -> str:
        return derive.hover_text(self.state, int(index), self.class_names)

    def glyph_hover_text(self, kind: str, index: int) -> str:
        members = self.layers.members(kind, int(index))
        return derive.glyph_hover_text(self.state, kind, int(index), members, self.class_names)

    def show_hover(self, index: int, widget_pos: QtCore.QPoint) -> None:
        thumb = None
        if self.thumbnail is not None:
            try:
                thumb = self.thumbnail(int(index))
            except Exception:  # noqa: BLE001 - a thumbnail is optional decoration
                thumb = None
        self.hover_card.show_at(widget_pos, self.hover_text(index), thumb)

    def _on_box(self, rect: QtCore.QRectF) -> None:
        if self.state is None:
            return
        if self.dense:
            big = self.layers.big
            self._update_selection(big.index.in_rect(rect.left(), rect.top(), rect.right(),
                                                     rect.bottom()))
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
        if self.dense:
            self._update_selection(self.layers.big.index.in_polygon(polygon))
            return
        inside = points_in_polygon(self.state.embedding, polygon)
        self._update_selection(np.flatnonzero(inside))

    def _update_selection(self, indices: np.ndarray) -> None:
        self.selection = np.asarray(indices, np.int64)
        if self.state is not None:
            self.marks.update(self._current_positions())
        self.selection_changed.emit(self.selection)

    def _topmost(self, pts) -> int:
        return int(pts[-1].index()) if len(pts) else -1

    def nearest_sample(self, x: float, y: float, max_px: float = 8.0) -> int | None:
        """The sample nearest to data point (x, y) within ``max_px`` screen pixels."""
        if self.state is None or not self.items["samples"].isVisible():
            return None
        sx, sy = self._vb.viewPixelSize()
        if not (sx > 0 and sy > 0):
            return None
        if self.dense:  # the grid index: only the samples of the cells around the pointer
            return self.layers.big.index.nearest(x, y, max_px * sx, max_px * sy)
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
            if not self._card_follows(widget_pos, glyph):
                self.hover_card.show_at(widget_pos, self.glyph_hover_text(*glyph), None)
            return
        view_pos = self._vb.mapSceneToView(scene_pos)
        index = self.nearest_sample(view_pos.x(), view_pos.y())
        self._set_hover(index)
        if index is not None and not self._card_follows(widget_pos, ("samples", index)):
            self.show_hover(index, widget_pos)

    def _card_follows(self, widget_pos, what: tuple[str, int]) -> bool:
        """The card already shows ``what`` of this state: it only follows the pointer (its
        text, and a folder's thumbnail read from disk, are not made again each move)."""
        shown = self._hover_card_shows
        if self.hover_card.isVisible() and shown is not None and shown[0] is self.state \
                and shown[1] == what:
            self.hover_card.place(widget_pos)
            return True
        self._hover_card_shows = (self.state, what)
        return False

    _hover_card_shows: tuple | None = None  # (state, (kind, index)) the card was made for

    def _set_hover(self, index: int | None) -> None:
        if index is None:
            self.hover_card.hide()
        if index != self._hover_index:
            self._hover_index = index
            self.hovered.emit(-1 if index is None else index)
