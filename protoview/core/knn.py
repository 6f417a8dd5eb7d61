"""k-nearest-neighbour numbers of a feature space: weighted k-NN accuracy and the agreement
of two feature spaces' neighbourhoods.

:func:`weighted_knn` is DINO's ``knn_classifier`` (facebookresearch/dino ``eval_knn.py``,
commit 7c446df, oracle ``tests/oracles/dino_knn.py``), the weighted vote of Wu et al.'s
instance-discrimination evaluation: features L2-normalised, the ``k`` most cosine-similar
bank samples vote for their class with weight ``exp(cos / T)``, the class of the largest sum
wins (``k = 20``, ``T = 0.07``: DINO's defaults). The same torch operations, so the same
predictions. One dataset serves as bank and queries (:func:`knn_accuracy`): each query's own
row is left out of its neighbours (leave-one-out), where DINO has a separate train set.

:func:`knn_consistency` needs no labels: the share of each sample's ``k`` nearest neighbours
(cosine, itself left out) in one feature space that are also among its ``k`` nearest in the
other (the "mutual k-NN" alignment of Huh et al., ICML 2024), averaged over the samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protoview.core.geometry import as_labels, as_matrix
from protoview.errors import ParameterError

#: DINO's k-NN evaluation: neighbours and temperature.
KNN_K = 20
KNN_TEMPERATURE = 0.07
#: Query rows per block (a block x bank similarity matrix at a time).
_BLOCK_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class KnnResult:
    """accuracy: share of the queries' labels predicted (NaN when no query has a label);
    predictions: ``(Q,)`` int64; queries: ``(Q,)`` int64 their rows; k: neighbours used (at
    most the bank's size less one); temperature: T; sampled: the queries are a sample."""

    accuracy: float
    predictions: np.ndarray
    queries: np.ndarray
    k: int
    temperature: float
    sampled: bool


def _unit(values: Any, where: str, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(as_matrix(values, where)).to(device)
    return torch.nn.functional.normalize(x, dim=1, p=2)


def _check_k_t(k: int, temperature: float) -> None:
    if int(k) < 1:
        raise ParameterError("k", f"must be at least 1, got {k}")
    if not float(temperature) > 0:
        raise ParameterError("temperature", f"must be > 0, got {temperature}")


@torch.no_grad()
def weighted_knn(
    bank: Any, bank_labels: Any, queries: Any, *, k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE, num_classes: int | None = None,
    exclude: Any = None, device: str | torch.device | None = None,
) -> np.ndarray:
    """DINO's weighted k-NN prediction of each query.

    bank: ``(M, D)`` float; bank_labels: ``(M,)`` int, all known (``>= 0``); queries:
    ``(Q, D)`` float; num_classes: ``C`` (default ``max(bank_labels) + 1``); exclude:
    ``(Q,)`` int row of ``bank`` that query ``q`` may not use (its own; -1 none), or None;
    device: where to compute (default the CPU). ``k`` is at most ``M`` (``M - 1`` with
    ``exclude``). Returns ``(Q,)`` int64 predicted classes.
    """
    _check_k_t(k, temperature)
    dev = torch.device(device or "cpu")
    train = _unit(bank, "bank", dev)
    test = _unit(queries, "queries", dev)
    if test.shape[1] != train.shape[1]:
        raise ParameterError("queries", f"have dimension {test.shape[1]} but the bank has "
                                        f"{train.shape[1]}")
    labels = as_labels(bank_labels, "bank_labels", train.shape[0])
    if labels.min() < 0:
        raise ParameterError("bank_labels", "must all be known (>= 0)")
    classes = int(num_classes or labels.max() + 1)
    train_labels = torch.from_numpy(labels).to(dev)
    skip = None if exclude is None else torch.from_numpy(
        as_labels(exclude, "exclude", test.shape[0])).to(dev)
    k = min(int(k), train.shape[0] - (skip is not None))
    if k < 1:
        raise ParameterError("bank", "needs at least 2 labelled samples for a k-NN vote")
    out = torch.empty(test.shape[0], dtype=torch.int64, device=dev)
    step = max(1, _BLOCK_ELEMENTS // train.shape[0])
    one_hot = torch.zeros(k, classes, device=dev)
    for start in range(0, test.shape[0], step):
        # DINO's knn_classifier, one block of test images (its "chunk")
        features = test[start : start + step]
        batch_size = features.shape[0]
        similarity = torch.mm(features, train.t())
        if skip is not None:
            own = skip[start : start + step]
            rows = torch.nonzero(own >= 0).reshape(-1)
            similarity[rows, own[rows]] = -float("inf")
        distances, indices = similarity.topk(k, largest=True, sorted=True)
        candidates = train_labels.view(1, -1).expand(batch_size, -1)
        retrieved_neighbors = torch.gather(candidates, 1, indices)
        one_hot.resize_(batch_size * k, classes).zero_()
        one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
        distances_transform = distances.clone().div_(temperature).exp_()
        probs = torch.sum(torch.mul(one_hot.view(batch_size, -1, classes),
                                    distances_transform.view(batch_size, -1, 1)), 1)
        _, predictions = probs.sort(1, True)
        out[start : start + step] = predictions[:, 0]
    return out.cpu().numpy()


def _query_rows(n: int, candidates: np.ndarray, max_queries: int | None,
                seed: int) -> tuple[np.ndarray, bool]:
    if max_queries is None or max_queries >= candidates.size:
        return candidates, False
    if int(max_queries) < 1:
        raise ParameterError("max_queries", f"must be at least 1, got {max_queries}")
    chosen = np.random.default_rng(seed).choice(candidates, int(max_queries), replace=False)
    return np.sort(chosen), True


def knn_accuracy(
    features: Any, labels: Any, *, k: int = KNN_K, temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None, max_queries: int | None = None, seed: int = 0,
    device: str | torch.device | None = None,
) -> KnnResult:
    """Leave-one-out weighted k-NN accuracy (:func:`weighted_knn`) of a labelled feature set.

    features: ``(N, D)`` float; labels: ``(N,)`` int, ``-1`` unknown (neither bank nor
    query); max_queries: at most this many labelled samples as queries, a sample drawn with
    ``seed`` (the bank stays whole); None: all. Without labels: accuracy NaN, nothing run.
    """
    x = as_matrix(features, "features")
    y = as_labels(labels, "labels", x.shape[0])
    _check_k_t(k, temperature)
    known = np.flatnonzero(y >= 0)
    if known.size == 0:
        empty = np.zeros(0, np.int64)
        return KnnResult(float("nan"), empty, empty, int(k), float(temperature), False)
    queries, sampled = _query_rows(x.shape[0], known, max_queries, seed)
    slot = np.full(x.shape[0], -1, np.int64)
    slot[known] = np.arange(known.size)
    preds = weighted_knn(x[known], y[known], x[queries], k=k, temperature=temperature,
                         num_classes=num_classes or int(y.max()) + 1, exclude=slot[queries],
                         device=device)
    used = min(int(k), known.size - 1)
    acc = float(np.mean(preds == y[queries]))
    return KnnResult(acc, preds, queries, used, float(temperature), sampled)


@torch.no_grad()
def _neighbour_ids(x: torch.Tensor, rows: np.ndarray, k: int) -> torch.Tensor:
    """The ``k`` most cosine-similar rows of ``x`` (unit rows) to each of ``rows``, itself
    left out: ``(len(rows), k)`` int64."""
    out = torch.empty((rows.size, k), dtype=torch.int64, device=x.device)
    step = max(1, _BLOCK_ELEMENTS // x.shape[0])
    index = torch.from_numpy(rows).to(x.device)
    for start in range(0, rows.size, step):
        own = index[start : start + step]
        sims = x[own] @ x.t()
        sims[torch.arange(own.numel(), device=x.device), own] = -float("inf")
        out[start : start + step] = sims.topk(k, dim=1).indices
    return out


def knn_consistency(
    a: Any, b: Any, *, k: int = 10, max_queries: int | None = None, seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """How much two feature spaces of the same samples agree on each sample's neighbours.

    a: ``(N, D1)``, b: ``(N, D2)`` float, row ``i`` the same sample in both; k: neighbours
    (cosine, the sample itself left out; at most ``N - 1``); max_queries: at most this many
    samples (drawn with ``seed``), None: all. Returns the mean share, per query the share
    ``|N_a(i) & N_b(i)| / k`` ``(Q,)`` float64, and the query rows ``(Q,)`` int64.
    """
    dev = torch.device(device or "cpu")
    xa, xb = _unit(a, "a", dev), _unit(b, "b", dev)
    if xa.shape[0] != xb.shape[0]:
        raise ParameterError("b", f"has {xb.shape[0]} samples but a has {xa.shape[0]}: "
                                  "not the same samples")
    n = xa.shape[0]
    if int(k) < 1 or n < 2:
        raise ParameterError("k", f"must be at least 1 with at least 2 samples, got k={k}, "
                                  f"N={n}")
    k = min(int(k), n - 1)
    rows, _ = _query_rows(n, np.arange(n), max_queries, seed)
    na, nb = _neighbour_ids(xa, rows, k), _neighbour_ids(xb, rows, k)
    shared = (na[:, :, None] == nb[:, None, :]).any(dim=2).sum(dim=1).cpu().numpy()
    share = shared.astype(np.float64) / k
    return float(share.mean()), share, rows
