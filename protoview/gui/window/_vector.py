"""The map as an SVG or PDF drawing (private): the same twin view the PNG export grabs,
painted through Qt's SVG generator or PDF writer at 1:1, with every transform baked into
the geometry (:class:`~protoview.gui._qt.FlatPaintDevice`): glyphs and lines are plain
paths with plain strokes, names and legend are text, so librsvg, ImageMagick, poppler and
Qt draw the file as the PNG shows it."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui

from protoview import __version__
from protoview.errors import SnapshotError
from protoview.gui._qt import FlatPaintDevice
from protoview.gui.window._caption import caption_strip_height, draw_caption
from protoview.gui.window._twin import twin_view

VECTOR_SUFFIXES = (".svg", ".pdf")
DPI = 96  # one pixel of the map is one unit of the drawing: 1/96 in (0.75 pt)


def export_vector(view, path: str, width: int | None = None, caption: str = "") -> None:
    """Write ``view``'s map to ``path`` (``.svg`` or ``.pdf``), ``width`` pixels wide at
    96 dpi (None: as wide as on screen; the height in proportion), with ``caption`` in a
    strip below it."""
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise SnapshotError(path, "a drawing is written as .svg or .pdf")
    with twin_view(view, view.width() if width is None else int(width)) as twin:
        w, h = twin.width(), twin.height()
        strip = caption_strip_height(caption, w, h)
        device = (_svg_device if suffix == ".svg" else _pdf_device)(path, w, h + strip, caption)
        painter = QtGui.QPainter()
        if not painter.begin(device):
            kind = suffix[1:].upper()
            raise SnapshotError(path, f"cannot write the {kind} (is the folder writable?)")
        try:
            paint_map(twin, painter, caption, strip)
        finally:
            painter.end()


def paint_map(view, painter: QtGui.QPainter, caption: str = "", strip: int = 0) -> int:
    """Paint ``view`` (a pyqtgraph view) with ``painter`` at 1:1 from its top left corner,
    and ``caption`` in a ``strip`` pixels high below it, through a
    :class:`FlatPaintDevice`; every item in its export mode (glyphs as paths, not cached
    pixmaps). Returns the number of primitives drawn."""
    w, h = view.width(), view.height()
    items = [i for i in view.scene().items() if hasattr(i, "setExportMode")]
    flat = FlatPaintDevice(w, h + strip, painter)
    source = QtGui.QPainter()
    try:
        for item in items:
            item.setExportMode(True, {"antialias": True, "background": None,
                                      "painter": source, "resolutionScale": 1.0})
        source.begin(flat)
        source.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        view.render(source, QtCore.QRectF(0, 0, w, h), QtCore.QRect(0, 0, w, h))
        if strip:
            draw_caption(source, caption, QtCore.QRect(0, h, w, strip), w, h)
    finally:
        if source.isActive():
            source.end()
        for item in items:
            item.setExportMode(False)
    return flat.engine.primitives


def _svg_device(path: str, width: int, height: int, caption: str):
    from PySide6 import QtSvg

    # SVG 1.1, the profile librsvg, Inkscape, browsers and ImageMagick implement (not Tiny)
    gen = QtSvg.QSvgGenerator(QtSvg.QSvgGenerator.SvgVersion.Svg11)
    gen.setFileName(str(path))
    gen.setSize(QtCore.QSize(width, height))
    gen.setViewBox(QtCore.QRect(0, 0, width, height))
    gen.setResolution(DPI)
    gen.setTitle("protoview map")
    gen.setDescription(caption)
    return gen


def _pdf_device(path: str, width: int, height: int, caption: str):
    writer = QtGui.QPdfWriter(str(path))
    writer.setResolution(DPI)
    size = QtCore.QSizeF(width * 72.0 / DPI, height * 72.0 / DPI)
    writer.setPageSize(QtGui.QPageSize(size, QtGui.QPageSize.Unit.Point, "map",
                                       QtGui.QPageSize.SizeMatchPolicy.ExactMatch))
    writer.setPageMargins(QtCore.QMarginsF(0, 0, 0, 0))
    writer.setTitle(caption or "protoview map")
    writer.setCreator(f"protoview {__version__}")
    return writer


__all__ = ["DPI", "VECTOR_SUFFIXES", "export_vector", "paint_map"]
