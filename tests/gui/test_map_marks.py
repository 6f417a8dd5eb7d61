"""The map as researchers use it (issue 16): marks on selected and focused samples,
clearing by a click on empty space, lasso, names on stars and prototypes, prototype and
group colours, glyph hover, the hover card leaving with the pointer, the entropy bar."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from protoview.gui.map import EmbeddingView, class_colors
from protoview.gui.map import _marks as marks
from protoview.gui.map._spatial import points_in_polygon
from tests.gui.fakes import random_state


@pytest.fixture
def view(qtbot):
    v = EmbeddingView()
    qtbot.addWidget(v)
    v.resize(700, 500)
    v.show()
    yield v
    v.finish_animation()


def _widget_pos(view, x: float, y: float) -> QtCore.QPoint:
    scene = view._vb.mapViewToScene(QtCore.QPointF(x, y))
    return view.mapFromScene(scene)


def _empty_spot(view) -> QtCore.QPoint:
    """A point of the map with no sample or glyph within 30 px."""
    (x0, x1), (y0, y1) = view._vb.viewRange()
    pts = np.concatenate([view.state.embedding, view.state.centers_embedding,
                          view.state.proxies_embedding, view.state.prototypes_embedding])
    for fx in np.linspace(0.1, 0.9, 9):
        for fy in np.linspace(0.1, 0.6, 6):
            x, y = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
            p = _widget_pos(view, x, y)
            d = [(_widget_pos(view, *q) - p).manhattanLength() for q in pts]
            if min(d) > 30:
                return p
    raise AssertionError("no empty spot on the map")


def _click(qtbot, view, pos: QtCore.QPoint) -> None:
    qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)


def test_a_click_on_empty_space_clears_highlight_selection_and_focus(view, qtbot):
    s = random_state(300, c=4, p=2, k=3)
    view.set_state(s, animate=False)
    texts = []
    view.highlight_changed.connect(texts.append)
    view.highlight("centers", 1)
    view.select_rect(-100, -100, 100, 100)
    view.focus_sample(5)
    assert texts[-1].startswith("class center 1") and view.selection.size == 300
    _click(qtbot, view, _empty_spot(view))
    assert texts[-1] == "" and view._highlight is None
    assert view.selection.size == 0 and view.focus_index is None
    assert len(view.marks["selection"].data) == 0 and len(view.marks["focus"].data) == 0
    alpha = {b.color().alpha() for b in view.items["samples"].data["brush"]}
    assert len(alpha) == 1  # nothing dimmed any more


def test_a_new_state_ends_the_highlight_and_says_so(view):
    s = random_state(200, c=4)
    view.set_state(s, animate=False)
    texts = []
    view.highlight_changed.connect(texts.append)
    view.highlight("centers", 0)
    view.set_state(random_state(200, c=4, seed=2), animate=False)
    assert texts[-1] == ""  # the toolbar text goes with the highlight


def test_selected_samples_are_ringed_and_the_rings_follow_the_points(view, qtbot):
    s = random_state(300, c=3)
    view.set_state(s, animate=False)
    sel = view.select_rect(-100, -100, 0, 100)
    assert sel.size
    ring = view.marks["selection"]
    np.testing.assert_allclose(np.column_stack(ring.getData()), s.embedding[sel], rtol=1e-6)
    assert ring.acceptedMouseButtons() == QtCore.Qt.MouseButton.NoButton
    from dataclasses import replace

    moved = replace(s, embedding=s.embedding + 3.0)
    view.set_state(moved)
    qtbot.waitUntil(lambda: not view.is_animating(), timeout=2000)
    np.testing.assert_allclose(np.column_stack(ring.getData()), moved.embedding[sel], rtol=1e-5)
    # a map of other samples (another count): the selection ends
    view.set_state(random_state(120, c=3), animate=False)
    assert view.selection.size == 0 and len(ring.data) == 0


def test_lasso_selects_the_samples_inside_the_polygon(view):
    s = random_state(400, c=3)
    view.set_state(s, animate=False)
    triangle = np.array([[-20.0, -20.0], [20.0, -20.0], [0.0, 20.0]])
    sel = view.select_polygon(triangle)
    # brute force: inside all three edges (the triangle is counter-clockwise)
    x, y = s.embedding[:, 0], s.embedding[:, 1]

    def left(a, b):
        return (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) > 0

    inside = left(triangle[0], triangle[1]) & left(triangle[1], triangle[2]) & left(triangle[2], triangle[0])
    np.testing.assert_array_equal(sel, np.flatnonzero(inside))
    assert len(view.marks["selection"].data) == sel.size


def test_points_in_polygon_edge_cases():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [np.nan, 0.5], [0.5, -0.1]])
    assert points_in_polygon(pts, square).tolist() == [True, False, False, False]
    assert not points_in_polygon(pts, square[:2]).any()  # not a polygon
    assert points_in_polygon(np.zeros((0, 2)), square).size == 0
    # a concave 'C': its notch is outside
    c_shape = np.array([[0, 0], [3, 0], [3, 1], [1, 1], [1, 2], [3, 2], [3, 3], [0, 3]], float)
    got = points_in_polygon(np.array([[0.5, 1.5], [2, 1.5], [2, 0.5]]), c_shape)
    assert got.tolist() == [True, False, True]
    many = np.column_stack([np.cos(np.linspace(0, 2 * np.pi, 5000)),
                            np.sin(np.linspace(0, 2 * np.pi, 5000))])
    assert points_in_polygon(np.array([[0, 0], [2, 0]]), many).tolist() == [True, False]


def _mouse(vp, kind, pos: QtCore.QPoint, buttons) -> None:
    from PySide6 import QtGui

    button = (QtCore.Qt.MouseButton.NoButton if kind == QtCore.QEvent.Type.MouseMove
              else QtCore.Qt.MouseButton.LeftButton)
    ev = QtGui.QMouseEvent(kind, QtCore.QPointF(pos), QtCore.QPointF(vp.mapToGlobal(pos)),
                           button, buttons, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(vp, ev)


def test_the_lasso_drag_draws_and_selects(view, qtbot):
    s = random_state(300, c=3)
    view.set_state(s, animate=False)
    view._vb.select_mode = "lasso"
    got = []
    view._vb.sig_lasso_selected.connect(got.append)
    (x0, x1), (y0, y1) = view._vb.viewRange()
    corners = [(x0 + f * (x1 - x0), y0 + g * (y1 - y0))
               for f, g in ((0.01, 0.01), (0.99, 0.01), (0.99, 0.99), (0.01, 0.99))]
    pts = [_widget_pos(view, *c) for c in corners]
    vp = view.viewport()
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    _mouse(vp, QtCore.QEvent.Type.MouseButtonPress, pts[0], left)
    path = []
    for a, b in zip(pts, pts[1:], strict=False):
        path += [QtCore.QPoint(int(a.x() + t * (b.x() - a.x())), int(a.y() + t * (b.y() - a.y())))
                 for t in np.linspace(0.2, 1.0, 5)]
    for p in path:
        qtbot.wait(25)  # pyqtgraph drops moves faster than its mouse rate limit
        _mouse(vp, QtCore.QEvent.Type.MouseMove, p, left)
    assert view._vb.lasso_curve.isVisible()  # the lasso is drawn while dragging
    _mouse(vp, QtCore.QEvent.Type.MouseButtonRelease, path[-1], none)
    assert got and len(got[-1]) >= 3
    assert view.selection.size > 0.8 * 300  # nearly every sample is inside the frame
    assert not view._vb.lasso_curve.isVisible()


def test_names_on_the_stars_and_prototypes_toggle(view):
    s = random_state(300, c=4, p=1, k=3)
    s.assignment = np.argmin(((s.features[:, None] - s.prototypes[None]) ** 2).sum(-1), 1)
    view.set_state(s, ["cat", "dog", "fox", "owl"], animate=False)
    shown = marks.shown_names(view)
    assert {"cat", "dog", "fox", "owl"} <= set(shown)
    assert sum(t.startswith("P") for t in shown) == 3
    view.set_show_names(False)
    assert marks.shown_names(view) == []
    view.set_show_names(True)
    view.set_layer_visible("prototypes", False)
    assert not any(t.startswith("P") for t in marks.shown_names(view))
    # names grow with the text scale (presentation mode)
    size = view.names.text_font.pointSizeF()
    view.set_text_scale(2.0)
    assert view.names.text_font.pointSizeF() > 1.8 * size
    # drawn in one item, above the stars in the theme's colours
    assert view.names.colors[0].name() == view.text_colors[0]


def test_names_never_sit_on_each_other_nor_on_a_glyph(view, qtbot):
    """Prototype names sat on star names ("P6: 3" on "3") and close stars' names piled up.
    Each name is placed around its point where no other name or glyph is."""
    s = random_state(300, c=4, p=1, k=3)
    (x0, x1), (y0, y1) = (s.embedding[:, 0].min(), s.embedding[:, 0].max()), (
        s.embedding[:, 1].min(), s.embedding[:, 1].max())
    mid = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
    step = np.float32((x1 - x0) / 100)  # a few pixels on the map
    s.centers_embedding[:2] = [mid, mid + [2 * step, 0]]  # two stars side by side
    s.prototypes_embedding[:2] = [mid, mid + [0, step]]  # prototypes on the first star
    s.assignment = np.zeros(300, np.int64)
    names = ["0_circle", "1_square", "2_triangle", "3_pentagon"]
    view.set_state(s, names, animate=False)
    view.finish_animation()
    qtbot.wait(20)
    item = view.names
    tr = item.deviceTransform(view.viewportTransform())
    placed = item.placed(tr)
    texts = [t for t, _b, _s in placed]
    assert set(names) <= set(texts)  # every star keeps its name
    boxes = [b for _t, b, _s in placed]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.intersects(b), (texts, boxes)
    r = item.clearance
    for t, box, _s in placed:
        for other, x, y, _dy, _bold in item.texts:
            if other == t:
                continue
            at = tr.map(QtCore.QPointF(x, y))
            glyph = QtCore.QRectF(at.x() - r, at.y() - r, 2 * r, 2 * r)
            assert not box.intersects(glyph), (t, other)
    # apart on the map: the usual places, names above the stars, below the triangles
    view.set_state(random_state(300, c=4, p=1, k=0), names, animate=False)
    view.finish_animation()
    tr = item.deviceTransform(view.viewportTransform())
    for (_t, box, _s), (_n, x, y, _dy, _b) in zip(item.placed(tr), item.texts, strict=True):
        assert box.bottom() <= tr.map(QtCore.QPointF(x, y)).y() - r + 0.5


def test_names_keep_off_the_proxies_and_the_legend(view, qtbot):
    """A class's name sat on its own proxy's diamond ("owl" over the diamond right above
    its star) and prototype names under the legend ("P0: 3"): both are obstacles now."""
    s = random_state(300, c=4, p=1, k=2)
    (x0, x1), (y0, y1) = (s.embedding[:, 0].min(), s.embedding[:, 0].max()), (
        s.embedding[:, 1].min(), s.embedding[:, 1].max())
    mid = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
    s.centers_embedding[:] = mid + np.float32((x1 - x0) / 5) * np.float32(
        [[-1, 0], [0, 0], [1, 0], [0, -1]])
    s.proxies_embedding[:] = s.centers_embedding + np.float32([0, (y1 - y0) / 25])  # above
    s.prototypes_embedding[:] = [[x0, y1], [x0 + (x1 - x0) / 30, y1]]  # top left: the legend
    view.set_state(s, ["cat", "dog", "owl", "fox"], animate=False)
    view.finish_animation()
    qtbot.wait(20)
    item = view.names
    tr = item.deviceTransform(view.viewportTransform())
    legend = tr.mapRect(item.mapRectFromItem(view.legend, view.legend.boundingRect()))
    assert view.legend.isVisible() and legend.width() > 20
    placed = item.placed(tr, None, [legend])
    assert {"cat", "dog", "owl", "fox"} <= {t for t, _b, _s in placed}
    q = item.obstacle_radius
    assert len(item.obstacles) == 4 and q > 3
    for t, box, _s in placed:
        for u, v in item.obstacles:
            at = tr.map(QtCore.QPointF(float(u), float(v)))
            assert not box.intersects(QtCore.QRectF(at.x() - q, at.y() - q, 2 * q, 2 * q)), t
        if not t.startswith("P"):
            assert not box.intersects(legend), t
    protos = [b for t, b, _s in placed if t.startswith("P")]
    assert all(not b.intersects(legend) for b in protos)  # placed elsewhere or left out
    # without the proxies shown, a star's name goes back right above it
    view.set_layer_visible("proxies", False)
    assert len(item.obstacles) == 0


def _brush_hex(brushes) -> list[str]:
    return [b.color().name() for b in brushes]


def test_groups_and_prototypes_take_the_colour_of_the_class_they_match(view):
    """Sinkhorn groups used to reuse class colours at random (class 6's cluster turned
    class-3 red). A group that matches a class now takes that class's colour, and its
    prototype triangle is coloured too; the other groups get colours no class uses."""
    rng = np.random.default_rng(0)
    s = random_state(400, c=6, p=1, k=4)
    perm = np.array([5, 2, 0, 3])  # group j is mostly class perm[j]
    s.assignment = rng.integers(0, 4, 400)
    s.labels = np.where(rng.random(400) < 0.9, perm[s.assignment], rng.integers(0, 6, 400))
    view.set_state(s, animate=False)
    view.set_color_mode("assignment")
    colors = class_colors(6)
    got = np.array(_brush_hex(view.items["samples"].data["brush"]))
    for j in range(4):
        assert set(got[s.assignment == j]) == {colors[perm[j]]}
    protos = _brush_hex(view.items["prototypes"].data["brush"])
    assert protos == [colors[p] for p in perm]
    texts = [label.text for _s, label in view.legend.items]
    assert "P0 ≈ 5" in texts
    # more groups than classes: the extra ones get colours that no class uses
    s2 = random_state(400, c=3, p=1, k=6)
    s2.assignment = np.arange(400) % 6
    s2.labels = s2.assignment % 3
    view.set_state(s2, animate=False)
    used = set(_brush_hex(view.items["prototypes"].data["brush"]))
    assert len(used) == 6 and len(used & set(class_colors(3))) == 3


def test_prototypes_never_cover_the_stars_and_are_not_white(view):
    s = random_state(200, c=4, p=1, k=3)
    view.set_state(s, animate=False)
    z = {name: view.items[name].zValue() for name in ("prototypes", "proxies", "centers")}
    assert z["prototypes"] < z["proxies"] < z["centers"]
    assert all(c != "#ffffff" for c in _brush_hex(view.items["prototypes"].data["brush"]))


def test_assignment_colouring_before_any_kmeans_says_why_it_is_grey(view):
    view.set_state(random_state(200, c=4), animate=False)
    view.set_color_mode("assignment")
    texts = [label.text for _s, label in view.legend.items]
    assert any("no assignment yet" in t for t in texts)


def test_sinkhorn_to_proxies_uses_the_class_colours(view):
    s = random_state(200, c=4, p=2)
    s.assignment, s.assignment_target = s.labels.copy(), "proxies"
    view.set_state(s, ["a", "b", "c", "d"], animate=False)
    view.set_color_mode("assignment")
    got = np.array(_brush_hex(view.items["samples"].data["brush"]))
    np.testing.assert_array_equal(got, np.array(class_colors(4))[s.labels])
    assert "to a" in [label.text for _s, label in view.legend.items]


def test_hovering_a_star_describes_the_class_not_the_sample_under_it(view, qtbot):
    s = random_state(200, c=4, p=1)
    s.embedding[0] = s.centers_embedding[2]  # a sample right under star 2
    view.set_state(s, ["a", "b", "c", "d"], animate=False)
    view.autoRange()
    scene = view._vb.mapViewToScene(QtCore.QPointF(*s.centers_embedding[2]))
    view._on_mouse_moved(scene)
    text = view.hover_card.text.text()
    assert "class center c" in text and f"{int((s.labels == 2).sum())} samples" in text
    assert "#0" not in text


def test_the_hover_card_leaves_with_the_pointer(view, qtbot):
    s = random_state(100)
    view.set_state(s, animate=False)
    seen = []
    view.hovered.connect(seen.append)
    view.show_hover(3, QtCore.QPoint(10, 10))
    view._set_hover(3)
    assert view.hover_card.isVisible()
    QtWidgets.QApplication.sendEvent(view, QtCore.QEvent(QtCore.QEvent.Type.Leave))
    assert not view.hover_card.isVisible() and seen[-1] == -1


def test_entropy_colouring_has_a_colour_bar_only_then(view):
    s = random_state(200, c=10)
    view.set_state(s, animate=False)
    assert not view.entropy_bar.isVisible()
    view.set_color_mode("entropy")
    assert view.entropy_bar.isVisible()
    assert view.entropy_bar.levels() == pytest.approx((0.0, np.log(10)))
    view.set_color_mode("label")
    assert not view.entropy_bar.isVisible()


def test_focus_and_neighbour_lines(view):
    s = random_state(100)
    view.set_state(s, animate=False)
    got = []
    view.focus_changed.connect(got.append)
    view.focus_sample(4)
    view.set_neighbors([1, 2, 3])
    assert got == [4]
    x, y = view.marks["links"].getData()
    assert len(x) == 6
    np.testing.assert_allclose(np.column_stack([x[0::2], y[0::2]]), s.embedding[[4, 4, 4]])
    np.testing.assert_allclose(np.column_stack([x[1::2], y[1::2]]), s.embedding[[1, 2, 3]])
    view.focus_sample(10_000)  # not a sample: ignored
    assert view.focus_index == 4
    view.focus_sample(None)
    assert got[-1] == -1 and len(view.marks["links"].getData()[0] or []) == 0


def test_moving_over_the_same_sample_moves_the_card_without_making_it_again(view, qtbot):
    """The card's text and thumbnail (a file read for an image folder) were made again on
    every mouse move; over the same sample of the same map the card only follows."""
    s = random_state(100)
    view.set_state(s, animate=False)
    view.autoRange()
    reads = []
    view.thumbnail = lambda i: (reads.append(i), np.zeros((8, 8), np.uint8))[1]
    i = int(np.argmin(np.linalg.norm(s.embedding - s.embedding.mean(axis=0), axis=1)))
    at = view._vb.mapViewToScene(QtCore.QPointF(*map(float, s.embedding[i])))  # mid-map
    view._on_mouse_moved(at)
    first = view.hover_card.pos()
    view._on_mouse_moved(at + QtCore.QPointF(1, 1))
    assert reads == [i] and view.hover_card.isVisible()
    assert view.hover_card.pos() == first + QtCore.QPoint(1, 1)  # it followed the pointer
    view.set_state(random_state(100, seed=1), animate=False)  # a new map: made again
    view._on_mouse_moved(view._vb.mapViewToScene(
        QtCore.QPointF(*map(float, view.state.embedding[i]))))
    assert reads == [i, i]


def test_a_class_without_samples_shows_no_center(view):
    """A center whose class has no labelled sample (its vector is zeros, laid out with the
    rest) is not drawn, named, counted in the legend or linked to its proxies; the others
    are."""
    from protoview.gui.map._layers import empty_centers

    s = random_state(300, c=4, p=2)
    s.labels = np.where(s.labels == 2, 0, s.labels)  # class 2 loses its samples
    view.set_state(s, ["cat", "dog", "fox", "owl"], animate=False)
    assert empty_centers(s).tolist() == [False, False, True, False]
    xy = view.items["centers"].getData()
    finite = np.isfinite(xy[0]) & np.isfinite(xy[1])
    assert finite.tolist() == [True, True, False, True]
    shown = marks.shown_names(view)
    assert {"cat", "dog", "owl"} <= set(shown) and "fox" not in shown
    x, y = view.items["proxy_lines"].getData()
    assert x is not None and np.isfinite(x).all() and len(x) == 2 * 2 * 3  # 3 classes x 2
    legend = [item[1].text for item in view.legend.items]
    assert any("class centers (3)" in t for t in legend), legend
    assert np.isfinite(s.centers_embedding).all()  # the state's own layout is untouched
