"""Maps above the point limit: a stratified subsample fitted, the other samples placed
by their nearest fitted neighbours."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from protoview.core.projection._fit import fit_map
from protoview.core.projection._graph import (
    MapResult,
    Progress,
    _check,
    ivf_index,
    unit_rows,
)
from protoview.core.projection._update import update_map
from protoview.errors import ParameterError

# ---------------------------------------------------------------- large maps
MAX_MAP_POINTS = 200_000
"""Above this many joint vectors the map is fitted on a stratified subsample of
:data:`FIT_POINTS` rows and the other samples are placed by their nearest subsample
neighbours (override with the environment variable ``PROTOVIEW_MAX_MAP_POINTS``, read by
:func:`max_map_points`).

Measured before issue 24 (2 CPU cores, 1,000,000 x 64, 200,000 fitted): 190 s, of which
the fit 137 s and the placement 46 s. Issue 24's path (fewer fitted points, an IVF k-NN
graph, the placement in principal components): 1,000,000 x 512 in 57 s at the
trustworthiness of the 200,000-point fit (``bench/RESULTS.md``, "Issue 24: the
million-point map")."""
FIT_POINTS = 50_000
"""Rows fitted by UMAP in a map above :data:`MAX_MAP_POINTS` (the others are placed).
Chosen so that the first map of 1,000,000 x 512 fits in a minute on two cores at the
trustworthiness of the 200,000-point fit (bench/bigmap.py)."""
PLACE_NEIGHBORS = 8
PLACE_DIMS = 64
"""The placement of a large map searches in this many principal components of the
fitted rows' unit vectors (fitted on them), when the vectors have more dimensions."""
_PLACE_NPROBE = 8
_PLACE_CHUNK = 65_536
_EXACT_PLACE_REF = 50_000  # above this many reference points the placement search is IVF
_EXACT_PCA_REF = 5_000  # the same, searching principal components
_FEW_QUERIES = 2_048  # an update placing at most this many rows searches exactly
_PCA_ROWS = 8_192  # rows the placement's principal axes are found from


class StackedRows:
    """The rows of ``head`` (N, D) followed by those of ``tail`` (M, D), read without
    stacking them: a large map's joint vectors are the samples' features plus a few
    centers, proxies and prototypes, and one ``np.concatenate`` of them is a copy of every
    feature on every live step (1.5 GB at 750,000 x 512). Supports what
    :func:`fit_large_map` reads: ``shape``, ``ndim``, ``dtype``, ``len``, a contiguous
    slice and an index array (ints or a boolean mask), each giving a new numpy array."""

    def __init__(self, head: np.ndarray, tail: np.ndarray) -> None:
        self.head, self.tail = np.asarray(head), np.asarray(tail, dtype=np.asarray(head).dtype)
        if self.head.ndim != 2 or self.tail.ndim != 2 or self.tail.shape[1] != self.head.shape[1]:
            raise ValueError(f"rows of shapes {self.head.shape} and {self.tail.shape} do not stack")
        self.shape = (self.head.shape[0] + self.tail.shape[0], self.head.shape[1])
        self.ndim, self.dtype = 2, self.head.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate([self.head, self.tail])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        n = self.head.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step != 1:
                raise IndexError("StackedRows takes contiguous slices only")
            if stop <= n:
                return self.head[start:stop]
            if start >= n:
                return self.tail[start - n:stop - n]
            return np.concatenate([self.head[start:], self.tail[:stop - n]])
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        rows = np.where(rows < 0, rows + self.shape[0], rows)
        out = np.empty((rows.size, self.shape[1]), self.dtype)
        in_head = rows < n
        out[in_head] = self.head[rows[in_head]]
        out[~in_head] = self.tail[rows[~in_head] - n]
        return out


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


class _Placer:
    """Places vectors at the distance-weighted mean of the 2-D positions of their ``k``
    nearest reference rows: the reference unit vectors ``ref`` (R, D) are searched by
    cosine (exact up to :data:`_EXACT_PLACE_REF` rows, IVF above), or, with ``dims``
    below D, by Euclidean distance between their first ``dims`` principal components
    (fitted on ``ref``)."""

    def __init__(self, ref: np.ndarray, ref_xy: np.ndarray, k: int, dims: int | None,
                 few: bool = False):
        import faiss

        self.k = max(1, min(k, ref.shape[0]))
        self.xy = np.asarray(ref_xy, np.float64)
        self.mean = self.basis = None
        if dims is not None and dims < ref.shape[1] and ref.shape[0] > dims:
            self.mean, self.basis = _principal_axes(ref, dims)
            ref = np.ascontiguousarray((ref - self.mean) @ self.basis)
        metric = "ip" if self.basis is None else "l2"
        # few queries (an update's moved rows): exact search beats training an IVF index
        if not few and ref.shape[0] > (_EXACT_PLACE_REF if self.basis is None
                                       else _EXACT_PCA_REF):
            self.index = ivf_index(ref, _PLACE_NPROBE if self.basis is not None else 16, metric)
        else:
            self.index = (faiss.IndexFlatIP if metric == "ip" else faiss.IndexFlatL2)(ref.shape[1])
            self.index.add(np.ascontiguousarray(ref))
        self.squared = metric == "l2"
        self.search = (f"IVF ({self.index.nprobe} of {self.index.nlist} lists)"
                       if hasattr(self.index, "nprobe") else "exact")
        self.space = ("cosine" if self.basis is None
                      else f"{self.basis.shape[1]} principal components")

    def place(self, unit: np.ndarray) -> np.ndarray:
        """(Q, 2) float32 positions of the unit vectors ``unit`` (Q, D)."""
        q = unit if self.basis is None else (unit - self.mean) @ self.basis
        sims, idx = self.index.search(np.ascontiguousarray(q, dtype=np.float32), self.k)
        missing = idx < 0  # IVF can return fewer than k
        idx = np.where(missing, 0, idx)
        if self.squared:
            d = np.sqrt(np.clip(sims.astype(np.float64), 0.0, None))
        else:
            d = np.sqrt(np.clip(2.0 - 2.0 * sims.astype(np.float64), 0.0, None))
        w = np.where(missing, 0.0, 1.0 / (d + 1e-3))
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        return np.einsum("qk,qkc->qc", w, self.xy[idx]).astype(np.float32)

    def describe(self) -> str:
        return (f"placed at the weighted mean of their {self.k} nearest fitted points "
                f"({self.search} faiss search, {self.space})")


def _principal_axes(ref: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), the first ``dims`` principal axes (D, dims) float32) of the rows of
    ``ref``, from at most :data:`_PCA_ROWS` of them (seeded): constant cost in N."""
    from scipy.linalg import eigh
    from threadpoolctl import threadpool_limits

    rows = ref
    if ref.shape[0] > _PCA_ROWS:
        rows = ref[np.sort(np.random.default_rng(0).choice(ref.shape[0], _PCA_ROWS,
                                                           replace=False))]
    mean = rows.mean(axis=0)
    centred = rows - mean
    d = ref.shape[1]
    gram = (centred.T @ centred).astype(np.float64)
    with threadpool_limits(1):  # a D x D problem: threads only contend (0.06 s against 0.8 s)
        _, vecs = eigh(gram, subset_by_index=[d - dims, d - 1])
    return mean, np.ascontiguousarray(vecs[:, ::-1], dtype=np.float32)


def _unit_chunks(vectors: np.ndarray, rows: np.ndarray, where: str = "features"):
    """(row indices, their unit vectors (float32)) in chunks of :data:`_PLACE_CHUNK`."""
    for s in range(0, rows.size, _PLACE_CHUNK):
        part = rows[s:s + _PLACE_CHUNK]
        yield part, unit_rows(vectors[part], where)


def _check_finite(vectors: np.ndarray, where: str = "features") -> None:
    """unit_rows's check, chunked (no (N, D) temporary)."""
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise ParameterError(where, f"expected a non-empty (N, D) array, got shape {vectors.shape}")
    bad = sum(int((~np.isfinite(vectors[s:s + _PLACE_CHUNK]).all(axis=1)).sum())
              for s in range(0, vectors.shape[0], _PLACE_CHUNK))
    if bad:
        raise ParameterError(where, f"contain NaN or Inf in {bad} rows; cannot map them")


def place_points(ref: np.ndarray, ref_xy: np.ndarray, queries: np.ndarray,
                 k: int = PLACE_NEIGHBORS, cancel: Any = None) -> np.ndarray:
    """2-D positions (Q, 2) for ``queries`` (Q, D): the distance-weighted mean of the
    positions ``ref_xy`` of their ``k`` nearest ``ref`` rows by cosine (both normalised
    inside). Exact faiss search (IndexFlatIP) up to 50k reference rows, IVF above (about
    2 sqrt(n) lists, 16 probed); queries are searched in chunks to bound memory."""
    placer = _Placer(unit_rows(ref, "ref"), ref_xy, k, None)
    queries = np.asarray(queries)
    out = np.empty((len(queries), 2), np.float32)
    if len(queries):
        for part, unit in _unit_chunks(queries, np.arange(len(queries)), "queries"):
            _check(cancel)
            out[part] = placer.place(unit)
    return out


def fit_large_map(
    vectors: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    *,
    max_points: int | None = None,
    fit_points: int | None = None,
    place_dims: int | None = PLACE_DIMS,
    previous: np.ndarray | None = None,
    anchor_vectors: np.ndarray | None = None,
    previous_knn: tuple | None = None,
    new_rows: np.ndarray | None = None,
    hold_below: float = 0.1,
    seed: int = 0,
    progress: Progress = None,
    cancel: Any = None,
) -> tuple[MapResult, np.ndarray]:
    """A map of more than ``max_points`` vectors: fitted on a stratified subsample, the
    rest placed. Returns the (full) result and the fitted rows (sorted indices).

    labels (N,): the stratification label of each row (-1 unknown); keep (N,) bool: rows
    always fitted (class centers, proxies, prototypes). The subsample
    (:func:`stratified_subsample`, at most ``min(max_points, fit_points)`` rows;
    ``fit_points`` defaults to :data:`FIT_POINTS`) gets a fresh :func:`fit_map`, or, when
    ``previous`` (N, 2) is given, an anchored :func:`update_map` from its rows of
    ``previous`` (same seed and labels: the same rows as the previous step, so
    ``previous_knn`` — the subsample's graph — is reused; ``new_rows`` (N,) as in
    :func:`update_map`).
    Every other row is placed at the weighted mean of the positions of its nearest fitted
    rows, searched in ``place_dims`` principal components of the fitted rows (None: by
    cosine in all dimensions). On an update with ``anchor_vectors``, a placed row whose
    unit vector moved less than ``hold_below`` times the fitted rows' median neighbour
    radius keeps its position exactly (``result.held``); only the others are placed
    again, so an update's cost follows the subsample and the moved rows, not N (one pass
    over the vectors finds the moved rows). Without anchors every placed row is placed
    again. ``result.knn_indices`` / ``knn_dists`` are the subsample's graph (rows of the
    subsample); ``result.notes`` says how the map was made. The (N, D) vectors are read
    in chunks: no normalised copy of them is made.
    """
    # Long on purpose: subsample, fit or update, placement and the held rows are one
    # sequence sharing the subsample, its layout and the placer.
    t0 = time.perf_counter()
    vectors = vectors if isinstance(vectors, StackedRows) else np.asarray(vectors)
    if previous is None:  # on an update the changed rows are checked as they are read
        _check_finite(vectors)
    n = vectors.shape[0]
    budget = min(max_map_points(max_points), int(fit_points or FIT_POINTS))
    fitted = stratified_subsample(labels, keep, max(3, budget), seed)
    sub = unit_rows(vectors[fitted])
    if previous is not None:
        previous = np.asarray(previous, np.float32)
        if previous.shape != (n, 2) or not np.isfinite(previous).all():
            raise ParameterError("previous", f"expected a finite ({n}, 2) layout, got {previous.shape}")
        anchors = anchor_vectors
        if anchors is not None and not isinstance(anchors, StackedRows):
            anchors = np.asarray(anchors)
        if anchors is not None and tuple(anchors.shape) != tuple(vectors.shape):
            raise ParameterError(
                "anchor_vectors", f"expected shape {vectors.shape}, got {anchors.shape}")
        new = None if new_rows is None else np.asarray(new_rows, bool)
        res = update_map(previous[fitted], sub, seed=seed,
                         anchor_vectors=None if anchors is None else anchors[fitted],
                         previous_knn=previous_knn, hold_below=hold_below,
                         new_rows=None if new is None else new[fitted], progress=progress,
                         cancel=cancel)
    else:
        anchors = new = None
        res = fit_map(sub, seed=seed, progress=progress, cancel=cancel)
    _check(cancel)
    rest = np.ones(n, bool)
    rest[fitted] = False
    rest = np.flatnonzero(rest)
    emb = np.empty((n, 2), np.float32)
    emb[fitted] = res.embedding
    held = None
    if anchors is not None:
        held = np.ones(n, bool)
        held[fitted] = res.held
        radius = float(np.median(res.knn_dists[:, min(14, res.knn_dists.shape[1] - 1)]))
        emb[rest] = previous[rest]
        placed = np.ones(n, bool)
        placed[fitted] = False
        moved_parts = []
        for s in range(0, n, _PLACE_CHUNK):
            _check(cancel)
            # rows equal to their anchor are held without arithmetic (a live step changes
            # a batch of rows): one memory-bound pass over views, the rest follows the
            # changed rows
            changed = (vectors[s:s + _PLACE_CHUNK] != anchors[s:s + _PLACE_CHUNK]).any(axis=1)
            if new is not None:
                changed |= new[s:s + _PLACE_CHUNK]
            part = s + np.flatnonzero(changed & placed[s:s + _PLACE_CHUNK])
            if part.size:
                step = np.linalg.norm(unit_rows(vectors[part])
                                      - unit_rows(anchors[part], "anchor_vectors"), axis=1)
                still = step < hold_below * max(radius, 1e-6)
                if new is not None:
                    still &= ~new[part]
                held[part] = still
                moved_parts.append(part[~still])
        rest = np.concatenate(moved_parts) if moved_parts else rest[:0]
    notes = f"{res.notes}; fitted {len(fitted):,} of {n:,} points (stratified by label)"
    if rest.size:
        placer = _Placer(sub, res.embedding, PLACE_NEIGHBORS, place_dims,
                         few=rest.size <= _FEW_QUERIES)
        for part, unit in _unit_chunks(vectors, rest):
            _check(cancel)
            emb[part] = placer.place(unit)
        notes += f", {rest.size:,} others {placer.describe()}"
    if held is not None:
        notes += f"; {int(held.sum()):,} points held in place"
    return (MapResult(emb, res.knn_indices, res.knn_dists, time.perf_counter() - t0,
                      res.n_epochs, held, notes), fitted)
