"""The caption of an exported map or replay (private): method, step and accuracy, in a
dark strip below the map (:func:`with_caption`, :func:`draw_caption` for a painter on a
vector device) or burnt into a replay's frame (:func:`burn_caption`), in a size that
follows the picture."""

from __future__ import annotations

from PySide6 import QtCore, QtGui


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


def draw_caption(painter: QtGui.QPainter, text: str, strip: QtCore.QRect, width: int,
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
        draw_caption(painter, text, QtCore.QRect(0, image.height(), image.width(), strip),
                      image.width(), image.height())
    finally:
        painter.end()
    return out


__all__ = ["burn_caption", "caption_pixels", "caption_strip_height", "draw_caption",
           "with_caption"]
