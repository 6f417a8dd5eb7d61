"""The pieces every map path shares: cancellation and progress per epoch, the map's
result, unit rows, the faiss k-NN graph, umap-learn's fuzzy graph and layout, UMAP's box."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoview.errors import CancelledError, ParameterError, is_cancelled

_BOX = 10.0
Progress = Callable[[int, int], None] | None
_EPOCH_HOOK = threading.local()


def _epoch_iter(iterable, **_tqdm_kwargs) -> Iterator:
    """Stands in for ``tqdm`` in umap-learn's layout loop: calls this thread's epoch hook
    (progress, cancel) before each epoch. Without a hook it only iterates."""
    hook = getattr(_EPOCH_HOOK, "fn", None)
    total = len(iterable)
    for i, item in enumerate(iterable):
        if hook is not None:
            hook(i, total)
        yield item


@contextmanager
def _watch_epochs(progress: Progress, cancel: Any):
    """Progress per epoch and cancellation between epochs of umap-learn's optimiser (its
    epoch loop is Python calling one numba function per epoch: ~20 ms at 10k points)."""
    import umap.layouts as layouts

    if layouts.tqdm is not _epoch_iter:
        layouts.tqdm = _epoch_iter  # umap-learn's only use of tqdm there is the epoch loop

    def hook(i: int, total: int) -> None:
        if is_cancelled(cancel):
            raise CancelledError("the map was cancelled")
        if progress is not None:
            progress(i, total)

    _EPOCH_HOOK.fn = hook
    try:
        yield
    finally:
        _EPOCH_HOOK.fn = None


def _check(cancel: Any) -> None:
    if is_cancelled(cancel):
        raise CancelledError("the map was cancelled")


@dataclass
class MapResult:
    """A 2-D layout.

    embedding: (N, 2) float32; knn_indices / knn_dists: (N, 2k) each point's nearest neighbours, self first (the graph uses the first k, the rest are spares for the next update);
    seconds: wall time; n_epochs: layout epochs run; held: (N,) bool, the points an
    anchored :func:`update_map` kept in place (None when not anchored).
    """

    embedding: np.ndarray
    knn_indices: np.ndarray
    knn_dists: np.ndarray
    seconds: float
    n_epochs: int
    held: np.ndarray | None = None


def unit_rows(x: np.ndarray, where: str = "features") -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ParameterError(where, f"expected a non-empty (N, D) array, got shape {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ParameterError(where, f"contain NaN or Inf in {int(bad.sum())} rows; cannot map them")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self first) by cosine, with faiss.

    Parameters
    ----------
    x: (N, D) float32, L2-normalised rows.
    k: neighbours including the point itself (UMAP's ``n_neighbors``).

    Returns
    -------
    indices: (N, k) int64; dists: (N, k) float32 Euclidean distances on the unit sphere.
    """
    return _search(x, np.arange(x.shape[0]), k)


def _search(x: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of ``x[rows]`` among all of ``x`` (self first)."""
    import faiss

    k = min(k, x.shape[0])
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(np.ascontiguousarray(x[rows]), k)
    # The point itself must come first for UMAP; ties (duplicates) can reorder it.
    not_first = idx[:, 0] != rows
    if not_first.any():
        for i in np.flatnonzero(not_first):
            pos = np.flatnonzero(idx[i] == rows[i])
            j = pos[0] if pos.size else k - 1
            idx[i, 1 : j + 1] = idx[i, :j].copy()
            sims[i, 1 : j + 1] = sims[i, :j].copy()
            idx[i, 0], sims[i, 0] = rows[i], 1.0
    dists = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).astype(np.float32)
    dists[:, 0] = 0.0
    return idx.astype(np.int64), dists


def _graph(x: np.ndarray, n_neighbors: int, seed: int):
    # umap-learn's arithmetic in numpy (protoview.core._fuzzy): its numba version costs
    # ~12 s of compilation in every new process.
    from protoview.core._fuzzy import fuzzy_simplicial_set

    del seed  # the graph is deterministic given the neighbours
    idx, dists = knn_graph(x, _spare(n_neighbors, x.shape[0]))
    graph = fuzzy_simplicial_set(idx[:, :n_neighbors], dists[:, :n_neighbors], x.shape[0])
    return graph, idx, dists


def _spare(n_neighbors: int, n: int) -> int:
    """Neighbours kept per point: twice UMAP's, so that a later update that reuses the
    lists still has ``n_neighbors`` when some of them moved away."""
    return min(2 * n_neighbors, n)


def _embed(graph, x, init, n_epochs, alpha, seed) -> np.ndarray:
    import tqdm
    from umap.umap_ import find_ab_params, simplicial_set_embedding

    # umap-learn wraps its epochs in tqdm, whose first use starts a monitor thread that
    # lives until exit; the map has no progress bar to monitor.
    tqdm.tqdm.monitor_interval = 0

    a, b = find_ab_params(1.0, 0.1)
    emb, _ = simplicial_set_embedding(
        x, graph, 2, alpha, a, b, 1.0, 5, n_epochs, init, np.random.RandomState(seed),
        "euclidean", {}, False, {}, False,
    )
    return np.asarray(emb, dtype=np.float32)


def default_epochs(n: int) -> int:
    """Layout epochs of a fresh map of ``n`` points: a budget of about a million point-
    epochs (2-3 s of layout on two cores), at least 100 and at most umap-learn's 500.

    Measured at 10k x 512 (bench/, trustworthiness k=10): 500 epochs 0.9525 in 12.3 s,
    200 epochs 0.9519 in 4.9 s, 100 epochs 0.9517 in 2.7 s; umap-learn's own fit 0.9526.
    """
    return int(min(500, max(100, 1_000_000 // max(n, 1))))


def _to_box(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale each axis into [0, 10] as umap-learn does to an array ``init`` (per axis)."""
    lo = emb.min(axis=0)
    span = np.maximum(emb.max(axis=0) - lo, 1e-9)
    return (emb - lo) * (_BOX / span), lo, span


