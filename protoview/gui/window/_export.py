"""Export the map as a picture (private): PNG at any width, drawn again at that size so
glyphs, names and the legend keep their proportions (not a stretched screenshot), or SVG
and PDF drawings of that same picture (:mod:`~protoview.gui.window._vector`); each with a
caption (method, step, accuracy) in a strip below the map, which it never covers."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtGui

from protoview.errors import SnapshotError
from protoview.gui.window._caption import with_caption
from protoview.gui.window._twin import twin_view
from protoview.gui.window._vector import VECTOR_SUFFIXES, export_vector

SUFFIXES = (".png", *VECTOR_SUFFIXES)
PNG_WIDTH = 1920


def render_map(view, width: int, caption: str = "") -> QtGui.QImage:
    """``view``'s map drawn ``width`` pixels wide (the height in proportion) by a
    :func:`~protoview.gui.window._twin.twin_view` of that size, then the caption in a
    strip below."""
    with twin_view(view, width) as twin:
        image = twin.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    return with_caption(image, caption)


def export_map(view, path: str, width: int | None = None, caption: str = "") -> str:
    """Write the map to ``path`` by its suffix: ``.png`` (``width`` pixels wide, default
    1920), ``.svg`` or ``.pdf`` (vector; ``width``: the drawing's width in pixels at 96
    dpi, default the map's width on screen). Returns the path written; every failure is
    a :class:`SnapshotError` naming it."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise SnapshotError(path, "choose a file name ending in .png, .svg or .pdf")
    if suffix in VECTOR_SUFFIXES:
        export_vector(view, str(path), width, caption)
    else:
        image = render_map(view, PNG_WIDTH if width is None else width, caption)
        if not image.save(str(path), "PNG"):
            raise SnapshotError(path, "cannot write the PNG (is the folder writable?)")
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise SnapshotError(path, "the image could not be written (is the folder writable?)")
    return str(path)


__all__ = ["PNG_WIDTH", "SUFFIXES", "export_map", "render_map"]
