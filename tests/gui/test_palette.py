import numpy as np
import pytest
from PySide6 import QtGui

from protoview.gui.map import Palette, class_colors, entropy_colors
from protoview.present.derive import entropy_codes


@pytest.mark.parametrize("n", [0, 1, 10, 20, 21, 100, 300])
def test_class_colors_are_distinct(n):
    colors = class_colors(n)
    assert len(colors) == n
    assert len(set(colors)) == n
    for c in colors:
        assert QtGui.QColor(c).isValid()


def test_class_colors_neighbours_differ_for_many_classes():
    rgb = np.array([QtGui.QColor(c).getRgb()[:3] for c in class_colors(120)], float)
    step = np.abs(np.diff(rgb, axis=0)).sum(axis=1)
    assert step.min() > 40  # consecutive class ids never look alike


def test_class_colors_rejects_negative():
    with pytest.raises(ValueError):
        class_colors(-1)


def test_palette_hands_out_shared_brushes(qapp):
    pal = Palette(class_colors(10))
    codes = np.random.default_rng(0).integers(-3, 14, 5000)
    brushes = pal.brushes_for(codes)
    assert len({id(b) for b in brushes}) <= len(pal) + 1
    unknown = brushes[(codes < 0) | (codes >= 10)]
    assert all(b is pal.brush(-1) for b in unknown)
    known = codes[(codes >= 0) & (codes < 10)]
    assert all(pal.brushes_for(np.array([c]))[0] is pal.brush(int(c)) for c in np.unique(known))


def test_palette_dims_only_masked(qapp):
    pal = Palette(class_colors(3))
    codes = np.array([0, 1, 2, 0])
    mask = np.array([True, False, True, False])
    out = pal.brushes_for(codes, mask)
    assert out[1] is pal.brush(1) and out[3] is pal.brush(0)
    assert out[0].color().alpha() < pal.brush(0).color().alpha()


def test_palette_empty_codes(qapp):
    assert Palette(class_colors(3)).brushes_for(np.zeros(0, np.int64)).shape == (0,)


def test_entropy_codes_bins_and_nan():
    ent = np.array([0.0, np.log(10) / 2, np.log(10), np.nan, 99.0])
    codes = entropy_codes(ent, 10, bins=16)
    assert codes[0] == 0 and codes[2] == 15 and codes[4] == 15
    assert codes[1] in (7, 8)
    assert codes[3] == -1
    assert len(entropy_colors(16)) == 16


def _luminance(color: str) -> float:
    c = np.array(QtGui.QColor(color).getRgbF()[:3])
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(c @ [0.2126, 0.7152, 0.0722])


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)))
    return (lb + 0.05) / (la + 0.05)


def test_fixed_broken_colours_stand_out_on_every_theme():
    """'unchanged, right' was light grey (#cfcfcf) on white: 1.6:1, hard to see."""
    from protoview.gui._qt._theme import PLOT_COLORS
    from protoview.gui.map import VERSUS_COLORS

    for theme, (background, _fg) in PLOT_COLORS.items():
        for color in VERSUS_COLORS:
            assert _contrast(color, background) >= 3.0, (theme, color)
    right, wrong = VERSUS_COLORS[2:]
    assert _luminance(right) > _luminance(wrong) and _contrast(right, wrong) >= 1.5
