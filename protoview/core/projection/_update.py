"""The anchored update of a map (:func:`update_map`): points whose vectors did not move
stay exactly in place, the others are optimised against fixed neighbours."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from protoview.core.projection._graph import (
    _BOX,
    MapResult,
    Progress,
    _check,
    _embed,
    _graph,
    _search,
    _spare,
    _to_box,
    _watch_epochs,
    knn_note,
    layout_note,
    unit_rows,
)
from protoview.errors import ParameterError


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
    previous_knn: tuple[np.ndarray, np.ndarray] | None = None,
    reuse_below: float = 0.3,
    new_rows: np.ndarray | None = None,
    progress: Progress = None,
    cancel: Any = None,
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
    previous_knn: (indices, dists) of the previous map's graph (``result.knn_indices``,
        ``result.knn_dists``). With anchors, when at most ``reuse_below`` of the points
        moved, only the moved points' neighbours are searched again; the others keep
        their lists (distances recomputed, moved points that came close merged in), so
        the cost follows the moved points. Otherwise the whole graph is rebuilt.
    new_rows: (N,) bool, points new to the map (e.g. k-means prototypes just added):
        their row of ``previous`` is only a starting position, they are always optimised
        and never held, whatever their anchors say.

    The previous layout is scaled into UMAP's [0, 10] box per axis (umap-learn rescales an
    array ``init`` that way itself, so the inverse map is exact), refined for ``n_epochs``
    epochs at ``learning_rate`` on the new graph, and mapped back to the previous frame.
    ``progress`` and ``cancel`` as in :func:`fit_map`.
    ``learning_rate`` defaults to 0.07 when every point is optimised (small steps keep
    the layout calm) and to 0.5 with anchors, where only the moved points are optimised
    against fixed neighbours and can travel across the map within the epochs.
    """
    # Long on purpose: the anchored update is one sequence (box, held points, graph, refine,
    # back to the frame) whose steps share a dozen arrays; split, they would pass them all.
    t0 = time.perf_counter()
    x = unit_rows(vectors)
    prev = np.asarray(previous, dtype=np.float64)
    if prev.shape != (x.shape[0], 2) or not np.isfinite(prev).all():
        raise ParameterError("previous", f"expected a finite ({x.shape[0]}, 2) layout, got {prev.shape}")
    if n_epochs < 1:
        raise ParameterError("n_epochs", "must be at least 1")
    n_neighbors = max(2, min(n_neighbors, x.shape[0] - 1))
    old_x = None
    if anchor_vectors is not None:
        old_x = unit_rows(anchor_vectors, "anchor_vectors")
        if old_x.shape != x.shape:
            raise ParameterError(
                "anchor_vectors", f"expected shape {x.shape}, got {old_x.shape}")
    new = None
    if new_rows is not None:
        new = np.asarray(new_rows, bool)
        if new.shape != (x.shape[0],):
            raise ParameterError("new_rows", f"expected shape ({x.shape[0]},), got {new.shape}")
    boxed, lo, span = _to_box(prev)
    _check(cancel)
    held = None
    wide = (x.shape[0], _spare(n_neighbors, x.shape[0]))
    reuse = (old_x is not None and previous_knn is not None
             and np.shape(previous_knn[0]) == wide and np.shape(previous_knn[1]) == wide)
    if reuse:
        prev_idx, prev_d = (np.asarray(a) for a in previous_knn)
        moved = np.linalg.norm(x - old_x, axis=1)
        radius = prev_d[:, n_neighbors - 1].astype(np.float64)
        held = moved < hold_below * np.maximum(radius, 1e-6)
        if new is not None:
            held &= ~new
        reuse = (~held).mean() <= reuse_below
    if reuse:
        from protoview.core._fuzzy import fuzzy_simplicial_set

        idx, dists = _merge_knn(x, prev_idx, prev_d, ~held, wide[1])
        graph = fuzzy_simplicial_set(idx[:, :n_neighbors], dists[:, :n_neighbors], x.shape[0])
        knn = f"k-NN lists kept, those of the {int((~held).sum()):,} moved points searched again"
    else:
        graph, idx, dists = _graph(x, n_neighbors, seed)
        knn = knn_note(x.shape[0])
    _check(cancel)
    if old_x is None:
        lr = 0.07 if learning_rate is None else learning_rate
        with _watch_epochs(progress, cancel):
            emb = _embed(graph, x, boxed.astype(np.float32), n_epochs, lr, seed)
    else:
        if held is None:
            moved = np.linalg.norm(x - old_x, axis=1)
            radius = dists[:, n_neighbors - 1].astype(np.float64)
            held = moved < hold_below * np.maximum(radius, 1e-6)
            if new is not None:
                held &= ~new
        # Only the points that moved are optimised, against their fixed neighbours (as
        # umap-learn's ``transform`` places new points): the held ones keep their place
        # exactly, and the layout cost scales with the moved points, not all of them.
        lr = 0.5 if learning_rate is None else learning_rate
        with _watch_epochs(progress, cancel):
            emb = _refine(graph, boxed.astype(np.float32), ~held, n_epochs, lr, seed)
    emb = emb.astype(np.float64) * (span / _BOX) + lo
    if held is not None:
        emb[held] = prev[held]
    notes = f"anchored update; {knn}; {layout_note()}, {n_epochs} epochs"
    return MapResult(emb.astype(np.float32), idx, dists, time.perf_counter() - t0, n_epochs,
                     held, notes)


def _merge_knn(x: np.ndarray, prev_idx: np.ndarray, prev_d: np.ndarray, free: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-NN lists after the ``free`` points moved: theirs searched exactly, the
    others' kept, plus any moved point that is now among a kept point's k nearest (found
    from the moved point's own list). Distances between two held points are kept (neither
    moved by more than the hold threshold); the rest are fresh. Self first, sorted."""
    n = x.shape[0]
    rows_free = np.flatnonzero(free)
    f_idx, f_dist = _search(x, rows_free, k)
    kept = np.flatnonzero(~free)
    r_old = np.repeat(kept, k)
    c_old = prev_idx[kept].ravel()
    d_old = prev_d[kept].ravel().astype(np.float32)
    to_free = free[c_old]
    # pairs that involve a moved point: the kept row's old moved neighbours (fresh
    # distances) and the moved points that list a kept row (their search distance)
    back = ~free[f_idx]
    r_mix = np.concatenate([r_old[to_free], f_idx[back]])
    c_mix = np.concatenate([c_old[to_free], np.broadcast_to(rows_free[:, None], f_idx.shape)[back]])
    key = np.unique(r_mix.astype(np.int64) * n + c_mix)
    r_mix, c_mix = key // n, key % n
    sims = np.einsum("ij,ij->i", x[r_mix], x[c_mix])
    d_mix = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).astype(np.float32)
    r = np.concatenate([r_old[~to_free], r_mix])
    c = np.concatenate([c_old[~to_free], c_mix])
    d = np.concatenate([d_old[~to_free], d_mix])
    d[r == c] = -1.0  # self first
    order = np.lexsort((d, r))
    r, c, d = r[order], c[order], d[order]
    start = np.searchsorted(r, kept)
    take = (start[:, None] + np.arange(k)[None, :]).ravel()
    idx = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    idx[kept] = c[take].reshape(-1, k)
    dist[kept] = np.maximum(d[take], 0.0).reshape(-1, k)
    idx[rows_free], dist[rows_free] = f_idx, f_dist
    return idx, dist


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


