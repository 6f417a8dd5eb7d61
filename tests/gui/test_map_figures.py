"""Figures for papers (issue 20): the PNG, SVG and PDF exports of one map look the same in
every common renderer. The SVG is drawn by librsvg (rsvg-convert: GNOME, Inkscape's
import, many LaTeX pipelines), ImageMagick's own SVG renderer and Qt; the PDF by poppler
(pdftoppm); each at the PNG's size, and the class centers (stars) and proxies (diamonds)
are found by their colours and compared with the PNG's: position and size within a few
pixels, outlines and lines as thin.

CI (.ci/run) installs librsvg2-bin and poppler-utils and sets
``PROTOVIEW_CI_FIGURES=installed``: then a missing renderer fails these tests. Where apt
was not available CI sets ``unavailable: <why>`` and they are skipped with that reason,
as on a developer machine without the programs (the skip names the package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtGui

from protoview.gui.map import EmbeddingView
from protoview.gui.window._export import export_map
from tests.gui.fakes import answer_the_export_dialog, random_state

CAPTION = "tsd · step 3 · accuracy 80.0%"
WIDTH = 640
#: the programs, the Debian package that brings each, and how it is told apart
RENDERERS = {"librsvg": ("rsvg-convert", "librsvg2-bin"), "poppler": ("pdftoppm", "poppler-utils")}


def _program(name: str) -> str:
    """The path of renderer ``name`` (librsvg, poppler); skipped when it is missing,
    failed when CI said it installed it."""
    tool, package = RENDERERS[name]
    path = shutil.which(tool)
    if path:
        return path
    ci = os.environ.get("PROTOVIEW_CI_FIGURES", "")
    if ci == "installed":
        pytest.fail(f"CI installed {package} but there is no {tool} on PATH")
    if ci.startswith("unavailable"):
        pytest.skip(f"CI could not install the renderers ({ci})")
    pytest.skip(f"{tool} is not installed (apt-get install {package})")


def _magick() -> list[str]:
    """ImageMagick's convert with its own SVG renderer (MSVG); skipped without it (not a
    CI package: librsvg and poppler are the ones CI checks)."""
    for tool in ("magick", "convert"):
        path = shutil.which(tool)
        if not path:
            continue
        formats = subprocess.run([path, "-list", "format"], capture_output=True, text=True,
                                 timeout=60).stdout
        if re.search(r"^\s*MSVG\s", formats, re.M):
            return [path]
    pytest.skip("ImageMagick with its SVG coder is not installed (imagemagick, "
                "libmagickcore-6.q16-6-extra)")


def _pixels(path: Path) -> np.ndarray:
    """(H, W, 3) uint8, transparent parts on white."""
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    out = Image.new("RGBA", rgba.size, "white")
    out.alpha_composite(rgba)
    return np.asarray(out.convert("RGB"))


def _qimage_pixels(image: QtGui.QImage) -> np.ndarray:
    img = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return arr.reshape(h, img.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


def render(name: str, files: dict, size: tuple[int, int], tmp: Path) -> np.ndarray:
    """The drawing rendered by ``name`` at ``size`` (w, h) as (H, W, 3) uint8."""
    w, h = size
    out = tmp / f"{name}.png"
    if name == "librsvg":
        cmd = [_program(name), "-w", str(w), "-h", str(h), str(files["svg"]), "-o", str(out)]
    elif name == "poppler":
        cmd = [_program(name), "-scale-to-x", str(w), "-scale-to-y", str(h), "-png",
               "-singlefile", str(files["pdf"]), str(out.with_suffix(""))]
    elif name == "imagemagick":
        cmd = [*_magick(), f"msvg:{files['svg']}", "-resize", f"{w}x{h}!", str(out)]
    else:  # Qt's own SVG renderer
        from PySide6 import QtSvg

        image = QtGui.QImage(w, h, QtGui.QImage.Format.Format_ARGB32)
        image.fill(QtGui.QColor("white"))
        painter = QtGui.QPainter(image)
        QtSvg.QSvgRenderer(str(files["svg"])).render(painter)
        painter.end()
        return _qimage_pixels(image)
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return _pixels(out)


def glyphs(pixels: np.ndarray, rgb, tol: int = 36, min_area: int = 40) -> list:
    """The filled shapes of colour ``rgb`` (the inside of a star or diamond: its outline
    parts them): (x, y, area) of each connected area of at least ``min_area`` pixels.
    ``tol`` lets in a translucent brush drawn opaque (ImageMagick ignores opacity)."""
    from scipy import ndimage

    mask = np.abs(pixels.astype(int) - rgb).max(axis=2) <= tol
    labels, n = ndimage.label(mask)
    out = []
    for i in range(1, n + 1):
        area = int((labels == i).sum())
        if area >= min_area:
            y, x = ndimage.center_of_mass(labels == i)
            out.append((float(x), float(y), area))
    return out


def dark_pixels(pixels: np.ndarray, rows: int) -> int:
    """How many pixels of the top ``rows`` (the map, not the caption) are near black: the
    glyphs' outlines."""
    return int((pixels[:rows].max(axis=2) < 70).sum())


@pytest.fixture
def figure_view(qtbot):
    """A light-theme map of 4 classes (a star, a diamond and its line each) and 2
    prototypes, names and legend shown."""
    v = EmbeddingView()
    qtbot.addWidget(v)
    v.resize(WIDTH, 480)
    v.setBackground("#ffffff")
    v.show()
    v.set_text_colors("#333333", "#ffffff")
    v.set_state(random_state(160, c=4, p=1, k=2, seed=5), ["cat", "dog", "owl", "fox"],
                animate=False)
    yield v
    v.finish_animation()


def _export_all(view, tmp: Path, stem: str = "map") -> tuple[dict, tuple[int, int]]:
    files = {ext: tmp / f"{stem}.{ext}" for ext in ("png", "svg", "pdf")}
    for path in files.values():
        assert export_map(view, str(path), WIDTH, CAPTION) == str(path)
    with Image.open(files["png"]) as im:
        return files, im.size


def _class_colors(view) -> list[np.ndarray]:
    """The colour of each class's glyphs on white (the brushes are a little translucent)."""
    pal = view.palette("class")
    out = []
    for c in range(view.num_classes()):
        color = pal.brush(c).color()
        rgb, alpha = np.array(color.getRgb()[:3], float), color.alphaF()
        out.append(np.round(rgb * alpha + 255.0 * (1.0 - alpha)))
    return out


# ------------------------------------------------------------------ the files themselves
def test_svg_has_plain_strokes_text_and_opens_in_qt(figure_view, tmp_path):
    from PySide6 import QtSvg

    files, (w, h) = _export_all(figure_view, tmp_path)
    text = files["svg"].read_text(encoding="utf-8")
    assert "non-scaling-stroke" not in text  # what librsvg and ImageMagick draw wrongly
    assert "<clipPath" not in text  # ImageMagick's renderer draws clip paths inverted
    assert "<image" not in text  # every glyph a vector path
    assert text.count("<path") >= 160 + 4 + 4 + 2
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", text)
    assert {"cat", "dog", "owl", "fox", CAPTION} <= {t.strip() for t in texts}
    renderer = QtSvg.QSvgRenderer(str(files["svg"]))
    assert renderer.isValid()
    assert renderer.viewBox() == QtCore.QRect(0, 0, w, h)  # the PNG's size


def test_pdf_is_one_page_of_the_png_size_with_text(figure_view, tmp_path):
    files, (w, h) = _export_all(figure_view, tmp_path)
    data = files["pdf"].read_bytes()
    assert data.startswith(b"%PDF")
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    assert box and abs(float(box[1]) - w * 0.75) <= 1 and abs(float(box[2]) - h * 0.75) <= 1
    assert b"/FontFile2" in data  # text stays text, its font embedded
    if shutil.which("pdftotext"):
        words = subprocess.run(["pdftotext", str(files["pdf"]), "-"], capture_output=True,
                               text=True, timeout=60, check=True).stdout
        assert "accuracy 80.0%" in words and "cat" in words


# ------------------------------------------------------------------ renderers vs the PNG
@pytest.mark.parametrize("glyph_scale", [1.0, 1.8])  # 1.8: presentation mode's glyphs
@pytest.mark.parametrize("renderer", ["librsvg", "poppler", "imagemagick", "qt"])
def test_renderers_draw_the_glyphs_where_and_as_large_as_the_png(figure_view, tmp_path,
                                                                 renderer, glyph_scale):
    """Each class's star and diamond and its legend swatch (samples hidden: only these
    have the class colours) is found in the PNG and in the rendered SVG / PDF: centroids
    within 1.5 px, sizes (square root of the area) within 1.5 px, outlines as thin."""
    figure_view.set_layer_visible("samples", False)
    figure_view.set_glyph_scale(glyph_scale)
    files, size = _export_all(figure_view, tmp_path)
    png = _pixels(files["png"])
    other = render(renderer, files, size, tmp_path)
    assert other.shape == png.shape
    for color in _class_colors(figure_view):
        want = glyphs(png, color)
        assert len(want) >= 2, tuple(color)  # its star and its diamond
        got = glyphs(other, color, min_area=15)  # a little smaller may still match
        for x, y, area in want:
            near = min(got, key=lambda g, x=x, y=y: np.hypot(g[0] - x, g[1] - y))
            assert np.hypot(near[0] - x, near[1] - y) <= 1.5, (tuple(color), (x, y), near)
            assert abs(np.sqrt(near[2]) - np.sqrt(area)) <= 1.5, (tuple(color), area, near)
    # outlines and lines: no blobs or bars of black (the non-scaling-stroke bug: x20)
    rows = figure_view.height()
    assert 0.6 <= dark_pixels(other, rows) / dark_pixels(png, rows) <= 1.5  # the bug: 5x


@pytest.mark.parametrize("renderer", ["librsvg", "poppler"])
def test_renderers_draw_the_whole_map_as_the_png(figure_view, tmp_path, renderer):
    """Samples, lines, names, legend and caption: almost every pixel as in the PNG."""
    figure_view.highlight("centers", 1)  # dimmed samples are translucent
    files, size = _export_all(figure_view, tmp_path)
    png = _pixels(files["png"])
    other = render(renderer, files, size, tmp_path)
    differ = np.abs(png.astype(int) - other.astype(int)).max(axis=2) > 80
    assert differ.mean() < 0.01, differ.mean()


def test_dark_theme_export_follows_the_theme(figure_view, tmp_path):
    """A dark map exports dark: background and text colours in every format."""
    figure_view.setBackground("#15171a")
    figure_view.set_text_colors("#e6e6e6", "#15171a")
    files, size = _export_all(figure_view, tmp_path)
    for pixels in (_pixels(files["png"]), render("librsvg", files, size, tmp_path),
                   render("poppler", files, size, tmp_path)):
        corner = pixels[size[1] // 2, size[0] - 3]  # right edge, mid height: background
        assert corner.max() < 40, corner
        legend = pixels[: size[1] // 3, : size[0] // 4]
        assert (legend.min(axis=2) > 200).sum() > 50  # light legend text


# ------------------------------------------------------------------ the window
def test_file_menu_exports_a_pdf(opened, monkeypatch, tmp_path):
    """File → Export map PNG/SVG/PDF…: the PDF filter adds .pdf to a bare name and asks no
    width; the window's export_map writes a PDF; a wrong suffix is refused, naming .pdf."""
    from protoview.errors import SnapshotError
    from protoview.gui.window._menus import file_dialog_filter

    w = opened
    assert "*.pdf" in file_dialog_filter("map")
    action = w.menus.actions["export_map"]
    assert action.text() == "Export map PNG/SVG/PDF…"
    answer_the_export_dialog(monkeypatch, tmp_path / "figure", "PDF document (*.pdf)", "a PDF")
    action.trigger()
    pdf = tmp_path / "figure.pdf"
    assert w.status_label.text() == f"map exported: {pdf}"
    assert pdf.read_bytes().startswith(b"%PDF")
    assert w.export_map(str(tmp_path / "wide.pdf"), width=1200) == str(tmp_path / "wide.pdf")
    with pytest.raises(SnapshotError, match=r"\.pdf"):
        w.export_map(str(tmp_path / "map.jpg"))


def test_a_dense_map_exports_its_density_image(figure_view, tmp_path, monkeypatch):
    """Above the view's density threshold, with more samples in view than are drawn as dots,
    the samples are one image, in every format."""
    from protoview.gui.map import _bigmap

    monkeypatch.setattr(_bigmap.density, "VISIBLE_POINTS", 50)
    figure_view.density_threshold = 100  # 160 samples: dense
    figure_view.set_state(figure_view.state, animate=False)
    assert figure_view.dense
    files, size = _export_all(figure_view, tmp_path)
    assert "<image" in files["svg"].read_text(encoding="utf-8")
    png = _pixels(files["png"])
    other = render("librsvg", files, size, tmp_path)
    differ = np.abs(png.astype(int) - other.astype(int)).max(axis=2) > 80
    assert differ.mean() < 0.01, differ.mean()
