"""UMAP's fuzzy simplicial set from a k-NN graph, in numpy.

umap-learn builds this graph with numba functions (``smooth_knn_dist``,
``compute_membership_strengths``) that are not cached on disk and cost ~12 s of
compilation in every new process: the whole delay of a first map. The same arithmetic,
vectorised over rows in numpy, takes milliseconds and needs no compiler. It follows
umap-learn 0.5's code step by step (float32 search state, tolerance, the
``MIN_K_DIST_SCALE`` floor); ``tests/test_projection.py`` compares it with umap-learn's
own functions on random graphs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

SMOOTH_K_TOLERANCE = 1e-5
MIN_K_DIST_SCALE = 1e-3
_FLOATMAX = np.finfo(np.float32).max


def smooth_knn_dist(
    distances: np.ndarray, k: float, n_iter: int = 64, local_connectivity: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """sigma (N,) and rho (N,) float32, as ``umap.umap_.smooth_knn_dist`` (bandwidth 1).

    distances: (N, k) float32, each row sorted ascending (the point itself first, at 0).
    """
    d = np.asarray(distances, dtype=np.float32)
    n = d.shape[0]
    target = np.float32(np.log2(k))
    positive = d > 0.0
    n_pos = positive.sum(axis=1)
    rho = np.zeros(n, np.float32)
    index = int(np.floor(local_connectivity))
    interpolation = np.float32(local_connectivity - index)
    # The index-th positive distance of each row (rows are sorted, so positives are a suffix).
    first_pos = d.shape[1] - n_pos
    enough = n_pos >= local_connectivity
    rows = np.arange(n)
    if index > 0:
        at = np.clip(first_pos + index - 1, 0, d.shape[1] - 1)
        rho[enough] = d[rows, at][enough]
        if interpolation > SMOOTH_K_TOLERANCE:
            nxt = np.clip(at + 1, 0, d.shape[1] - 1)
            rho[enough] += interpolation * (d[rows, nxt] - d[rows, at])[enough]
    else:
        at = np.clip(first_pos, 0, d.shape[1] - 1)
        rho[enough] = interpolation * d[rows, at][enough]
    some = ~enough & (n_pos > 0)
    rho[some] = np.where(positive, d, 0.0).max(axis=1)[some]

    lo = np.zeros(n, np.float32)
    hi = np.full(n, _FLOATMAX, np.float32)
    mid = np.ones(n, np.float32)
    active = np.ones(n, bool)
    tail = d[:, 1:]
    for _ in range(n_iter):
        if not active.any():
            break
        diff = tail - rho[:, None]
        with np.errstate(over="ignore"):
            terms = np.where(diff > 0, np.exp(-(diff / mid[:, None])), np.float32(1.0))
        psum = terms.astype(np.float32).sum(axis=1, dtype=np.float32)
        done = np.abs(psum - target) < SMOOTH_K_TOLERANCE
        active &= ~done
        over = active & (psum > target)
        under = active & ~(psum > target)
        hi[over] = mid[over]
        mid[over] = (lo[over] + hi[over]) / np.float32(2.0)
        lo[under] = mid[under]
        grow = under & (hi >= _FLOATMAX)
        half = under & ~(hi >= _FLOATMAX)
        mid[grow] *= np.float32(2.0)
        mid[half] = (lo[half] + hi[half]) / np.float32(2.0)
    sigma = mid.copy()
    floor_row = MIN_K_DIST_SCALE * d.mean(axis=1)
    floor_all = MIN_K_DIST_SCALE * d.mean()
    floor = np.where(rho > 0.0, floor_row, floor_all).astype(np.float32)
    sigma = np.where(sigma < floor, floor, sigma).astype(np.float32)
    return sigma, rho


def fuzzy_simplicial_set(
    knn_indices: np.ndarray, knn_dists: np.ndarray, n_points: int
) -> scipy.sparse.csr_matrix:
    """The symmetric fuzzy graph (fuzzy union, mix ratio 1), as umap-learn's
    ``fuzzy_simplicial_set`` with precomputed neighbours and default options."""
    idx = np.asarray(knn_indices, np.int64)
    dists = np.asarray(knn_dists, np.float32)
    k = idx.shape[1]
    sigma, rho = smooth_knn_dist(dists, float(k))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        vals = np.exp(-((dists - rho[:, None]) / sigma[:, None])).astype(np.float32)
    vals = np.where((dists - rho[:, None] <= 0.0) | (sigma[:, None] == 0.0), np.float32(1.0), vals)
    rows = np.repeat(np.arange(idx.shape[0]), k)
    vals[idx == np.arange(idx.shape[0])[:, None]] = 0.0
    keep = idx.reshape(-1) != -1
    graph = scipy.sparse.coo_matrix(
        (vals.reshape(-1)[keep], (rows[keep], idx.reshape(-1)[keep])), shape=(n_points, n_points)
    )
    graph.eliminate_zeros()
    transpose = graph.transpose()
    prod = graph.multiply(transpose)
    result = graph + transpose - prod
    result.eliminate_zeros()
    return result
