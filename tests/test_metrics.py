"""Metrics against the seed's accuracy snippet, sklearn, scipy and brute-force searches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from protoview.core.geometry import class_centers
from protoview.core.metrics import (
    accuracy,
    as_predictions,
    clustering_scores,
    confusion_matrix,
    nearest_center_accuracy,
    nearest_proxy_accuracy,
    per_class_accuracy,
    softmax_entropy,
)
from protoview.errors import ParameterError


def seed_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The seed's snippet (004_*): ``torch.max`` then ``eq`` and a count."""
    _, preds = torch.max(logits, dim=1)
    correct = preds.eq(targets.expand_as(preds)).cpu().sum()
    return int(correct) / len(targets)


@pytest.mark.parametrize("seed", range(4))
def test_accuracy_matches_seed_snippet(seed):
    gen = torch.Generator().manual_seed(seed)
    n, c = (
        int(torch.randint(1, 300, (1,), generator=gen)),
        int(torch.randint(1, 12, (1,), generator=gen)),
    )
    logits = torch.randn(n, c, generator=gen)
    labels = torch.randint(0, c, (n,), generator=gen)
    assert accuracy(logits, labels) == pytest.approx(seed_accuracy(logits, labels))
    assert accuracy(logits.numpy(), labels.numpy()) == pytest.approx(seed_accuracy(logits, labels))
    preds = logits.argmax(1)
    assert accuracy(preds, labels) == pytest.approx(seed_accuracy(logits, labels))


def test_accuracy_ignores_unknown_labels_and_is_nan_without_labels():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((50, 4)), rng.integers(0, 4, 50)
    masked = labels.copy()
    masked[::3] = -1
    keep = masked >= 0
    expected = seed_accuracy(torch.from_numpy(logits[keep]), torch.from_numpy(labels[keep]))
    assert accuracy(logits, masked) == pytest.approx(expected)
    assert np.isnan(accuracy(logits, np.full(50, -1)))


def test_accuracy_bad_input():
    with pytest.raises(ParameterError, match="empty"):
        accuracy(np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    with pytest.raises(ParameterError, match="empty"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ParameterError, match="expected 2") as info:
        accuracy(np.zeros(2, dtype=int), np.zeros(3, dtype=int))
    assert info.value.where == "labels"
    logits = np.zeros((3, 2))
    logits[1, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN in 1 row"):
        accuracy(logits, np.zeros(3, dtype=int))
    with pytest.raises(ParameterError, match="2-D|1-D"):
        as_predictions(np.zeros((2, 2, 2)))


def test_per_class_accuracy_brute_force_and_empty_class():
    rng = np.random.default_rng(1)
    preds, labels = rng.integers(0, 4, 120), rng.integers(0, 3, 120)
    labels[:10] = -1
    out = per_class_accuracy(preds, labels, 5)
    assert out.shape == (5,) and out.dtype == np.float32
    for c in range(3):
        assert out[c] == pytest.approx(np.mean(preds[labels == c] == c))
    assert np.isnan(out[3:]).all()
    with pytest.raises(ParameterError, match="num_classes is 2"):
        per_class_accuracy(preds, labels, 2)
    with pytest.raises(ParameterError, match="at least 1"):
        per_class_accuracy(preds, labels, 0)


@pytest.mark.parametrize("seed", range(3))
def test_confusion_matrix_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(1, 8))
    preds, labels = rng.integers(0, c, 200), rng.integers(0, c, 200)
    ours = confusion_matrix(preds, labels, c)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, sk_confusion_matrix(labels, preds, labels=np.arange(c)))
    labels[:30] = -1
    preds[30:40] = -1
    keep = (labels >= 0) & (preds >= 0)
    np.testing.assert_array_equal(
        confusion_matrix(preds, labels, c),
        sk_confusion_matrix(labels[keep], preds[keep], labels=np.arange(c)),
    )


def test_confusion_matrix_bad_input():
    with pytest.raises(ParameterError, match="holds class 3") as info:
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    assert info.value.where == "preds"
    with pytest.raises(ParameterError, match="empty"):
        confusion_matrix(np.zeros(0, dtype=int), np.zeros(0, dtype=int), 2)


def test_nearest_center_accuracy_by_hand_with_empty_class():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((90, 5)).astype(np.float32), rng.integers(0, 3, 90)
    centers = class_centers(x, y, num_classes=4)  # class 3 is empty (NaN row)
    unit_c = centers.vectors[:3] / np.linalg.norm(centers.vectors[:3], axis=1, keepdims=True)
    expected = np.mean((x @ unit_c.T).argmax(1) == y)
    assert nearest_center_accuracy(x, y, centers) == pytest.approx(expected)
    assert nearest_center_accuracy(x, y, centers.vectors) == pytest.approx(expected)
    with pytest.raises(ParameterError, match="dimension"):
        nearest_center_accuracy(x, y, np.ones((3, 4)))


def test_nearest_proxy_accuracy_with_several_proxies_per_class():
    rng = np.random.default_rng(3)
    classes, per_class = 4, 3
    proxies = rng.standard_normal((classes * per_class, 6))
    proxy_classes = np.repeat(np.arange(classes), per_class)
    x, y = rng.standard_normal((70, 6)), rng.integers(0, classes, 70)
    sims = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        proxies / np.linalg.norm(proxies, axis=1, keepdims=True)
    ).T
    expected = np.mean(proxy_classes[sims.argmax(1)] == y)
    assert nearest_proxy_accuracy(x, y, proxies, proxy_classes) == pytest.approx(expected)
    with pytest.raises(ParameterError, match="expected 12"):
        nearest_proxy_accuracy(x, y, proxies, proxy_classes[:-1])


def brute_force_matched_accuracy(assign: np.ndarray, labels: np.ndarray) -> float:
    clusters, classes = np.unique(assign), np.unique(labels)
    best = 0
    if len(clusters) <= len(classes):
        for perm in itertools.permutations(classes, len(clusters)):
            mapping = dict(zip(clusters, perm, strict=True))
            best = max(best, sum(mapping[a] == b for a, b in zip(assign, labels, strict=True)))
    else:
        for perm in itertools.permutations(clusters, len(classes)):
            mapping = dict(zip(perm, classes, strict=True))
            best = max(
                best, sum(mapping.get(a, -99) == b for a, b in zip(assign, labels, strict=True))
            )
    return best / len(labels)


@pytest.mark.parametrize("seed", range(6))
def test_clustering_scores_match_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_clusters, n_classes = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    labels = rng.integers(0, n_classes, 40)
    assign = np.where(rng.random(40) < 0.6, labels % n_clusters, rng.integers(0, n_clusters, 40))
    scores = clustering_scores(assign, labels)
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(labels, assign))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(labels, assign))
    assert scores["hungarian_accuracy"] == pytest.approx(
        brute_force_matched_accuracy(assign, labels)
    )


def test_clustering_scores_relabelled_perfect_clustering_and_unknown_labels():
    labels = np.array([0, 0, 1, 1, 2, 2, -1])
    assign = np.array([5, 5, 3, 3, 9, 9, 0])
    assert clustering_scores(assign, labels) == pytest.approx(
        {"nmi": 1.0, "ari": 1.0, "hungarian_accuracy": 1.0}
    )
    unknown = clustering_scores(assign, np.full(7, -1))
    assert all(np.isnan(v) for v in unknown.values())


def test_clustering_scores_bad_input():
    with pytest.raises(ParameterError, match=">= 0"):
        clustering_scores(np.array([0, -1]), np.array([0, 1]))
    with pytest.raises(ParameterError, match="empty"):
        clustering_scores(np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    with pytest.raises(ParameterError, match="expected 2"):
        clustering_scores(np.array([0, 1]), np.array([0]))


def test_softmax_entropy_matches_formula_and_keeps_gradients():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((30, 7)).astype(np.float32) * 3
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -(p * np.log(p)).sum(1)
    out = softmax_entropy(logits)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (30,)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    t = torch.from_numpy(logits).requires_grad_()
    ent = softmax_entropy(t)
    ent.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()
    assert softmax_entropy(torch.zeros(1, 5)).item() == pytest.approx(np.log(5))
    assert softmax_entropy(torch.zeros(2, 1)).tolist() == [0.0, 0.0]


def test_softmax_entropy_bad_input():
    with pytest.raises(ParameterError, match="empty"):
        softmax_entropy(np.zeros((0, 3)))
    with pytest.raises(ParameterError, match="2-D"):
        softmax_entropy(torch.zeros(3))
    with pytest.raises(ParameterError, match="NaN in 1 row"):
        softmax_entropy(torch.tensor([[0.0, float("nan")]]))
