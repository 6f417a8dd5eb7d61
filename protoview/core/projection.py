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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoview.errors import CancelledError, ParameterError

_BOX = 10.0
Progress = Callable[[int, int], None] | None
_EPOCH_HOOK = threading.local()


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


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
        if _is_cancelled(cancel):
            raise CancelledError("the map was cancelled")
        if progress is not None:
            progress(i, total)

    _EPOCH_HOOK.fn = hook
    try:
        yield
    finally:
        _EPOCH_HOOK.fn = None


def _check(cancel: Any) -> None:
    if _is_cancelled(cancel):
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


def fit_map(
    vectors: np.ndarray,
    *,
    n_neighbors: int = 15,
    seed: int = 0,
    n_epochs: int | None = None,
    progress: Progress = None,
    cancel: Any = None,
) -> MapResult:
    """A fresh UMAP layout of ``vectors`` (N, D) (normalised inside).

    ``n_epochs`` defaults to :func:`default_epochs` (fewer than umap-learn's 500 / 200
    on large maps: at 10k x 512 the same trustworthiness in a third of the time). Spectral
    initialisation as umap-learn; falls back to a random init for tiny or disconnected
    graphs. Deterministic for a seed. ``progress(epoch, n_epochs)`` is called per epoch;
    ``cancel`` (a callable or an Event) is checked between the stages and between epochs,
    raising :class:`~protoview.errors.CancelledError`.
    """
    t0 = time.perf_counter()
    x = _as_unit_rows(vectors)
    if x.shape[0] < 3:
        raise ParameterError("features", f"need at least 3 points for a map, got {x.shape[0]}")
    n_neighbors = max(2, min(n_neighbors, x.shape[0] - 1))
    if n_epochs is None:
        n_epochs = default_epochs(x.shape[0])
    _check(cancel)
    graph, idx, dists = _graph(x, n_neighbors, seed)
    _check(cancel)
    init = "spectral" if x.shape[0] > n_neighbors + 2 else "random"
    with _watch_epochs(progress, cancel):
        emb = _embed(graph, x, init, n_epochs, 1.0, seed)
    return MapResult(emb, idx, dists, time.perf_counter() - t0, n_epochs)


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
    else:
        graph, idx, dists = _graph(x, n_neighbors, seed)
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
    return MapResult(emb.astype(np.float32), idx, dists, time.perf_counter() - t0, n_epochs,
                     held)


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


# ---------------------------------------------------------------- large maps
MAX_MAP_POINTS = 200_000
"""Above this many joint vectors the map is fitted on a stratified subsample and the other
samples are placed by their nearest subsample neighbours (override with the environment
variable ``PROTOVIEW_MAX_MAP_POINTS``, read by :func:`max_map_points`).

Measured (2 CPU cores shared with a running build, 1,000,000 x 64 clustered features,
20 classes, default threshold): 190 s in all, of which the fit of the 200,000-point
subsample 137 s and the placement of the other 800,000 (IVF search) 46 s; every class's
samples nearest their own 2-D class centroid. The test at 3,000 points with a threshold
of 500 places them as well as a full fit (nearest-centroid accuracy > 0.95)."""
PLACE_NEIGHBORS = 8
_PLACE_CHUNK = 65_536
_EXACT_PLACE_REF = 50_000  # above this many fitted points the placement search is IVF


def max_map_points(value: int | None = None) -> int:
    """``value`` when given, else ``PROTOVIEW_MAX_MAP_POINTS`` when set, else
    :data:`MAX_MAP_POINTS` (the one place the override is read)."""
    if value is None:
        env = os.environ.get("PROTOVIEW_MAX_MAP_POINTS", "").strip()
        value = int(env) if env else MAX_MAP_POINTS
    if value < 3:
        raise ParameterError("max_map_points", f"must be at least 3, got {value}")
    return int(value)


def stratified_subsample(labels: np.ndarray, keep: np.ndarray, max_points: int,
                         seed: int = 0) -> np.ndarray:
    """Sorted row indices: every ``keep`` row, plus the other rows sampled per label
    (-1 counts as a label) in proportion to the label's size, at least one per label,
    ``max_points`` rows at most in all (unless there are more labels than that budget).
    Deterministic for a seed."""
    labels = np.asarray(labels, np.int64)
    keep = np.asarray(keep, bool)
    kept = np.flatnonzero(keep)
    free = np.flatnonzero(~keep)
    budget = max(0, max_points - kept.size)
    if budget >= free.size:
        return np.arange(labels.size)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels[free], return_inverse=True, return_counts=True)
    quota = np.maximum(1, np.floor(budget * counts / free.size)).astype(np.int64)
    quota = np.minimum(quota, counts)
    # hand out what flooring left, largest remainders first; trim if the minimum of one
    # per label went over the budget (then the largest labels give back)
    short = budget - int(quota.sum())
    if short > 0:
        rem = budget * counts / free.size - np.floor(budget * counts / free.size)
        for j in np.argsort(-rem, kind="stable"):
            if short == 0:
                break
            if quota[j] < counts[j]:
                quota[j] += 1
                short -= 1
    while short < 0:
        j = int(np.argmax(quota))
        take = min(-short, int(quota[j]) - 1)
        if take <= 0:
            break
        quota[j] -= take
        short += take
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picked = [free[order[s:s + c]][rng.choice(c, q, replace=False)]
              for s, c, q in zip(starts, counts, quota, strict=True)]
    return np.sort(np.concatenate([kept, *picked]))


def place_points(ref: np.ndarray, ref_xy: np.ndarray, queries: np.ndarray,
                 k: int = PLACE_NEIGHBORS, cancel: Any = None) -> np.ndarray:
    """2-D positions (Q, 2) for ``queries`` (Q, D): the distance-weighted mean of the
    positions ``ref_xy`` of their ``k`` nearest ``ref`` rows by cosine (both normalised
    inside). Exact faiss search (IndexFlatIP) up to 50k reference rows, IVF above (about
    sqrt(n) lists, 16 probed); queries are searched in chunks to bound memory."""
    import faiss

    r = _as_unit_rows(ref, "ref")
    q = _as_unit_rows(queries, "queries") if len(queries) else np.zeros((0, r.shape[1]), np.float32)
    k = max(1, min(k, r.shape[0]))
    if r.shape[0] > _EXACT_PLACE_REF:
        nlist = int(min(4096, max(64, np.sqrt(r.shape[0]) * 2)))
        quantizer = faiss.IndexFlatIP(r.shape[1])
        index = faiss.IndexIVFFlat(quantizer, r.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234
        index.train(r)
        index.add(r)
        index.nprobe = 16
    else:
        index = faiss.IndexFlatIP(r.shape[1])
        index.add(r)
    xy = np.asarray(ref_xy, np.float64)
    out = np.empty((q.shape[0], 2), np.float32)
    for s in range(0, q.shape[0], _PLACE_CHUNK):
        _check(cancel)
        sims, idx = index.search(q[s:s + _PLACE_CHUNK], k)
        missing = idx < 0  # IVF can return fewer than k
        idx = np.where(missing, 0, idx)
        d = np.sqrt(np.clip(2.0 - 2.0 * sims.astype(np.float64), 0.0, None))
        w = np.where(missing, 0.0, 1.0 / (d + 1e-3))
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        out[s:s + _PLACE_CHUNK] = np.einsum("qk,qkc->qc", w, xy[idx])
    return out


def fit_large_map(
    vectors: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    *,
    max_points: int | None = None,
    previous: np.ndarray | None = None,
    anchor_vectors: np.ndarray | None = None,
    previous_knn: tuple | None = None,
    new_rows: np.ndarray | None = None,
    seed: int = 0,
    progress: Progress = None,
    cancel: Any = None,
) -> tuple[MapResult, np.ndarray]:
    """A map of more than ``max_points`` vectors: fitted on a stratified subsample, the
    rest placed. Returns the (full) result and the fitted rows (sorted indices).

    labels (N,): the stratification label of each row (-1 unknown); keep (N,) bool: rows
    always fitted (class centers, proxies, prototypes). The subsample
    (:func:`stratified_subsample`, at most ``max_points`` rows) gets a fresh
    :func:`fit_map`, or, when ``previous`` (N, 2) is given, an anchored
    :func:`update_map` from its rows of ``previous`` (same seed and labels: the same rows
    as the previous step, so ``previous_knn`` — the subsample's graph — is reused;
    ``new_rows`` (N,) as in :func:`update_map`).
    Every other row is then placed (again, on an update) by :func:`place_points`:
    such rows never keep their position exactly, they follow their neighbours.
    ``result.knn_indices`` / ``knn_dists`` are the subsample's graph (rows of the
    subsample); ``result.held`` (N,) is False for the placed rows.
    """
    t0 = time.perf_counter()
    x = _as_unit_rows(vectors)
    max_points = max_map_points(max_points)
    fitted = stratified_subsample(labels, keep, max_points, seed)
    sub = x[fitted]
    if previous is not None:
        anchors = None if anchor_vectors is None else np.asarray(anchor_vectors)[fitted]
        new = None if new_rows is None else np.asarray(new_rows, bool)[fitted]
        res = update_map(np.asarray(previous)[fitted], sub, seed=seed, anchor_vectors=anchors,
                         previous_knn=previous_knn, new_rows=new, progress=progress,
                         cancel=cancel)
    else:
        res = fit_map(sub, seed=seed, progress=progress, cancel=cancel)
    rest = np.ones(x.shape[0], bool)
    rest[fitted] = False
    emb = np.empty((x.shape[0], 2), np.float32)
    emb[fitted] = res.embedding
    emb[rest] = place_points(sub, res.embedding, x[rest], cancel=cancel)
    held = None
    if res.held is not None:
        held = np.zeros(x.shape[0], bool)
        held[fitted] = res.held
    return (MapResult(emb, res.knn_indices, res.knn_dists, time.perf_counter() - t0,
                      res.n_epochs, held), fitted)
