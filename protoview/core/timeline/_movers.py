"""Movers: the samples whose feature-space neighbourhood changed most between two models.

A sample's neighbourhood is its ``k`` nearest other samples by cosine in feature space
(:func:`knn_lists`); how much it changed between two checkpoints is the Jaccard distance
of the two lists, ``1 - |A ∩ B| / |A ∪ B|`` (0: the same neighbours, 1: none in common;
a distance, not a similarity). :func:`rank_movers` orders the samples by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protoview.errors import ParameterError

#: Neighbours per sample for the movers (the k of the k-NN lists).
DEFAULT_K = 10


def knn_lists(features: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """(N, k) int64: the ``k`` nearest other samples of each sample by cosine (exact,
    faiss), nearest first; ``k`` is cut to N - 1.

    features: (N, D) float, N >= 2, finite (ParameterError otherwise)."""
    from protoview.core.projection import knn_graph, unit_rows

    x = unit_rows(features)
    if x.shape[0] < 2:
        raise ParameterError("features", f"need at least 2 samples for neighbours, got {x.shape[0]}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError("--k", f"must be a whole number >= 1, got {k!r}")
    k = int(min(k, x.shape[0] - 1))
    idx, _ = knn_graph(x, k + 1)
    return np.ascontiguousarray(idx[:, 1:])  # self first (duplicates too): dropped


def knn_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) float64 Jaccard distance between the neighbour lists ``a`` and ``b`` (N, k)
    int, row by row: ``1 - |a_i ∩ b_i| / |a_i ∪ b_i|``, in [0, 1]."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise ParameterError("neighbours", f"need two (N, k) lists of one shape, got "
                                           f"{a.shape} and {b.shape}")
    if a.shape[1] == 0:
        return np.zeros(a.shape[0], np.float64)
    common = np.zeros(a.shape[0], np.int64)
    for j in range(a.shape[1]):  # k passes of (N, k): no (N, k, k) array at large N
        common += (b == a[:, j:j + 1]).any(axis=1)
    union = 2 * a.shape[1] - common
    return 1.0 - common / union


@dataclass(frozen=True)
class Movers:
    """The samples ranked by how much their neighbourhood changed from step ``a`` to step
    ``b``: ``indices`` (top,) int64, most changed first (ties: lower index first);
    ``distance`` (N,) float64, every sample's Jaccard distance; ``k`` the list length."""

    a: int
    b: int
    indices: np.ndarray
    distance: np.ndarray
    k: int

    @property
    def scores(self) -> np.ndarray:
        """(top,) the Jaccard distance of each ranked sample."""
        return self.distance[self.indices]


def rank_movers(distance: np.ndarray, top: int | None = None) -> np.ndarray:
    """Indices of ``distance`` (N,) from the largest down (a stable order: ties by
    index), the first ``top`` (None: all)."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer))
                            or top < 1):
        raise ParameterError("--top", f"must be a whole number >= 1, got {top!r}")
    order = np.argsort(-np.asarray(distance, np.float64), kind="stable")
    return order if top is None else order[:top]


def movers_between(knn_a: np.ndarray, knn_b: np.ndarray, a: int, b: int,
                   top: int | None = None) -> Movers:
    """:class:`Movers` of two checkpoints' neighbour lists (see :func:`knn_lists`)."""
    distance = knn_jaccard(knn_a, knn_b)
    return Movers(int(a), int(b), rank_movers(distance, top), distance, int(np.shape(knn_a)[1]))
