"""A fresh map (:func:`fit_map`), how far a layout moved (:func:`layout_drift`), and the
one-time compilation of the map engine (:func:`warm_up`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from protoview.core.projection._graph import (
    MapResult,
    Progress,
    _check,
    _embed,
    _graph,
    _watch_epochs,
    default_epochs,
    knn_note,
    layout_note,
    unit_rows,
)
from protoview.core.projection._update import update_map
from protoview.errors import ParameterError


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
    x = unit_rows(vectors)
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
    notes = f"{knn_note(x.shape[0])}; {layout_note()}, {n_epochs} epochs"
    return MapResult(emb, idx, dists, time.perf_counter() - t0, n_epochs, notes=notes)


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


