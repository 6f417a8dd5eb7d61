"""The paint device behind the SVG / PDF map export (gui/_qt/_flat_paint.py, _clip.py):
transforms baked into the geometry, plain pens, text as text, clipping on the geometry."""

from __future__ import annotations

import math
import re

import pytest
from PySide6 import QtCore, QtGui, QtSvg

from protoview.gui._qt import FlatPaintDevice
from protoview.gui._qt._clip import cut_lines, cut_segment
from protoview.gui._qt._flat_paint import plain_pen

RECT = QtCore.QRectF(0, 0, 10, 10)


def test_cut_segment_keeps_the_inside_part():
    assert cut_segment(1, 1, 9, 9, RECT) == (1, 1, 9, 9)
    assert cut_segment(-5, 5, 15, 5, RECT) == pytest.approx((0, 5, 10, 5))
    assert cut_segment(5, 5, 5, 20, RECT) == pytest.approx((5, 5, 5, 10))


@pytest.mark.parametrize("segment", [(-5, -5, -1, -1), (11, 0, 20, 10), (-5, 12, 15, 12),
                                     (20, 20, 20, 20), (math.nan, 1, 2, 3),
                                     (0, 0, math.inf, 5)])
def test_cut_segment_outside_or_not_finite_is_none(segment):
    assert cut_segment(*segment, RECT) is None


def test_cut_segment_of_a_point_inside_is_the_point():
    assert cut_segment(3, 4, 3, 4, RECT) == (3, 4, 3, 4)


def test_cut_lines_stays_in_the_rectangle():
    assert cut_lines(QtGui.QPainterPath(), RECT).isEmpty()
    ring = QtGui.QPainterPath()
    ring.addEllipse(QtCore.QPointF(10, 5), 4, 4)  # half of it outside
    cut = cut_lines(ring, RECT)
    assert not cut.isEmpty()
    box = cut.boundingRect()
    assert box.right() <= 10 + 1e-9 and box.left() == pytest.approx(6, abs=0.05)
    away = QtGui.QPainterPath(QtCore.QPointF(20, 20))
    away.lineTo(30, 30)
    assert cut_lines(away, RECT).isEmpty()


def test_plain_pen_keeps_the_on_screen_width():
    scale = QtGui.QTransform.fromScale(22, 22)
    cosmetic = QtGui.QPen(QtGui.QColor("black"), 1.5)
    cosmetic.setCosmetic(True)
    pen = plain_pen(cosmetic, scale)
    assert not pen.isCosmetic() and pen.widthF() == 1.5
    cosmetic.setWidthF(0)  # Qt's hairline: one pixel
    assert plain_pen(cosmetic, scale).widthF() == 1.0
    drawn = QtGui.QPen(QtGui.QColor("black"), 0.1)
    drawn.setCosmetic(False)
    assert plain_pen(drawn, QtGui.QTransform.fromScale(10, 10)).widthF() == pytest.approx(1.0)
    drawn.setWidthF(0)
    assert plain_pen(drawn, scale).widthF() == 1.0


def _svg_of(paint, size=(200, 100)) -> str:
    """What ``paint(painter)`` draws on a FlatPaintDevice, as SVG text."""
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    gen = QtSvg.QSvgGenerator(QtSvg.QSvgGenerator.SvgVersion.Svg11)
    gen.setOutputDevice(buffer)
    gen.setSize(QtCore.QSize(*size))
    gen.setViewBox(QtCore.QRect(0, 0, *size))
    target = QtGui.QPainter(gen)
    device = FlatPaintDevice(*size, target)
    source = QtGui.QPainter(device)
    paint(source)
    source.end()
    target.end()
    return bytes(buffer.data()).decode("utf-8")


def test_a_scaled_glyph_with_a_cosmetic_pen_becomes_a_plain_path(qapp):
    def star(p: QtGui.QPainter) -> None:
        pen = QtGui.QPen(QtGui.QColor("black"), 1.5)
        pen.setCosmetic(True)
        p.setPen(pen)
        p.setBrush(QtGui.QColor("#1f77b4"))
        p.translate(100, 50)
        p.scale(22, 22)  # how pyqtgraph draws a 22 px glyph
        p.drawEllipse(QtCore.QPointF(0, 0), 0.5, 0.5)

    svg = _svg_of(star)
    assert "non-scaling-stroke" not in svg
    assert 'stroke-width="1.5"' in svg
    numbers = [float(v) for v in re.findall(r"-?\d+\.?\d*", re.search(r' d="([^"]+)"',
                                                                         svg)[1])]
    assert min(numbers[0::2]) == pytest.approx(89, abs=0.01)  # x from 89 to 111: in pixels
    assert max(numbers[0::2]) == pytest.approx(111, abs=0.01)


def test_clip_cuts_lines_and_leaves_out_what_it_hides(qapp):
    def clipped(p: QtGui.QPainter) -> None:
        p.setClipRect(QtCore.QRectF(0, 0, 50, 50))
        p.drawLine(QtCore.QPointF(10, 10), QtCore.QPointF(90, 10))  # cut at x = 50
        p.setBrush(QtGui.QColor("red"))
        p.drawRect(QtCore.QRectF(120, 60, 10, 10))  # hidden: left out

    svg = _svg_of(clipped)
    assert "<clipPath" not in svg and "clip-path" not in svg
    assert re.search(r'd="M10,10 L50,10\s*"', svg), svg
    assert "M120,60" not in svg


def test_text_stays_text_in_the_font_qt_drew(qapp):
    font = QtGui.QFont("Sans Serif")
    font.setPixelSize(14)

    def text(p: QtGui.QPainter) -> None:
        p.setFont(font)
        p.setPen(QtGui.QColor("#333333"))
        p.translate(20, 30)
        p.drawText(QtCore.QPointF(0, 0), "owl")

    svg = _svg_of(text)
    assert re.search(r"<text[^>]*>owl</text>", svg)
    family = QtGui.QFontInfo(font).family()
    assert f'font-family="{family}"' in svg
