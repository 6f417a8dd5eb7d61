"""A quick preview layout: the first two principal components of the unit vectors, drawn
at once while the UMAP map is computed (the first start of a process compiles the map
engine, which takes most of half a minute on a fresh machine)."""

from __future__ import annotations

import numpy as np

from protoview.core.projection._graph import _to_box, unit_rows

#: Rows used to find the components (all of them are projected).
PREVIEW_FIT_ROWS = 20_000


def preview_layout(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 2) float32: ``vectors`` (N, D), L2-normalised, projected on their first two
    principal components (found on at most :data:`PREVIEW_FIT_ROWS` rows, seeded), scaled
    into UMAP's [0, 10] box. No neighbour graph and no optimisation: milliseconds."""
    x = unit_rows(vectors).astype(np.float64)
    n = x.shape[0]
    rows = x
    if n > PREVIEW_FIT_ROWS:
        rows = x[np.random.default_rng(seed).choice(n, PREVIEW_FIT_ROWS, replace=False)]
    mean = rows.mean(axis=0)
    if x.shape[1] >= 2 and n >= 2:
        _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
        xy = (x - mean) @ vt[:2].T
    else:
        xy = np.zeros((n, 2))
    return _to_box(np.nan_to_num(xy))[0].astype(np.float32)
