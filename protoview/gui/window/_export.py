"""Export the map as a picture (private): PNG at any width, drawn again at that size so
glyphs, names and the legend keep their proportions (not a stretched screenshot), or SVG
(vector, through Qt's SVG generator); both with a caption (method, step, accuracy) in a
strip below the map, which it never covers."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from protoview.errors import SnapshotError

MAX_WIDTH = 16000


def caption_pixels(width: int, height: int) -> int:
    """Caption text height: a 40th of the picture's smaller side, at least 12 px."""
    return max(12, min(width, height) // 40)


def _caption_font(text: str, width: int, height: int) -> QtGui.QFont:
    font = QtGui.QFont()
    font.setPixelSize(caption_pixels(width, height))
    font.setBold(True)
    while font.pixelSize() > 10 and \
            QtGui.QFontMetrics(font).horizontalAdvance(text) > 0.92 * width:
        font.setPixelSize(font.pixelSize() - 1)  # a long caption on a narrow picture
    return font


def caption_strip_height(text: str, width: int, height: int) -> int:
    """Height of the strip under the picture that holds the caption (0: no caption)."""
    if not text:
        return 0
    return int(QtGui.QFontMetrics(_caption_font(text, width, height)).height() * 1.8)


def _draw_caption(painter: QtGui.QPainter, text: str, strip: QtCore.QRect, width: int,
                  height: int) -> None:
    painter.fillRect(strip, QtGui.QColor(24, 24, 24))
    painter.setPen(QtGui.QColor(255, 255, 255))
    painter.setFont(_caption_font(text, width, height))
    pad = max(8, strip.height() // 3)
    painter.drawText(strip.adjusted(pad, 0, -pad, 0),
                     int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter),
                     text)


def burn_caption(image: QtGui.QImage, text: str) -> None:
    """Draw ``text`` in a dark box at the bottom left of ``image`` (over the picture: a
    replay's frames keep their size), in a size that follows the image."""
    if not text:
        return
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        font = _caption_font(text, image.width(), image.height())
        painter.setFont(font)
        metrics = QtGui.QFontMetrics(font)
        pad = metrics.height() // 3
        rect = metrics.boundingRect(text).adjusted(-pad, -pad, pad, pad)
        margin = max(8, image.height() // 100)
        rect.moveBottomLeft(QtCore.QPoint(margin, image.height() - margin))
        painter.fillRect(rect, QtGui.QColor(0, 0, 0, 170))
        painter.setPen(QtGui.QColor(255, 255, 255))
        painter.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, text)
    finally:
        painter.end()


def with_caption(image: QtGui.QImage, text: str) -> QtGui.QImage:
    """``image`` with a dark strip below it holding ``text`` (the map stays uncovered)."""
    strip = caption_strip_height(text, image.width(), image.height())
    if not strip:
        return image
    out = QtGui.QImage(image.width(), image.height() + strip, QtGui.QImage.Format.Format_RGB32)
    painter = QtGui.QPainter(out)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.drawImage(0, 0, image)
        _draw_caption(painter, text, QtCore.QRect(0, image.height(), image.width(), strip),
                      image.width(), image.height())
    finally:
        painter.end()
    return out


def render_map(view, width: int, caption: str = "") -> QtGui.QImage:
    """``view``'s map drawn ``width`` pixels wide (the height in proportion): a twin view
    of that size, with glyphs, names and legend scaled by the same factor, showing the
    same state, colours, layers, marks and range; then the caption."""
    from protoview.gui.map import LAYERS, EmbeddingView

    if not 16 <= int(width) <= MAX_WIDTH:
        raise SnapshotError("width", f"must be 16 to {MAX_WIDTH} pixels, got {width}")
    if view.state is None:
        raise SnapshotError("map", "there is no map to export yet")
    view.finish_animation()
    scale = int(width) / max(view.width(), 1)
    height = max(16, round(view.height() * scale))
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
        twin.legend.setOffset((8 * scale, 8 * scale))
        twin.legend.setVisible(view.legend.isVisible())
        for name in LAYERS:
            twin.set_layer_visible(name, view.layer_visible(name))
        twin.resize(int(width), height)
        twin.show()
        twin.set_state(view.state, list(view.class_names), animate=False)
        twin.selection = view.selection.copy()
        twin.focus_index = view.focus_index
        twin.neighbor_indices = view.neighbor_indices.copy()
        twin.highlight_mask = view.highlight_mask
        twin.set_text_colors(*view.text_colors)  # restyles with the marks above
        (x0, x1), (y0, y1) = view.getPlotItem().getViewBox().viewRange()
        twin.getPlotItem().getViewBox().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)
        QtWidgets.QApplication.processEvents()
        image = twin.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    finally:
        twin.finish_animation()
        twin.hide()
        twin.deleteLater()
    return with_caption(image, caption)


def export_svg(view, path: str, caption: str = "") -> None:
    """``view`` as an SVG drawing: every glyph a vector path (the items' export mode),
    the legend and names as text, the caption at the bottom left."""
    from PySide6 import QtSvg

    view.finish_animation()
    w, h = max(view.width(), 1), max(view.height(), 1)
    strip = caption_strip_height(caption, w, h)
    gen = QtSvg.QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QtCore.QSize(w, h + strip))
    gen.setViewBox(QtCore.QRect(0, 0, w, h + strip))
    gen.setResolution(96)
    gen.setTitle("protoview map")
    gen.setDescription(caption)
    painter = QtGui.QPainter()
    if not painter.begin(gen):
        raise SnapshotError(path, "cannot write the SVG (is the folder writable?)")
    items = [i for i in view.scene().items() if hasattr(i, "setExportMode")]
    try:
        for item in items:
            item.setExportMode(True, {"antialias": True, "background": None,
                                      "painter": painter, "resolutionScale": 1.0})
        view.render(painter)
        if strip:
            _draw_caption(painter, caption, QtCore.QRect(0, h, w, strip), w, h)
    finally:
        for item in items:
            item.setExportMode(False)
        painter.end()


def export_map(view, path: str, width: int = 1920, caption: str = "") -> str:
    """Write the map to ``path``: ``.svg`` (vector) or ``.png`` (``width`` pixels wide).
    Returns the path written; every failure is a :class:`SnapshotError` naming it."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".png", ".svg"):
        raise SnapshotError(path, "choose a file name ending in .png or .svg")
    if suffix == ".svg":
        export_svg(view, path, caption)
    else:
        image = render_map(view, width, caption)
        if not image.save(str(path), "PNG"):
            raise SnapshotError(path, "cannot write the PNG (is the folder writable?)")
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise SnapshotError(path, "the image could not be written (is the folder writable?)")
    return str(path)
