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
    anchored :func:`update_map` kept in place (None when not anchored); notes: how the
    map was made (k-NN search, layout engine and device, subsample and placement).
    """

    embedding: np.ndarray
    knn_indices: np.ndarray
    knn_dists: np.ndarray
    seconds: float
    n_epochs: int
    held: np.ndarray | None = None
    notes: str = ""


def unit_rows(x: np.ndarray, where: str = "features") -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ParameterError(where, f"expected a non-empty (N, D) array, got shape {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ParameterError(where, f"contain NaN or Inf in {int(bad.sum())} rows; cannot map them")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


#: Above this many points the map's k-NN graph comes from an IVF index (:func:`knn_graph`).
EXACT_KNN_POINTS = 20_000
_KNN_NPROBE = 12  # lists probed per query by the graph's IVF search (recall: bench/RESULTS.md)


def knn_graph(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (self first) by cosine, with faiss: exact up to
    :data:`EXACT_KNN_POINTS` points, an inverted-file index above (about 2 sqrt(N) lists,
    12 probed: recall@15 0.998–1.000 at 50,000 x 512 on ``bench/bigmap.py``'s data, see
    ``bench/RESULTS.md``, "Issue 24: the million-point map").

    Parameters
    ----------
    x: (N, D) float32, L2-normalised rows.
    k: neighbours including the point itself (UMAP's ``n_neighbors``).

    Returns
    -------
    indices: (N, k) int64; dists: (N, k) float32 Euclidean distances on the unit sphere.
    """
    if x.shape[0] > EXACT_KNN_POINTS:
        return _search(x, np.arange(x.shape[0]), k, index=ivf_index(x, _KNN_NPROBE))
    return _search(x, np.arange(x.shape[0]), k)


def ivf_index(x: np.ndarray, nprobe: int, metric: str = "ip"):
    """A faiss IndexIVFFlat of the rows of ``x`` (float32, contiguous): about 2 sqrt(N)
    lists (64 to 4,096), k-means trained on 39 rows per list (faiss's least; seeded), ``nprobe``
    lists searched per query. ``metric``: "ip" (inner product) or "l2"."""
    import faiss

    n, d = x.shape
    nlist = int(min(4096, max(64, 2 * np.sqrt(n))))
    ip = metric == "ip"
    quantizer = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist,
                               faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2)
    index.cp.seed = 1234
    train = x
    if n > 39 * nlist:
        train = x[np.random.default_rng(1234).choice(n, 39 * nlist, replace=False)]
    index.train(np.ascontiguousarray(train))
    index.add(x)
    index.nprobe = min(nprobe, nlist)
    return index


def knn_note(n: int) -> str:
    """How :func:`knn_graph` searches ``n`` points, in words (for a map's notes)."""
    if n > EXACT_KNN_POINTS:
        nlist = int(min(4096, max(64, 2 * np.sqrt(n))))
        return f"k-NN graph: faiss IVF ({min(_KNN_NPROBE, nlist)} of {nlist} lists probed)"
    return "k-NN graph: exact (faiss)"


def layout_note() -> str:
    """The layout engine and device, in words (for a map's notes)."""
    from protoview.core.projection._torch_layout import layout_device

    device = layout_device()
    if device is not None:
        return f"layout: umap-learn's optimiser ported to torch, on {device}"
    import sys

    why = ("no CUDA device" if "torch" in sys.modules
           else "torch not loaded: CUDA not looked for")
    return f"layout: umap-learn's optimiser on the CPU ({why})"


def _search(x: np.ndarray, rows: np.ndarray, k: int,
            index: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of ``x[rows]`` among all of ``x`` (self first): exact, or by
    ``index`` (an approximate index of ``x``; rows it returns fewer than k for are
    searched exactly)."""
    k = min(k, x.shape[0])
    if index is None:
        sims, idx = _search_exact(x, rows, k)
    else:
        sims, idx = index.search(np.ascontiguousarray(x[rows]), k)
        short = np.flatnonzero((idx < 0).any(axis=1))
        if short.size:
            sims[short], idx[short] = _search_exact(x, rows[short], k)
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


def _search_exact(x: np.ndarray, rows: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index.search(np.ascontiguousarray(x[rows]), k)


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
    from protoview.core.projection._torch_layout import embed_torch, layout_device

    device = layout_device()
    if device is not None:
        return embed_torch(graph, x, init, n_epochs, alpha, seed, device,
                           hook=getattr(_EPOCH_HOOK, "fn", None))
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


