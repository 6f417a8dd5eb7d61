"""Maps above the point limit: a stratified subsample fitted, the other samples placed
by their nearest fitted neighbours."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from protoview.core.projection._fit import fit_map
from protoview.core.projection._graph import MapResult, Progress, _check, unit_rows
from protoview.core.projection._update import update_map
from protoview.errors import ParameterError

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

    r = unit_rows(ref, "ref")
    q = unit_rows(queries, "queries") if len(queries) else np.zeros((0, r.shape[1]), np.float32)
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
    x = unit_rows(vectors)
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
