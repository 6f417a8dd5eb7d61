"""The twin of the map that an export draws (private): the same state, colours, layers,
marks and range as the map on screen, laid out at the export's width with glyphs, names
and legend scaled in proportion (not a stretched screenshot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6 import QtCore, QtWidgets

from protoview.errors import SnapshotError

MAX_WIDTH = 16000


@contextmanager
def twin_view(view, width: int) -> Iterator:
    """A twin of ``view`` laid out ``width`` pixels wide (the height in proportion), off
    screen, with glyphs, names and legend scaled by the same factor, showing the same
    state, colours, layers, marks and range; deleted on leaving the block."""
    from protoview.gui.map import LAYERS, EmbeddingView

    if not 16 <= int(width) <= MAX_WIDTH:
        raise SnapshotError("width", f"must be 16 to {MAX_WIDTH} pixels, got {width}")
    if view.state is None:
        raise SnapshotError("map", "there is no map to export yet")
    view.finish_animation()
    scale = int(width) / max(view.width(), 1)
    twin = EmbeddingView()
    try:
        twin.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        twin.setBackground(view.backgroundBrush())
        twin.text_colors = view.text_colors
        twin.show_names = view.show_names
        twin.color_mode = view.color_mode
        twin.set_versus(view.versus_predictions, view.versus_name)  # fixed/broken's run
        twin.glyph_scale = view.glyph_scale * scale
        twin.text_scale = view.text_scale * scale
        twin.thumbnail = None
        twin.density_threshold = view.density_threshold  # samples as dots or density
        twin.legend.setOffset((8 * scale, 8 * scale))
        twin.legend.setVisible(view.legend.isVisible())
        for name in LAYERS:
            twin.set_layer_visible(name, view.layer_visible(name))
        twin.resize(int(width), max(16, round(view.height() * scale)))
        twin.show()
        _copy_marks(view, twin)
        (x0, x1), (y0, y1) = view.getPlotItem().getViewBox().viewRange()
        twin.getPlotItem().getViewBox().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)
        QtWidgets.QApplication.processEvents()
        twin.settle()  # a dense map's samples drawn for this range now
        yield twin
    finally:
        twin.finish_animation()
        twin.hide()
        twin.deleteLater()


def _copy_marks(view, twin) -> None:
    """The state, selection, focus, neighbours and highlight of ``view`` on ``twin``."""
    twin.set_state(view.state, list(view.class_names), animate=False)
    twin.selection = view.selection.copy()
    twin.focus_index = view.focus_index
    twin.neighbor_indices = view.neighbor_indices.copy()
    twin.highlight_mask = view.highlight_mask
    twin.set_text_colors(*view.text_colors)  # restyles with the marks above


__all__ = ["MAX_WIDTH", "twin_view"]
