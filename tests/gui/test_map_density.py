"""The map above its drawing threshold: one aggregated density image under the glyphs."""

import time

import numpy as np
import pytest

from protoview.gui.map import EmbeddingView
from protoview.gui.map._density import BINS, density_image
from tests.gui.fakes import random_state


@pytest.fixture
def view(qtbot):
    v = EmbeddingView()
    qtbot.addWidget(v)
    v.resize(800, 600)
    v.show()
    yield v
    v.finish_animation()


def _repaint_ms(view, qapp, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        view.viewport().repaint()
        qapp.processEvents()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def test_density_above_threshold_and_back(view):
    view.density_threshold = 1000
    small, big = random_state(500, c=5, p=2, k=3), random_state(3000, c=5, p=2, k=3, seed=1)
    view.set_state(small)
    assert not view.dense and not view.items["density"].isVisible()
    assert len(view.items["samples"].data) == 500
    view.set_state(big)  # same-shape animation is off: the counts differ anyway
    assert view.dense and view.items["density"].isVisible()
    assert len(view.items["samples"].data) == 0
    assert not view.is_animating()
    img = view.items["density"].image
    assert img.shape == (BINS, BINS, 4) and (img[..., 3] > 0).sum() > 100
    # the glyphs stay on top, as before
    assert len(view.items["centers"].data) == 5 and len(view.items["proxies"].data) == 10
    assert len(view.items["prototypes"].data) == 3
    assert view.items["centers"].zValue() > view.items["density"].zValue()
    # no hover on single samples; the tooltip says so; box selection still works
    x, y = big.embedding[0]
    assert view.nearest_sample(float(x), float(y)) is None
    assert "density" in view.toolTip() and "Hover" in view.toolTip()
    sel = view.select_rect(-1e9, -1e9, 1e9, 1e9)
    assert sel.size == 3000
    # colour modes redraw the image
    before = img.copy()
    view.set_color_mode("correctness")
    assert not np.array_equal(view.items["density"].image, before)
    view.set_layer_visible("samples", False)
    assert not view.items["density"].isVisible()
    view.set_layer_visible("samples", True)
    # a step of the same large map stays dense, without animation
    view.set_state(random_state(3000, c=5, p=2, k=3, seed=2))
    assert view.dense and not view.is_animating()
    # and back below the threshold: the scatter again, the image hidden
    view.set_state(small)
    assert not view.dense and not view.items["density"].isVisible()
    assert len(view.items["samples"].data) == 500
    assert view.toolTip() == ""
    assert view.nearest_sample(*map(float, small.embedding[0])) == 0


def test_density_image_majority_colour():
    xy = np.array([[0, 0], [0, 0], [0, 0], [1, 1]], np.float64)
    codes = np.array([1, 1, 0, 5])  # 5 is out of range -> the unknown colour
    colors = np.array([[255, 0, 0, 255], [0, 255, 0, 255], [9, 9, 9, 255]], np.uint8)
    img, rect = density_image(xy, codes, colors, bins=4)
    assert tuple(img[0, 0, :3]) == (0, 255, 0)  # two of three are code 1
    assert tuple(img[3, 3, :3]) == (9, 9, 9)
    assert img[0, 0, 3] > img[3, 3, 3] > 0  # denser -> more opaque
    assert img[1, 1, 3] == 0
    assert (rect.left(), rect.top(), rect.width(), rect.height()) == (0, 0, 1, 1)
    assert density_image(np.full((3, 2), np.nan), np.zeros(3), colors)[0] is None


def test_million_points_timing(view, qapp):
    n = 1_000_000
    s = random_state(2000, c=10, p=1)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    s.labels = labels
    s.predictions = np.where(rng.random(n) < 0.9, labels, (labels + 1) % 10)
    s.confidence = np.ones(n, np.float32)
    s.entropy = rng.random(n).astype(np.float32)
    s.features = np.zeros((n, 1), np.float32)
    s.logits = None
    s.embedding = (s.centers_embedding[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    t = time.perf_counter()
    view.set_state(s)
    qapp.processEvents()
    set_s = time.perf_counter() - t
    paint_ms = _repaint_ms(view, qapp)
    t = time.perf_counter()
    view.set_color_mode("prediction")
    mode_s = time.perf_counter() - t
    print(f"\n1M points: set_state {set_s:.2f} s, repaint {paint_ms:.1f} ms, "
          f"colour mode {mode_s:.2f} s")
    assert view.dense
    assert set_s < 5.0
    assert paint_ms < 150.0
    assert mode_s < 5.0


def test_the_density_image_is_drawn_again_only_when_its_points_or_colours_change(view, monkeypatch):
    """A highlight, a text size or a theme restyles the map; the image stays (drawing it
    takes most of a second at 1M samples), and is drawn again for new colours or points."""
    from protoview.gui.map import _density

    view.density_threshold = 1000
    view.set_state(random_state(3000, c=5, p=2, k=3, seed=1))
    draws = []
    real = _density.draw
    monkeypatch.setattr(_density, "draw", lambda *a: (draws.append(1), real(*a)))
    view.highlight("centers", 1)
    view.clear_highlight()
    view.set_text_scale(1.5)
    view.set_text_colors("#dddddd", "#222222")
    assert draws == []
    view.set_color_mode("correctness")
    assert len(draws) == 1
    view.set_state(random_state(3000, c=5, p=2, k=3, seed=2))
    assert len(draws) == 2
    # below the threshold and back: drawn again (the image was cleared)
    view.set_state(random_state(500, c=5, p=2, k=3))
    view.set_state(random_state(3000, c=5, p=2, k=3, seed=2))
    assert len(draws) == 3 and view.items["density"].isVisible()
