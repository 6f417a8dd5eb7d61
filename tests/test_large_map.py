"""Large maps: above max_map_points the layout is fitted on a stratified subsample and the
other samples are placed by their nearest fitted neighbours (issue 7)."""

import numpy as np
import pytest

from protoview.core import projection as P
from protoview.core.state import compute_geometry

C = 8


def _blobs(n=3000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(C, d)) * 3
    labels = rng.integers(0, C, n)
    labels[:40] = -1  # some unknown labels
    x = means[np.maximum(labels, 0)] + rng.normal(size=(n, d))
    return x.astype(np.float32), labels.astype(np.int64), means.astype(np.float32)


def _proxies(means):
    return np.repeat(means, 2, axis=0), np.repeat(np.arange(C), 2)


def _centroid_accuracy(state) -> float:
    """Share of labelled samples whose nearest 2-D class centroid is their own class."""
    lab, emb = state.labels, state.embedding
    cent = np.stack([emb[lab == c].mean(0) for c in range(C)])
    known = lab >= 0
    near = ((emb[known, None] - cent[None]) ** 2).sum(-1).argmin(1)
    return float((near == lab[known]).mean())


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


@pytest.fixture(scope="module")
def large(blobs):
    x, lab, means = blobs
    px, pc = _proxies(means)
    return compute_geometry(x, lab, proxies=px, proxy_classes=pc, prototypes=x[:5] * 1.01,
                            max_map_points=500, seed=3)


def test_stratified_subsample_keeps_small_sets_and_every_class(large, blobs):
    x, lab, _ = blobs
    fitted = large.map_fitted
    n = len(x)
    assert large.metrics["map_fitted_points"] == len(fitted) <= 500
    assert len(fitted) >= 490  # the budget is used
    # every center (8), proxy (16) and prototype (5) row is fitted
    assert set(range(n, n + C + 2 * C + 5)) <= set(fitted.tolist())
    sub = lab[fitted[fitted < n]]
    counts = np.array([(sub == c).sum() for c in range(-1, C)])
    assert (counts > 0).all()  # every label, the unknown one too
    assert "fitted 500 of" in large.attrs["map"] and "layout: umap-learn" in large.attrs["map"]
    share = counts[1:] / counts[1:].sum()
    full = np.array([(lab == c).sum() for c in range(C)]) / (lab >= 0).sum()
    np.testing.assert_allclose(share, full, atol=0.02)  # proportional


def test_stratified_subsample_function():
    labels = np.r_[np.zeros(900), np.ones(90), np.full(10, 2), np.full(5, 7)].astype(np.int64)
    keep = np.zeros(labels.size, bool)
    keep[-5:] = True
    rows = P.stratified_subsample(labels, keep, 105, seed=1)
    assert len(rows) == 105 and np.all(np.diff(rows) > 0)
    assert set(range(1000, 1005)) <= set(rows.tolist())
    got = np.bincount(labels[rows[rows < 1000]])
    assert got[0] == 90 and got[1] == 9 and got[2] == 1
    np.testing.assert_array_equal(rows, P.stratified_subsample(labels, keep, 105, seed=1))
    assert not np.array_equal(rows, P.stratified_subsample(labels, keep, 105, seed=2))
    np.testing.assert_array_equal(P.stratified_subsample(labels, keep, 5000), np.arange(1005))


def test_placed_points_land_in_their_class(large, blobs):
    x, lab, means = blobs
    assert np.isfinite(large.joint_embedding()).all()
    acc_large = _centroid_accuracy(large)
    px, pc = _proxies(means)
    full = compute_geometry(x, lab, proxies=px, proxy_classes=pc, seed=3)
    acc_full = _centroid_accuracy(full)
    assert "map_fitted_points" not in full.metrics and full.map_fitted is None
    assert acc_large > 0.95 and acc_large >= acc_full - 0.03, (acc_large, acc_full)
    # the placed ones specifically (not only the fitted ones)
    placed = np.ones(len(x), bool)
    placed[large.map_fitted[large.map_fitted < len(x)]] = False
    lab_p, emb_p = lab[placed & (lab >= 0)], large.embedding[placed & (lab >= 0)]
    cent = np.stack([large.embedding[lab == c].mean(0) for c in range(C)])
    assert (((emb_p[:, None] - cent[None]) ** 2).sum(-1).argmin(1) == lab_p).mean() > 0.95


def test_large_map_is_deterministic(large, blobs):
    x, lab, means = blobs
    px, pc = _proxies(means)
    again = compute_geometry(x, lab, proxies=px, proxy_classes=pc, prototypes=x[:5] * 1.01,
                             max_map_points=500, seed=3)
    np.testing.assert_array_equal(again.map_fitted, large.map_fitted)
    np.testing.assert_array_equal(again.joint_embedding(), large.joint_embedding())


def test_below_threshold_is_unchanged(blobs, monkeypatch):
    x, lab, _ = blobs
    x, lab = x[:400], lab[:400]
    plain = P.fit_map(np.concatenate([x, compute_geometry(x, lab, with_map=False).centers]),
                      seed=1)
    state = compute_geometry(x, lab, seed=1, max_map_points=10_000)
    np.testing.assert_array_equal(state.joint_embedding(), plain.embedding)
    assert state.map_fitted is None and "map_fitted_points" not in state.metrics
    # the environment variable is the override when no argument is given
    monkeypatch.setenv("PROTOVIEW_MAX_MAP_POINTS", "300")
    assert P.max_map_points() == 300
    assert compute_geometry(x, lab, seed=1).metrics["map_fitted_points"] <= 300
    monkeypatch.delenv("PROTOVIEW_MAX_MAP_POINTS")
    assert P.max_map_points() == P.MAX_MAP_POINTS == 200_000


def test_update_of_a_large_map_is_anchored(large, blobs):
    x, lab, means = blobs
    px, pc = _proxies(means)
    x2 = x.copy()
    x2[:100] += 0.5 * np.random.default_rng(1).normal(size=(100, x.shape[1])).astype(np.float32)
    upd = compute_geometry(
        x2, lab, proxies=px, proxy_classes=pc, prototypes=x[:5] * 1.01, max_map_points=500,
        seed=3, previous_embedding=large.joint_embedding(), anchor_vectors=large.joint_vectors(),
        previous_knn=large.map_knn,
    )
    np.testing.assert_array_equal(upd.map_fitted, large.map_fitted)
    held = upd.map_held
    assert held.shape == (len(large.joint_vectors()),) and held.sum() > 300
    emb0, emb1 = large.joint_embedding(), upd.joint_embedding()
    np.testing.assert_array_equal(emb1[held], emb0[held])
    assert P.layout_drift(emb0, emb1, np.arange(len(emb0)) >= 100) < 0.02
    assert _centroid_accuracy(upd) > 0.95


def test_place_points_exact_and_ivf_agree(monkeypatch):
    x, lab, _ = _blobs(4000, seed=5)
    lab = np.maximum(lab, 0)
    xy = (np.random.default_rng(0).normal(size=(C, 2)) * 10)[lab]
    ref, q = slice(0, 2500), slice(2500, None)
    exact = P.place_points(x[ref], xy[ref], x[q])
    from protoview.core.projection import _large

    monkeypatch.setattr(_large, "_EXACT_PLACE_REF", 100)  # the IVF search of a large subsample
    monkeypatch.setattr(_large, "_PLACE_CHUNK", 512)  # several chunks
    ivf = P.place_points(x[ref], xy[ref], x[q])
    assert np.isfinite(ivf).all() and ivf.shape == exact.shape
    # both land each point on its own class's spot
    np.testing.assert_allclose(exact, xy[q], atol=1e-3)
    np.testing.assert_allclose(ivf, xy[q], atol=1e-3)


def test_large_map_notes_and_pca_placement(monkeypatch):
    """A map above the limit fits ``fit_points`` rows, places the rest in principal
    components (IVF above a few thousand fitted rows, unless few rows are placed) and says
    so in its notes."""
    from protoview.core.projection import _large

    monkeypatch.setattr(_large, "_EXACT_PCA_REF", 200)
    monkeypatch.setattr(_large, "_FEW_QUERIES", 100)  # 1,900 to place: not few
    x, lab, _ = _blobs(2500, d=96, seed=2)
    res, fitted = P.fit_large_map(x, lab, np.zeros(len(x), bool), max_points=1000,
                                  fit_points=600, place_dims=16, seed=0)
    assert 590 <= len(fitted) <= 600 and np.isfinite(res.embedding).all()
    assert "fitted 600 of 2,500" in res.notes and "16 principal components" in res.notes
    assert "IVF" in res.notes and "layout: umap-learn" in res.notes
    emb = res.embedding
    cent = np.stack([emb[lab == c].mean(0) for c in range(C)])
    known = lab >= 0
    near = ((emb[known, None] - cent[None]) ** 2).sum(-1).argmin(1)
    assert (near == lab[known]).mean() > 0.95


def test_update_of_a_large_map_keeps_unmoved_placed_points(monkeypatch):
    """Only the placed rows whose features moved are placed again: the others keep their
    position bit for bit, and the update's placement work follows the moved rows."""
    from protoview.core.projection import _large

    x, lab, _ = _blobs(2500, d=48, seed=4)
    keep = np.zeros(len(x), bool)
    first, fitted = P.fit_large_map(x, lab, keep, max_points=400, place_dims=16, seed=1)
    placed = np.setdiff1d(np.arange(len(x)), fitted)
    x2 = x.copy()
    moved = placed[:30]
    x2[moved] = x[placed[-30:]]  # 30 placed rows take other rows' features
    calls = []
    real = _large._Placer.place
    monkeypatch.setattr(_large._Placer, "place",
                        lambda self, unit: calls.append(len(unit)) or real(self, unit))
    upd, fitted2 = P.fit_large_map(x2, lab, keep, max_points=400, place_dims=16, seed=1,
                                   previous=first.embedding, anchor_vectors=x,
                                   previous_knn=(first.knn_indices, first.knn_dists))
    np.testing.assert_array_equal(fitted2, fitted)
    assert sum(calls) == 30  # only the moved rows were placed again
    still = np.ones(len(x), bool)
    still[moved] = False
    np.testing.assert_array_equal(upd.embedding[still], first.embedding[still])
    assert upd.held[still].all() and not upd.held[moved].any()
    np.testing.assert_allclose(upd.embedding[moved], first.embedding[placed[-30:]], atol=1.0)
    assert "30 others placed" in upd.notes and "(exact faiss search" in upd.notes


def test_knn_graph_is_ivf_above_the_exact_limit(monkeypatch):
    from protoview.core.projection import _graph

    monkeypatch.setattr(_graph, "EXACT_KNN_POINTS", 500)
    x = P.unit_rows(_blobs(3000, seed=6)[0])
    idx, dists = P.knn_graph(x, 10)
    exact, _ = _graph._search(x, np.arange(len(x)), 10)
    np.testing.assert_array_equal(idx[:, 0], np.arange(len(x)))  # self first
    assert (np.diff(dists, axis=1) >= -1e-6).all() and (idx >= 0).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, exact, strict=True)])
    assert recall > 0.95, recall
    assert "faiss IVF" in _graph.knn_note(3000) and "exact" in _graph.knn_note(400)


def test_stacked_rows_read_as_the_stacked_array():
    """``StackedRows`` (a large map's joint vectors read in place) gives what indexing the
    concatenated array gives, for every kind of index fit_large_map uses."""
    rng = np.random.default_rng(2)
    head = rng.normal(size=(50, 6)).astype(np.float32)
    tail = rng.normal(size=(7, 6)).astype(np.float32)
    whole = np.concatenate([head, tail])
    rows = P.StackedRows(head, tail)
    assert rows.shape == whole.shape and len(rows) == 57 and rows.ndim == 2
    for key in (slice(0, 10), slice(45, 55), slice(50, 57), slice(20, 200), slice(56, 57)):
        np.testing.assert_array_equal(rows[key], whole[key])
    for key in (np.array([0, 49, 50, 56, 3, 52]), np.array([], np.int64), np.array([-1, -8]),
                rng.random(57) < 0.4):
        np.testing.assert_array_equal(rows[key], whole[key])
    np.testing.assert_array_equal(np.asarray(rows), whole)
    with pytest.raises(ValueError):
        P.StackedRows(head, tail[:, :5])


def test_large_map_from_stacked_rows_equals_the_stacked_array(blobs):
    """compute_geometry above the limit reads the features in place (StackedRows): the
    first map and an anchored update equal fit_large_map's on the concatenated array."""
    x, lab, means = blobs
    px, pc = _proxies(means)
    tail = np.concatenate([means, px])
    whole = np.concatenate([x, tail])
    strata = np.concatenate([lab, np.arange(C), pc])
    keep = np.arange(len(whole)) >= len(x)
    a, fa = P.fit_large_map(whole, strata, keep, max_points=500, seed=3)
    b, fb = P.fit_large_map(P.StackedRows(x, tail), strata, keep, max_points=500, seed=3)
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    x2 = x.copy()
    x2[:50] += 1.0
    whole2 = np.concatenate([x2, tail])
    kw = dict(max_points=500, seed=3, previous=a.embedding, previous_knn=(a.knn_indices, a.knn_dists))
    ua, _ = P.fit_large_map(whole2, strata, keep, anchor_vectors=whole, **kw)
    ub, _ = P.fit_large_map(P.StackedRows(x2, tail), strata, keep,
                            anchor_vectors=P.StackedRows(x, tail), **kw)
    np.testing.assert_array_equal(ua.embedding, ub.embedding)
    np.testing.assert_array_equal(ua.held, ub.held)


def test_session_map_anchors_in_place_leave_a_saved_map_alone(blobs, monkeypatch):
    """The session's anchors are updated in place (only moved rows read), equal to
    ``np.where(held, anchors, joint)``, and a saved map's anchors never change."""
    from types import SimpleNamespace

    from protoview.core.maps import Head, SessionMap

    monkeypatch.setenv("PROTOVIEW_MAX_MAP_POINTS", "500")
    x, lab, means = blobs
    px, pc = _proxies(means)
    head = Head(px, pc, C)
    m = SessionMap(seed=3)
    m.draw(SimpleNamespace(features=x, labels=lab, logits=None), head)
    saved = m.save()
    before = saved.anchors.copy()
    x2 = x.copy()
    x2[:60] += 1.0
    old_anchors = m.anchors
    state = m.draw(SimpleNamespace(features=x2, labels=lab, logits=None), head)
    expected = np.where(state.map_held[:, None], old_anchors, state.joint_vectors())
    np.testing.assert_array_equal(m.anchors, expected)
    np.testing.assert_array_equal(saved.anchors, before)  # copied before writing
    assert not state.map_held[:60].all()
    again = m.anchors
    x3 = x2.copy()
    x3[100:130] -= 1.0
    state = m.draw(SimpleNamespace(features=x3, labels=lab, logits=None), head)
    assert m.anchors is again  # owned now: written in place
    np.testing.assert_array_equal(saved.anchors, before)


def test_timeline_anchors_in_place_equal_the_held_rule(blobs, monkeypatch):
    """The timeline's aligned maps write only the moved rows' anchors, in place: equal to
    ``np.where(held, anchors, joint)`` of before."""
    from protoview.core.timeline import AlignedMaps

    monkeypatch.setenv("PROTOVIEW_MAX_MAP_POINTS", "500")
    x, lab, means = blobs
    px, pc = _proxies(means)
    maps = AlignedMaps(seed=3)
    maps.next(x, lab, proxies=px, proxy_classes=pc, num_classes=C)
    old = maps.anchors.copy()
    x2 = x.copy()
    x2[:80] += 1.0
    state = maps.next(x2, lab, proxies=px, proxy_classes=pc, num_classes=C)
    np.testing.assert_array_equal(
        maps.anchors, np.where(state.map_held[:, None], old, state.joint_vectors()))
    assert not state.map_held[:80].all() and state.map_held[200:].any()
