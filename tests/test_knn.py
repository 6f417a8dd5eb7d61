"""Weighted k-NN accuracy (core/knn.py) against DINO's knn_classifier
(tests/oracles/dino_knn.py, facebookresearch/dino eval_knn.py at 7c446df): the same top-1 on
a train / test split, leave-one-out against the oracle run once per held-out sample; the k-NN
consistency of two feature spaces against plain NumPy; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoview.core.knn import knn_accuracy, knn_consistency, weighted_knn
from protoview.errors import ParameterError
from tests.oracles.dino_knn import knn_classifier


def _blobs(seed: int, n: int = 400, d: int = 8, c: int = 5, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = (rng.normal(size=(c, d))[y] * spread + rng.normal(size=(n, d))).astype(np.float32)
    return x, y


def _unit(x):
    return torch.nn.functional.normalize(torch.from_numpy(x), dim=1, p=2)


@pytest.mark.parametrize(("seed", "k", "t"), [(0, 20, 0.07), (1, 5, 0.07), (2, 20, 0.5), (3, 1, 0.07)])
def test_top1_equals_dinos_knn_classifier(seed, k, t):
    x, y = _blobs(seed, n=600)
    train, test = slice(0, 300), slice(300, 600)  # 300 test images: DINO's 100 chunks of 3
    top1, _ = knn_classifier(_unit(x[train]), torch.from_numpy(y[train]), _unit(x[test]),
                             torch.from_numpy(y[test]), k, t, num_classes=5)
    preds = weighted_knn(x[train], y[train], x[test], k=k, temperature=t, num_classes=5)
    assert 100.0 * np.sum(preds == y[test]) / 300 == top1


def test_leave_one_out_equals_the_oracle_without_the_sample():
    x, y = _blobs(4, n=60)
    result = knn_accuracy(x, y, k=10)
    hits = 0.0
    for i in range(60):
        rest = np.arange(60) != i
        queries = np.repeat(x[i : i + 1], 100, axis=0)  # DINO's chunking wants >= 100 queries
        top1, _ = knn_classifier(_unit(x[rest]), torch.from_numpy(y[rest]), _unit(queries),
                                 torch.from_numpy(np.repeat(y[i], 100)), 10, 0.07, num_classes=5)
        assert top1 in (0.0, 100.0)
        assert (result.predictions[i] == y[i]) == (top1 == 100.0)
        hits += top1 / 100
    assert result.accuracy == hits / 60 and result.k == 10 and not result.sampled


def test_unknown_labels_neither_vote_nor_ask_and_a_query_sample_is_seeded():
    x, y = _blobs(5, n=300)
    y = y.copy()
    y[::4] = -1
    full = knn_accuracy(x, y)
    known = y >= 0
    assert full.queries.tolist() == np.flatnonzero(known).tolist()
    alone = knn_accuracy(x[known], y[known])
    assert full.accuracy == alone.accuracy
    sampled = knn_accuracy(x, y, max_queries=50, seed=3)
    assert sampled.sampled and sampled.queries.size == 50 and np.all(y[sampled.queries] >= 0)
    assert sampled.queries.tolist() == knn_accuracy(x, y, max_queries=50, seed=3).queries.tolist()
    lookup = dict(zip(full.queries.tolist(), full.predictions.tolist(), strict=True))
    assert sampled.predictions.tolist() == [lookup[q] for q in sampled.queries.tolist()]


def test_no_labels_gives_nan_and_runs_nothing():
    x, _ = _blobs(6, n=30)
    result = knn_accuracy(x, np.full(30, -1))
    assert np.isnan(result.accuracy) and result.predictions.size == 0


def test_k_larger_than_the_bank_uses_every_other_sample():
    x, y = _blobs(7, n=8)
    assert knn_accuracy(x, y, k=20).k == 7


def _numpy_neighbours(x, k):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def test_knn_consistency_equals_plain_numpy():
    a, _ = _blobs(8, n=120)
    b = a + np.random.default_rng(0).normal(size=a.shape).astype(np.float32)
    mean, share, rows = knn_consistency(a, b, k=7)
    na, nb = _numpy_neighbours(a, 7), _numpy_neighbours(b, 7)
    expected = np.array([len(set(na[i]) & set(nb[i])) / 7 for i in range(120)])
    np.testing.assert_array_equal(share, expected)
    assert mean == expected.mean() and rows.tolist() == list(range(120))
    assert knn_consistency(a, 5 * a, k=7)[0] == 1.0
    sub = knn_consistency(a, b, k=7, max_queries=30, seed=1)
    np.testing.assert_array_equal(sub[1], expected[sub[2]])


def test_bad_inputs():
    x, y = _blobs(9, n=50)
    with pytest.raises(ParameterError, match="^k: must be at least 1"):
        knn_accuracy(x, y, k=0)
    with pytest.raises(ParameterError, match="temperature"):
        knn_accuracy(x, y, temperature=0)
    with pytest.raises(ParameterError, match="bank_labels: must all be known"):
        weighted_knn(x, np.full(50, -1), x)
    with pytest.raises(ParameterError, match="dimension"):
        weighted_knn(x, y, x[:, :3])
    with pytest.raises(ParameterError, match="not the same samples"):
        knn_consistency(x, x[:-1])
    with pytest.raises(ParameterError, match="max_queries"):
        knn_accuracy(x, y, max_queries=0)
    bad = x.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ParameterError, match="NaN in 1 row"):
        knn_accuracy(bad, y)
