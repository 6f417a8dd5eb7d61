"""Joint UMAP maps: faiss k-NN graph, determinism, stability of updates, bad input."""

import numpy as np
import pytest

from protoview.core import projection as P
from protoview.errors import ParameterError


def _blobs(n=600, d=32, k=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    labels = rng.integers(0, k, n)
    return (centers[labels] + 0.4 * rng.normal(size=(n, d))).astype(np.float32), labels


def test_knn_graph_matches_brute_force():
    x, _ = _blobs(200)
    u = P.unit_rows(x)
    idx, dists = P.knn_graph(u, 10)
    full = np.linalg.norm(u[:, None] - u[None], axis=2)
    order = np.argsort(full, axis=1, kind="stable")[:, :10]
    assert (idx[:, 0] == np.arange(200)).all()
    np.testing.assert_allclose(dists, np.take_along_axis(full, order, 1), atol=1e-3)


def test_knn_graph_puts_self_first_with_duplicates():
    x = np.ones((5, 3), np.float32)
    idx, dists = P.knn_graph(P.unit_rows(x), 3)
    assert (idx[:, 0] == np.arange(5)).all()
    assert (dists[:, 0] == 0).all()


def test_fit_is_deterministic_and_separates_clusters():
    x, labels = _blobs()
    a = P.fit_map(x, seed=3, n_epochs=100).embedding
    b = P.fit_map(x, seed=3, n_epochs=100).embedding
    np.testing.assert_array_equal(a, b)
    from sklearn.metrics import silhouette_score

    assert silhouette_score(a, labels) > 0.5


def test_update_keeps_layout_when_features_barely_move():
    x, _ = _blobs()
    base = P.fit_map(x, seed=0, n_epochs=200).embedding
    rng = np.random.default_rng(1)
    moved = x.copy()
    moved[:30] += 0.05 * rng.normal(size=(30, x.shape[1]))
    upd = P.update_map(base, moved, seed=0).embedding
    fresh = P.fit_map(moved, seed=1, n_epochs=200).embedding
    unmoved = np.ones(len(x), bool)
    unmoved[:30] = False
    drift = P.layout_drift(base, upd, unmoved)
    assert drift < 0.06
    assert drift < 0.5 * P.layout_drift(base, fresh, unmoved)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((0, 4), np.float32), np.full((10, 4), np.nan, np.float32), np.ones(5, np.float32)],
)
def test_bad_input_is_refused(bad):
    with pytest.raises(ParameterError):
        P.fit_map(bad)


def test_too_few_points_and_bad_previous():
    with pytest.raises(ParameterError, match="at least 3"):
        P.fit_map(np.eye(2, 4, dtype=np.float32))
    x, _ = _blobs(50)
    with pytest.raises(ParameterError, match="previous"):
        P.update_map(np.zeros((49, 2)), x)


def test_numpy_fuzzy_graph_matches_umap_learn():
    """The numpy fuzzy simplicial set equals umap-learn's numba one (float32 rounding)."""
    from umap.umap_ import fuzzy_simplicial_set as umap_fss
    from umap.umap_ import smooth_knn_dist as umap_smooth

    from protoview.core import _fuzzy
    from protoview.core.projection import knn_graph

    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(400, 12)).astype(np.float32)
        x[:15] = x[0]  # exact duplicates: zero distances, rho from later neighbours
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        idx, dists = knn_graph(x, 15)
        sigma_ref, rho_ref = umap_smooth(dists.astype(np.float32), 15.0)
        sigma, rho = _fuzzy.smooth_knn_dist(dists, 15.0)
        np.testing.assert_allclose(rho, rho_ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-5, atol=1e-6)
        ref, _, _ = umap_fss(
            x, 15, np.random.RandomState(0), "euclidean", knn_indices=idx, knn_dists=dists
        )
        ours = _fuzzy.fuzzy_simplicial_set(idx, dists, x.shape[0])
        ref, ours = ref.tocsr(), ours.tocsr()
        assert ref.nnz == ours.nnz
        assert abs(ref - ours).max() < 1e-5


def test_update_holds_unchanged_points_and_moves_changed_ones():
    x, labels = _blobs()
    base = P.fit_map(x, seed=0, n_epochs=200).embedding
    # nothing changed: nothing moves (UMAP's optimiser alone would jitter every point)
    same = P.update_map(base, x, seed=0, anchor_vectors=x)
    assert P.layout_drift(base, same.embedding) == 0.0 and same.held.all()
    assert P.layout_drift(base, P.update_map(base, x, seed=0).embedding) > 0.005
    # one cluster's features jump onto another cluster: those points travel across the map
    moved = x.copy()
    a, b = labels == labels[0], labels == labels[-1]
    assert labels[0] != labels[-1] and b.sum() >= a.sum()
    moved[a] = x[b][: a.sum()]
    upd = P.update_map(base, moved, seed=0, anchor_vectors=x)
    assert not upd.held[a].any() and upd.held[~a].all()
    assert P.layout_drift(base, upd.embedding, ~a) == 0.0
    travel = np.linalg.norm(upd.embedding[a] - base[a], axis=1).mean()
    gap = np.linalg.norm(base[a].mean(0) - base[b].mean(0))
    assert travel > 0.3 * gap
    # ... and land in the cluster they now belong to, among its (held) points, as a full
    # refit would place them (the update optimises only the moved points: the fast path)
    arrived = np.linalg.norm(upd.embedding[a].mean(0) - base[b].mean(0))
    assert arrived < 0.5 * gap, (arrived, gap)

    def neighbour_is_b(emb: np.ndarray) -> float:
        others = np.flatnonzero(~a)
        d = np.linalg.norm(emb[a][:, None, :] - emb[others][None, :, :], axis=2)
        return float(b[others][d.argmin(1)].mean())

    refit = P.fit_map(moved, seed=0, n_epochs=200).embedding
    assert neighbour_is_b(upd.embedding) >= 0.9 * neighbour_is_b(refit) > 0.5
    with pytest.raises(ParameterError, match="anchor_vectors"):
        P.update_map(base, x, anchor_vectors=x[:-1])


def test_slow_drift_adds_up_against_the_anchor():
    """Many tiny moves, each below the hold threshold, still move the point once they
    add up, because the session compares with the anchor, not the previous step."""
    from protoview.core.state import compute_geometry

    x, labels = _blobs(300)
    state = compute_geometry(x, labels, seed=0)
    anchors = state.joint_vectors()
    target = x[labels == labels[-1]].mean(0)
    start = state.embedding[0].copy()
    cur = x.copy()
    for _ in range(80):
        cur[0] += (target - x[0]) / 80
        prev = np.concatenate([state.embedding, state.centers_embedding,
                               state.proxies_embedding, state.prototypes_embedding])
        state = compute_geometry(cur, labels, seed=0, previous_embedding=prev,
                                 anchor_vectors=anchors)
        joint = state.joint_vectors()
        anchors = np.where(state.map_held[:, None], anchors, joint)
    assert np.linalg.norm(state.embedding[0] - start) > 0.1 * np.ptp(state.embedding, axis=0).max()


@pytest.mark.parametrize("kind", ["fit", "update"])
def test_a_map_cancels_between_epochs_within_a_second(kind):
    """The layout's epochs check the cancel token: a request half-way through a long fit
    (or update) ends it within a second, with CancelledError; progress counts epochs."""
    import threading
    import time

    from protoview.errors import CancelledError

    x, _ = _blobs(4000, 32, 8)
    prev = P.fit_map(x[:4000], seed=0, n_epochs=20).embedding if kind == "update" else None
    seen = []
    stop = threading.Event()

    def progress(i, total):
        seen.append((i, total))
        if i == 5:
            stop.set()
            seen.append(time.perf_counter())

    with pytest.raises(CancelledError):
        if kind == "fit":
            P.fit_map(x, seed=0, n_epochs=100_000, progress=progress, cancel=stop)
        else:
            P.update_map(prev, x + 1.0, seed=0, n_epochs=100_000, anchor_vectors=x,
                         progress=progress, cancel=stop.is_set)
    latency = time.perf_counter() - seen[-1]
    assert latency < 1.0, latency
    assert [s for s in seen if isinstance(s, tuple)][:3] == [(0, 100_000), (1, 100_000), (2, 100_000)]
    # no hook is left behind: the next map runs to its end
    assert P.fit_map(x[:300], seed=0, n_epochs=10).embedding.shape == (300, 2)


def test_reused_graph_matches_a_fresh_search_after_a_partial_move():
    """The fast update searches again only the moved points; the graph it builds has
    (almost) the edges of a full search, and held points stay exactly in place."""
    x, labels = _blobs(1500, 32, 6)
    first = P.fit_map(x, seed=0, n_epochs=50)
    rng = np.random.default_rng(3)
    moved = rng.random(len(x)) < 0.1
    x2 = x.copy()
    x2[moved] = x[rng.integers(0, len(x), moved.sum())] + 0.05 * rng.normal(size=(moved.sum(), 32))
    fast = P.update_map(first.embedding, x2, seed=0, anchor_vectors=x,
                        previous_knn=(first.knn_indices, first.knn_dists))
    full_idx, full_d = P.knn_graph(P.unit_rows(x2), 15)
    assert (fast.knn_indices[:, 0] == np.arange(len(x))).all()
    assert np.all(np.diff(fast.knn_dists, axis=1) >= -1e-6)  # sorted, self first
    fast15 = fast.knn_indices[:, :15]  # the graph's lists; the rest are spares
    recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(fast15, full_idx)])
    print(f"recall of the reused graph: {recall:.4f}")
    assert recall > 0.95, recall
    # moved rows are exact
    np.testing.assert_array_equal(np.sort(fast15[moved], 1), np.sort(full_idx[moved], 1))
    assert fast.held is not None and fast.held[~moved].mean() > 0.95
    assert P.layout_drift(first.embedding, fast.embedding, fast.held) == 0.0
    # too many moved: the whole graph is rebuilt (exact)
    xn = x + 0.5 * rng.normal(size=x.shape).astype(np.float32)
    many = P.update_map(first.embedding, xn, seed=0,
                        anchor_vectors=x, previous_knn=(first.knn_indices, first.knn_dists))
    assert (~many.held).mean() > 0.3
    full2, _ = P.knn_graph(P.unit_rows(xn), 15)
    np.testing.assert_array_equal(np.sort(many.knn_indices[:, :15], 1), np.sort(full2, 1))


def test_new_rows_are_placed_and_the_others_held():
    """Points new to the map (k-means prototypes) are always optimised from their
    starting guess; every unchanged point keeps its exact position."""
    x, labels = _blobs()
    base = P.fit_map(x, seed=0, n_epochs=200).embedding
    new = np.zeros(len(x), bool)
    new[:5] = True
    guess = base.copy()
    guess[:5] = base.mean(axis=0)  # a poor start in the middle of the map
    upd = P.update_map(guess, x, seed=0, anchor_vectors=x, new_rows=new)
    assert not upd.held[new].any() and upd.held[~new].all()
    np.testing.assert_array_equal(upd.embedding[~new], base[~new])
    assert not np.allclose(upd.embedding[new], guess[new])
    with pytest.raises(ParameterError, match="new_rows"):
        P.update_map(base, x, anchor_vectors=x, new_rows=new[:-1])
