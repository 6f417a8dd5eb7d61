import numpy as np
import pytest

from protoview.gui.map import COLOR_MODES, EmbeddingView
from protoview.gui.map._items import move_points
from tests.gui.fakes import random_state


@pytest.fixture
def view(qtbot):
    v = EmbeddingView()
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    yield v
    v.finish_animation()


def _brush_colors(item):
    return np.array([b.color().rgba() for b in item.data["brush"]])


def test_layers_hold_the_state(view):
    s = random_state(200, c=5, p=3, k=4)
    view.set_state(s)
    x, y = view.items["samples"].getData()
    np.testing.assert_allclose(np.column_stack([x, y]), s.embedding, rtol=1e-6)
    assert len(view.items["centers"].data) == 5
    assert len(view.items["proxies"].data) == 15
    assert len(view.items["prototypes"].data) == 4
    lx, ly = view.items["proxy_lines"].getData()
    assert len(lx) == 2 * 15  # one segment proxy -> its center each
    # every segment ends on the center of the proxy's class
    ends = np.column_stack([lx[1::2], ly[1::2]])
    np.testing.assert_allclose(ends, s.centers_embedding[s.proxy_classes], rtol=1e-6)


def test_samples_use_few_shared_brushes(view):
    s = random_state(3000, c=100, p=1)
    view.set_state(s)
    for mode in COLOR_MODES:
        view.set_color_mode(mode)
        ids = {id(b) for b in view.items["samples"].data["brush"]}
        assert len(ids) <= 101, mode
    assert view.items["samples"].opts["pen"] is None or view.items["samples"].data["pen"][0] is None


def test_colour_modes_follow_codes(view):
    s = random_state(400, c=10)
    s.predictions[:50] = (s.labels[:50] + 1) % 10
    view.set_state(s)
    view.set_color_mode("correctness")
    colors = _brush_colors(view.items["samples"])
    correct = s.predictions == s.labels
    assert len(set(colors[correct])) == 1 and len(set(colors[~correct])) == 1
    assert colors[correct][0] != colors[~correct][0]
    view.set_color_mode("label")
    colors = _brush_colors(view.items["samples"])
    for c in range(10):  # same label -> same colour, different labels -> different colours
        assert len(set(colors[s.labels == c])) == 1
    assert len(set(colors)) == len(np.unique(s.labels))
    with pytest.raises(ValueError):
        view.set_color_mode("rainbow")


def test_entropy_mode_orders_colours(view):
    s = random_state(300)
    view.set_state(s)
    view.set_color_mode("entropy")
    codes = view.sample_codes()
    order = np.argsort(s.entropy)
    assert codes[order[0]] <= codes[order[-1]]
    assert np.all(np.diff(codes[order]) >= 0)


def test_move_points_matches_set_data(view, qtbot):
    s = random_state(500)
    view.set_state(s, animate=False)
    new = s.embedding + np.random.default_rng(2).normal(size=s.embedding.shape).astype(np.float32)
    item = view.items["samples"]
    move_points(item, new[:, 0], new[:, 1])
    moved = view.grab().toImage()
    bounds_moved = (item.dataBounds(0), item.dataBounds(1))
    item.setData(new[:, 0], new[:, 1], brush=item.data["brush"], size=item.data["size"], pen=None)
    reference = view.grab().toImage()
    assert moved == reference
    assert bounds_moved == (item.dataBounds(0), item.dataBounds(1))


def test_points_glide_between_states(view, qtbot):
    s = random_state(300)
    view.set_state(s)
    s2 = random_state(300, seed=5)
    view.set_state(s2)
    assert view.is_animating()
    mid = np.column_stack(view.items["samples"].getData())
    assert not np.allclose(mid, s2.embedding)  # first frame is between old and new
    qtbot.waitUntil(lambda: not view.is_animating(), timeout=2000)
    np.testing.assert_allclose(np.column_stack(view.items["samples"].getData()), s2.embedding,
                               rtol=1e-5)


def test_highlight_members_dims_the_rest(view):
    s = random_state(300, c=4, p=2, k=3)
    view.set_state(s, animate=False)
    members = view.highlight("centers", 2)
    np.testing.assert_array_equal(members, np.flatnonzero(s.labels == 2))
    alpha = np.array([b.color().alpha() for b in view.items["samples"].data["brush"]])
    assert alpha[s.labels == 2].min() > alpha[s.labels != 2].max()
    # proxy members: nearest proxy by cosine
    f = s.features / np.linalg.norm(s.features, axis=1, keepdims=True)
    p = s.proxies / np.linalg.norm(s.proxies, axis=1, keepdims=True)
    np.testing.assert_array_equal(view.highlight("proxies", 3), np.flatnonzero((f @ p.T).argmax(1) == 3))
    d = ((s.features[:, None] - s.prototypes[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(view.highlight("prototypes", 1), np.flatnonzero(d.argmin(1) == 1))
    view.clear_highlight()
    alpha = {b.color().alpha() for b in view.items["samples"].data["brush"]}
    assert len(alpha) == 1


def test_box_selection_summary_and_export(view, tmp_path):
    s = random_state(400, c=3)
    view.set_state(s, animate=False)
    sel = view.select_rect(-100, -100, 0, 100)
    np.testing.assert_array_equal(sel, np.flatnonzero(s.embedding[:, 0] <= 0))
    text = view.selection_summary()
    acc = np.mean(s.labels[sel] == s.predictions[sel])
    assert f"{sel.size} selected" in text and f"{acc:.1%}" in text
    view.export_selection(str(tmp_path / "sel.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "sel.npy"), sel)
    view.export_selection(str(tmp_path / "sel.csv"))
    rows = np.loadtxt(tmp_path / "sel.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    np.testing.assert_array_equal(rows[:, 0], sel)
    np.testing.assert_array_equal(rows[:, 1], s.labels[sel])
    from protoview.errors import ParameterError

    with pytest.raises(ParameterError):
        view.export_selection(str(tmp_path / "sel.txt"))
    assert view.select_rect(1e6, 1e6, 2e6, 2e6).size == 0
    assert "No selection" in view.selection_summary()


def test_hover_shows_label_prediction_confidence_and_thumbnail(view):
    s = random_state(100)
    view.set_state(s, ["zero", *map(str, range(1, 10))], animate=False)
    view.thumbnail = lambda i: np.full((8, 8), 200, np.uint8)
    i = 7
    text = view.hover_text(i)
    assert f"#{i}" in text and f"{s.confidence[i]:.0%}" in text
    view.autoRange()
    x, y = s.embedding[i]
    assert view.nearest_sample(float(x), float(y)) == i
    from PySide6 import QtCore

    view.show_hover(i, QtCore.QPoint(10, 10))
    assert view.hover_card.isVisible() and not view.hover_card.image.pixmap().isNull()


def test_legend_lists_layers_and_classes(view):
    s = random_state(100, c=4, p=1, k=2)
    view.set_state(s, ["a", "b", "c", "d"], animate=False)
    texts = [label.text for _, label in view.legend.items]
    assert any("class centers (4)" in t for t in texts)
    assert any("prototypes (2)" in t for t in texts)
    assert {"a", "b", "c", "d"} <= set(texts)
    s100 = random_state(500, c=100, p=1)
    view.set_state(s100, animate=False)
    assert len(view.legend.items) <= 8  # 100 classes collapse into one entry


def test_tiny_and_empty_inputs(view):
    one = random_state(1, c=1, p=1, k=0)
    view.set_state(one, animate=False)
    assert len(view.items["samples"].data) == 1
    s = random_state(50, c=2, p=0, k=0)
    s.labels[:] = -1
    s.predictions[:] = -1
    s.embedding[3] = np.nan
    view.set_state(s, animate=False)
    view.set_color_mode("correctness")
    assert set(view.sample_codes()) == {-1}
    assert view.select_rect(-1e3, -1e3, 1e3, 1e3).size == 49
    assert "no labels" in view.selection_summary()  # unlabelled: not "0%", not "n/a"
    s.labels[:] = 1
    view.set_state(s, animate=False)
    assert view.select_rect(-1e3, -1e3, 1e3, 1e3).size == 49
    assert "accuracy n/a" in view.selection_summary()  # labels but no predictions
    with pytest.raises(ValueError):
        view.set_glyph_scale(0)
    with pytest.raises(ValueError):
        view.set_layer_visible("stars", False)
    view.set_layer_visible("proxies", False)
    assert not view.items["proxy_lines"].isVisible()


def test_a_step_with_unchanged_colours_moves_points_without_rebuilding(view):
    from dataclasses import replace

    a = random_state(500, c=10, p=2)
    view.set_state(a, animate=False)
    data_before = view.items["samples"].data
    b = replace(a, embedding=a.embedding + 1.5)
    view.set_state(b, animate=False)
    assert view.items["samples"].data is data_before  # moved in place, spots kept
    x, y = view.items["samples"].getData()
    np.testing.assert_allclose(np.column_stack([x, y]), b.embedding, rtol=1e-6)
    # the predictions change in 'prediction' mode: colours are rebuilt and correct
    view.set_color_mode("prediction")
    c = replace(b, predictions=(b.predictions + 1) % 10)
    view.set_state(c, animate=False)
    pal = view.palette("class")
    expected = np.array([pal.brush(int(k)).color().rgba() for k in c.predictions])
    np.testing.assert_array_equal(_brush_colors(view.items["samples"]), expected)


def test_recoloured_points_render_like_a_fresh_draw(qtbot):
    """The in-place recolour path draws the same pixels as a view built from scratch."""
    from dataclasses import replace

    def make():
        v = EmbeddingView()
        qtbot.addWidget(v)
        v.resize(500, 400)
        v.show()
        v.set_color_mode("prediction")
        return v

    a = random_state(2000, c=10, p=2, seed=3)
    c = replace(a, predictions=np.where(np.arange(2000) % 7 == 0, (a.predictions + 3) % 10,
                                        a.predictions))
    stepped, fresh = make(), make()
    stepped.set_state(a, animate=False)
    stepped.set_state(c, animate=False)  # recolours ~1/7 of the points in place
    fresh.set_state(c, animate=False)
    img1 = stepped.grab().toImage()
    img2 = fresh.grab().toImage()
    assert img1.size() == img2.size()
    assert img1 == img2
