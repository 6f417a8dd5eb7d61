"""Centered kernel alignment (CKA) between two representations of the same samples.

Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network Representations Revisited"
(ICML 2019). The formulas are the authors' (google-research ``representation_similarity/
Demo.ipynb``, commit 10bf941, oracle ``tests/oracles/cka_reference.py``), the same numpy
operations in float64:

- :func:`linear_cka`: ``feature_space_linear_cka`` (``||Y^T X||_F^2 / (||X^T X||_F
  ||Y^T Y||_F)`` of the column-centred features), optionally ``debiased`` (the unbiased
  HSIC estimator of Song et al. 2007);
- :func:`rbf_cka`: ``cka(gram_rbf(x, threshold), gram_rbf(y, threshold))``, the bandwidth
  ``threshold`` times the median pairwise distance. It needs ``N x N`` matrices: above
  ``max_samples`` samples it is computed on a random subset (the same rows on both sides,
  drawn with ``seed``), and says so.

CKA is a similarity in ``[0, 1]`` (1: the same up to rotation and scale); both sides must be
the same samples in the same order (:func:`check_same_samples`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protoview.core.geometry import as_matrix
from protoview.errors import ParameterError

#: Samples above which :func:`rbf_cka` works on a random subset (its Gram matrices are N x N).
RBF_MAX_SAMPLES = 3000


def check_same_samples(n_a: int, n_b: int, identity_a: str | None = None,
                       identity_b: str | None = None, where: str = "versus") -> None:
    """Refuse (one :class:`ParameterError` line naming ``where``) two sides that are not the
    same samples: different counts, or different dataset identities when both are known."""
    if n_a != n_b:
        raise ParameterError(where, f"has {n_b} samples but the first side has {n_a}: CKA "
                                    "compares two representations of the same samples")
    if identity_a and identity_b and identity_a != identity_b:
        raise ParameterError(where, f"is not the same data as the first side ({identity_b!r} "
                                    f"vs {identity_a!r}): CKA compares two representations "
                                    "of the same samples in the same order")


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = as_matrix(a, "a", dtype=np.float64)
    y = as_matrix(b, "b", dtype=np.float64)
    check_same_samples(x.shape[0], y.shape[0], where="b")
    if x.shape[0] < 2:
        raise ParameterError("a", "CKA needs at least 2 samples")
    return x, y


def _debiased_dot(xty, rows_x, rows_y, norm_x, norm_y, n):  # noqa: ANN001, ANN202
    """The authors' ``_debiased_dot_product_similarity_helper``."""
    return xty - n / (n - 2.0) * rows_x.dot(rows_y) + norm_x * norm_y / ((n - 1) * (n - 2))


def linear_cka(a: Any, b: Any, *, debiased: bool = False) -> float:
    """Linear CKA of ``a (N, D1)`` and ``b (N, D2)``, row ``i`` the same sample in both.

    ``debiased`` needs ``N >= 4``. Returns a float (NaN when a side is constant).
    """
    x, y = _pair(a, b)
    if debiased and x.shape[0] < 4:
        raise ParameterError("debiased", f"the debiased estimator needs at least 4 samples, "
                                         f"got {x.shape[0]}")
    x = x - np.mean(x, 0, keepdims=True)
    y = y - np.mean(y, 0, keepdims=True)
    dot = np.linalg.norm(x.T.dot(y)) ** 2
    norm_x = np.linalg.norm(x.T.dot(x))
    norm_y = np.linalg.norm(y.T.dot(y))
    if debiased:
        n = x.shape[0]
        rows_x = np.einsum("ij,ij->i", x, x)
        rows_y = np.einsum("ij,ij->i", y, y)
        sq_x, sq_y = np.sum(rows_x), np.sum(rows_y)
        dot = _debiased_dot(dot, rows_x, rows_y, sq_x, sq_y, n)
        norm_x = np.sqrt(_debiased_dot(norm_x**2, rows_x, rows_x, sq_x, sq_x, n))
        norm_y = np.sqrt(_debiased_dot(norm_y**2, rows_y, rows_y, sq_y, sq_y, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(dot / (norm_x * norm_y))


def _gram_rbf(x: np.ndarray, threshold: float) -> np.ndarray:
    dot_products = x.dot(x.T)
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    sq_median_distance = np.median(sq_distances)
    return np.exp(-sq_distances / (2 * threshold**2 * sq_median_distance))


def _center_gram(gram: np.ndarray, unbiased: bool) -> np.ndarray:
    gram = gram.copy()
    if unbiased:
        n = gram.shape[0]
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def rbf_subset(n: int, max_samples: int | None, seed: int = 0) -> np.ndarray | None:
    """The rows :func:`rbf_cka` uses: None (all) when ``n <= max_samples``, else a sorted
    random subset of ``max_samples`` rows drawn with ``seed``."""
    if max_samples is None or n <= max_samples:
        return None
    if int(max_samples) < 4:
        raise ParameterError("max_samples", f"must be at least 4, got {max_samples}")
    return np.sort(np.random.default_rng(seed).choice(n, int(max_samples), replace=False))


def rbf_cka(a: Any, b: Any, *, threshold: float = 1.0, debiased: bool = False,
            max_samples: int | None = RBF_MAX_SAMPLES, seed: int = 0) -> float:
    """RBF-kernel CKA of ``a (N, D1)`` and ``b (N, D2)`` (same samples, same order).

    threshold: the bandwidth as a fraction of the median distance (the paper's heuristic;
    its demo uses 0.5, its default is 1.0); max_samples: above it, the subset
    :func:`rbf_subset` (None: all, N x N matrices in memory).
    """
    x, y = _pair(a, b)
    if not float(threshold) > 0:
        raise ParameterError("threshold", f"must be > 0, got {threshold}")
    rows = rbf_subset(x.shape[0], max_samples, seed)
    if rows is not None:
        x, y = x[rows], y[rows]
    if debiased and x.shape[0] < 4:
        raise ParameterError("debiased", f"the debiased estimator needs at least 4 samples, "
                                         f"got {x.shape[0]}")
    gram_x = _center_gram(_gram_rbf(x, threshold), debiased)
    gram_y = _center_gram(_gram_rbf(y, threshold), debiased)
    scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(scaled_hsic / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y)))
