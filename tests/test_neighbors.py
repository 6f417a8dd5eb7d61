"""Nearest neighbours in feature space (for the window's neighbour list)."""

from __future__ import annotations

import numpy as np
import pytest

from protoview.core.neighbors import feature_neighbors, map_ranks
from protoview.errors import ParameterError


def _brute(x, i, k, metric):
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - u @ u[i]
    else:
        d = np.linalg.norm(x - x[i], axis=1)
    d[i] = np.inf
    order = np.lexsort((np.arange(len(x)), d))
    return order[:k], d[order[:k]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_brute_force(metric):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 32)).astype(np.float32)
    for i in (0, 17, 499):
        nb = feature_neighbors(x, i, k=12, metric=metric)
        idx, d = _brute(x.astype(np.float64), i, 12, metric)
        np.testing.assert_array_equal(nb.indices, idx)
        np.testing.assert_allclose(nb.distances, d, rtol=1e-5, atol=1e-6)
        assert i not in nb.indices and np.all(np.diff(nb.distances) >= 0)


def test_feature_space_is_not_the_map():
    """Two far-apart blobs in feature space drawn side by side on a 'map': the
    neighbours come from the features, and their map ranks show the distortion."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(50, 8)) + 10, rng.normal(size=(50, 8)) - 10])
    emb = rng.normal(size=(100, 2))  # a map that mixes both blobs
    nb = feature_neighbors(x, 3, k=5, metric="euclidean")
    assert (nb.indices < 50).all()
    ranks = map_ranks(emb, 3, nb.indices)
    d = np.linalg.norm(emb - emb[3], axis=1)
    d[3] = -1
    for o, r in zip(nb.indices, ranks, strict=True):
        assert r == (d < d[o]).sum()  # rows strictly nearer, minus itself, plus one
    assert map_ranks(emb, 3, np.array([3 + 1]))[0] >= 1


def test_bad_and_tiny_inputs():
    x = np.eye(3, dtype=np.float32)
    assert feature_neighbors(x, 0, k=10).indices.tolist() == [1, 2]  # k > N - 1
    one = feature_neighbors(x[:1], 0, k=3)
    assert one.indices.size == 0
    with_nan = np.array([[1, 0], [np.nan, 1], [0.9, 0.1]], np.float32)
    assert feature_neighbors(with_nan, 0, k=5).indices.tolist() == [2]
    with pytest.raises(ParameterError, match="#3 does not exist"):
        feature_neighbors(x, 3)
    with pytest.raises(ParameterError, match="NaN"):
        feature_neighbors(with_nan, 1)
    with pytest.raises(ParameterError, match="without features"):
        feature_neighbors(np.zeros((5, 0)), 0)
    with pytest.raises(ParameterError, match="metric"):
        feature_neighbors(x, 0, metric="manhattan")
    with pytest.raises(ParameterError, match="k"):
        feature_neighbors(x, 0, k=0)
    emb = np.array([[0, 0], [1, 0], [np.nan, 0]], np.float32)
    assert map_ranks(emb, 0, np.array([1, 2])).tolist() == [1, 3]
    with pytest.raises(ParameterError):
        map_ranks(emb, 0, np.array([5]))
