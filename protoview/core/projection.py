"""Joint 2-D UMAP maps of samples, centers, proxies and prototypes — fast and stable.

The map is of directions: every vector (features, centers, proxies, prototypes) is L2-
normalised before embedding, so that a cosine head's proxies and the features live on
the same sphere. The small sets are embedded together with the samples (not placed by
hand).

Speed: the k-NN graph comes from faiss (exact, inner product on unit vectors) and is handed
to umap-learn, whose numba functions are compiled once per process by :func:`warm_up`
(call it in the background at start-up, never inside a click).

Stability: :func:`update_map` refits from the previous layout with a low learning rate
and few epochs (the PERFORMANCE-NOTES recipe), after pre-scaling the previous layout into
UMAP's [0, 10] box, then maps it back to the previous frame, so points move only as much
as their features did.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from protoview.errors import ParameterError

_BOX = 10.0


@dataclass
class MapResult:
    """A 2-D layout.

    embedding: (N, 2) float32; knn_indices / knn_dists: (N, k) the graph used;
    seconds: wall time; n_epochs: layout epochs run; held: (N,) bool, the points an
    anchored :func:`update_map` kept in place (None when not anchored).
    """

    embedding: np.ndarray
    knn_indices: np.ndarray
    knn_dists: np.ndarray
    seconds: float
    n_epochs: int
    held: np.ndarray | None = None


def _as_unit_rows(x: np.ndarray, where: str = "features") -> np.ndarray:
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
    import faiss

    n = x.shape[0]
    k = min(k, n)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, idx = index.search(x, k)
    # The point itself must come first for UMAP; ties (duplicates) can reorder it.
    rows = np.arange(n)
    not_first = idx[:, 0] != rows
    if not_first.any():
        for i in np.flatnonzero(not_first):
            pos = np.flatnonzero(idx[i] == i)
            j = pos[0] if pos.size else k - 1
            idx[i, 1 : j + 1] = idx[i, :j].copy()
            sims[i, 1 : j + 1] = sims[i, :j].copy()
            idx[i, 0], sims[i, 0] = i, 1.0
    dists = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).astype(np.float32)
    dists[:, 0] = 0.0
    return idx.astype(np.int64), dists


def _graph(x: np.ndarray, n_neighbors: int, seed: int):
    # umap-learn's arithmetic in numpy (protoview.core._fuzzy): its numba version costs
    # ~12 s of compilation in every new process.
    from protoview.core._fuzzy import fuzzy_simplicial_set

    del seed  # the graph is deterministic given the neighbours
    idx, dists = knn_graph(x, n_neighbors)
    graph = fuzzy_simplicial_set(idx, dists, x.shape[0])
    return graph, idx, dists


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


def fit_map(
    vectors: np.ndarray,
    *,
    n_neighbors: int = 15,
    seed: int = 0,
    n_epochs: int | None = None,
) -> MapResult:
    """A fresh UMAP layout of ``vectors`` (N, D) (normalised inside).

    ``n_epochs`` defaults to umap-learn's (500 below 10k points, 200 above). Spectral
    initialisation as umap-learn; falls back to a random init for tiny or disconnected
    graphs. Deterministic for a seed.
    """
    t0 = time.perf_counter()
    x = _as_unit_rows(vectors)
    if x.shape[0] < 3:
        raise ParameterError("features", f"need at least 3 points for a map, got {x.shape[0]}")
    n_neighbors = max(2, min(n_neighbors, x.shape[0] - 1))
    if n_epochs is None:
        n_epochs = 500 if x.shape[0] <= 10_000 else 200
    graph, idx, dists = _graph(x, n_neighbors, seed)
    init = "spectral" if x.shape[0] > n_neighbors + 2 else "random"
    emb = _embed(graph, x, init, n_epochs, 1.0, seed)
    return MapResult(emb, idx, dists, time.perf_counter() - t0, n_epochs)


def _to_box(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale each axis into [0, 10] as umap-learn does to an array ``init`` (per axis)."""
    lo = emb.min(axis=0)
    span = np.maximum(emb.max(axis=0) - lo, 1e-9)
    return (emb - lo) * (_BOX / span), lo, span


def update_map(
    previous: np.ndarray,
    vectors: np.ndarray,
    *,
    n_neighbors: int = 15,
    seed: int = 0,
    n_epochs: int = 30,
    learning_rate: float | None = None,
    anchor_vectors: np.ndarray | None = None,
    hold_below: float = 0.1,
) -> MapResult:
    """Move an existing layout to new features without a jump.

    Parameters
    ----------
    previous: (N, 2) the current layout (any frame); its row i is vector i.
    vectors: (N, D) the new features (normalised inside).
    anchor_vectors: (N, D) the features each point had when its position was last set.
        When given, a point whose (normalised) feature moved less than ``hold_below``
        times its distance to its k-th neighbour keeps its position exactly (UMAP's
        optimiser alone jitters such points by a few percent of the map per update); the
        others take their refined position. ``result.held`` says which were kept: keep
        their anchors, and replace the others' by ``vectors``, so that slow drifts still
        add up and move the point once they matter.

    The previous layout is scaled into UMAP's [0, 10] box per axis (umap-learn rescales an
    array ``init`` that way itself, so the inverse map is exact), refined for ``n_epochs``
    epochs at ``learning_rate`` on the new graph, and mapped back to the previous frame.
    ``learning_rate`` defaults to 0.07 when every point is optimised (small steps keep
    the layout calm) and to 0.5 with anchors, where only the moved points are optimised
    against fixed neighbours and can travel across the map within the epochs.
    """
    t0 = time.perf_counter()
    x = _as_unit_rows(vectors)
    prev = np.asarray(previous, dtype=np.float64)
    if prev.shape != (x.shape[0], 2) or not np.isfinite(prev).all():
        raise ParameterError("previous", f"expected a finite ({x.shape[0]}, 2) layout, got {prev.shape}")
    if n_epochs < 1:
        raise ParameterError("n_epochs", "must be at least 1")
    n_neighbors = max(2, min(n_neighbors, x.shape[0] - 1))
    old_x = None
    if anchor_vectors is not None:
        old_x = _as_unit_rows(anchor_vectors, "anchor_vectors")
        if old_x.shape != x.shape:
            raise ParameterError(
                "anchor_vectors", f"expected shape {x.shape}, got {old_x.shape}")
    boxed, lo, span = _to_box(prev)
    graph, idx, dists = _graph(x, n_neighbors, seed)
    held = None
    if old_x is None:
        lr = 0.07 if learning_rate is None else learning_rate
        emb = _embed(graph, x, boxed.astype(np.float32), n_epochs, lr, seed)
    else:
        moved = np.linalg.norm(x - old_x, axis=1)
        radius = np.maximum(dists[:, -1].astype(np.float64), 1e-6)
        held = moved < hold_below * radius
        # Only the points that moved are optimised, against their fixed neighbours (as
        # umap-learn's ``transform`` places new points): the held ones keep their place
        # exactly, and the layout cost scales with the moved points, not all of them.
        lr = 0.5 if learning_rate is None else learning_rate
        emb = _refine(graph, boxed.astype(np.float32), ~held, n_epochs, lr, seed)
    emb = emb.astype(np.float64) * (span / _BOX) + lo
    if held is not None:
        emb[held] = prev[held]
    return MapResult(emb.astype(np.float32), idx, dists, time.perf_counter() - t0, n_epochs,
                     held)


def _refine(graph, boxed: np.ndarray, free: np.ndarray, n_epochs: int, alpha: float,
            seed: int) -> np.ndarray:
    """umap-learn's layout optimisation of the ``free`` points only (``move_other=False``,
    edges whose head is free), from ``boxed`` positions in UMAP's [0, 10] box. The graph's
    weak edges are pruned as ``simplicial_set_embedding`` does."""
    if not free.any():
        return boxed.copy()
    import tqdm
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import INT32_MAX, INT32_MIN, find_ab_params, make_epochs_per_sample

    tqdm.tqdm.monitor_interval = 0
    g = graph.tocoo(copy=True)
    prune = n_epochs if n_epochs > 10 else (500 if g.shape[0] <= 10_000 else 200)
    g.data[g.data < g.data.max() / float(prune)] = 0.0
    g.eliminate_zeros()
    keep = free[g.row]
    head, tail, weight = g.row[keep], g.col[keep], g.data[keep]
    emb = np.ascontiguousarray(boxed, dtype=np.float32).copy()
    if head.size == 0:
        return emb
    a, b = find_ab_params(1.0, 0.1)
    rng_state = np.random.RandomState(seed).randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    epochs_per_sample = make_epochs_per_sample(weight, n_epochs)
    emb = optimize_layout_euclidean(
        emb, emb, head, tail, n_epochs, g.shape[1], epochs_per_sample, a, b, rng_state,
        1.0, alpha, 5, parallel=False, verbose=False, densmap=False, densmap_kwds={},
        tqdm_kwds={"disable": True}, move_other=False,
    )
    return np.asarray(emb, dtype=np.float32)


def layout_drift(before: np.ndarray, after: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean displacement of points, as a fraction of the ``before`` layout's diagonal.

    mask: (N,) bool, which points to measure (e.g. the ones whose features did not change).
    """
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if mask is not None:
        before, after = before[mask], after[mask]
    if before.size == 0:
        return 0.0
    diag = float(np.linalg.norm(before.max(axis=0) - before.min(axis=0))) or 1.0
    return float(np.linalg.norm(after - before, axis=1).mean() / diag)


def warm_up(progress: Callable[[str], None] | None = None) -> float:
    """Compile umap-learn's numba functions once in this process; returns seconds taken.

    Uses the on-disk numba cache (``NUMBA_CACHE_DIR``, defaulting to
    ``~/.cache/protoview/numba``) where umap and pynndescent allow it.
    """
    os.environ.setdefault(
        "NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "protoview", "numba")
    )
    t0 = time.perf_counter()
    if progress:
        progress("compiling the map engine (once per start)")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    res = fit_map(x, n_neighbors=5, n_epochs=5)
    update_map(res.embedding, x, n_neighbors=5, n_epochs=2)
    update_map(res.embedding, x + 1.0, n_neighbors=5, n_epochs=2, anchor_vectors=x)
    return time.perf_counter() - t0
