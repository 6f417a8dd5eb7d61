"""Geometry of a feature space: class centers, CenterLoss, cosine similarity, nearest vectors.

Also holds the input checks shared by ``metrics``, ``cluster`` and ``sinkhorn``
(:func:`as_matrix`, :func:`as_labels`, :func:`check_finite_tensor`): every bad input raises
:class:`~protoview.errors.ParameterError` whose ``where`` is the parameter name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protoview.errors import ParameterError

#: Rows of the first argument handled at once by :func:`cosine_similarity_matrix` (memory bound).
CHUNK_ELEMENTS = 1 << 24


def _non_finite_problem(nan_rows: int, inf_rows: int, where: str) -> str:
    parts = []
    if nan_rows:
        parts.append(f"NaN in {nan_rows} row{'s' if nan_rows != 1 else ''}")
    if inf_rows:
        parts.append(f"Inf in {inf_rows} row{'s' if inf_rows != 1 else ''}")
    return f"{where} contain {' and '.join(parts)}"


def as_matrix(values: Any, where: str, *, dtype: Any = np.float32) -> np.ndarray:
    """Return ``values`` as a checked, C-contiguous ``(N, D)`` numpy array.

    Parameters
    ----------
    values:
        ``(N, D)`` numpy array, torch tensor (any device) or nested sequence of numbers.
    where:
        Parameter name used in the error, e.g. ``"features"``.
    dtype:
        Output dtype, float32 unless told otherwise.

    Returns
    -------
    np.ndarray
        ``(N, D)`` array of ``dtype`` with ``N >= 1``, ``D >= 1`` and only finite values.

    Raises
    ------
    ParameterError
        Not 2-D, empty, not numeric, or containing NaN / Inf ("features contain NaN in 3 rows").
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise ParameterError(where, f"cannot be read as a numeric array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise ParameterError(where, f"must be numeric, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ParameterError(where, f"must be a 2-D array (N, D), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ParameterError(where, f"is empty (shape {array.shape})")
    array = np.ascontiguousarray(array, dtype=dtype)
    # a NaN or Inf makes its row's sum non-finite: one BLAS pass, no (N, D) mask; a sum that
    # overflows from finite values falls through to the exact test
    with np.errstate(over="ignore", invalid="ignore"):
        sums = array @ np.ones(array.shape[1], array.dtype)
    if np.isfinite(sums).all():
        return array
    if not np.isfinite(array).all():
        nan_rows = int(np.isnan(array).any(axis=1).sum())
        inf_rows = int(np.isinf(array).any(axis=1).sum())
        raise ParameterError(where, _non_finite_problem(nan_rows, inf_rows, where))
    return array


def check_finite_tensor(tensor: torch.Tensor, where: str) -> None:
    """Raise :class:`ParameterError` when a 2-D tensor holds NaN or Inf (counts bad rows)."""
    if not bool(torch.isfinite(tensor).all()):
        nan_rows = int(torch.isnan(tensor).reshape(tensor.shape[0], -1).any(dim=1).sum())
        inf_rows = int(torch.isinf(tensor).reshape(tensor.shape[0], -1).any(dim=1).sum())
        raise ParameterError(where, _non_finite_problem(nan_rows, inf_rows, where))


def as_labels(values: Any, where: str, length: int | None = None) -> np.ndarray:
    """Return integer labels as a ``(N,)`` int64 array; ``-1`` means unknown.

    Raises
    ------
    ParameterError
        Not 1-D, wrong length, not integral, or below ``-1``.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ParameterError(where, f"must be a 1-D array (N,), got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ParameterError(
            where, f"has {array.shape[0]} entries, expected {length} (one per row)"
        )
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ParameterError(where, "must hold whole numbers (class indices, -1 = unknown)")
    elif array.dtype.kind not in "biu":
        raise ParameterError(where, f"must hold integers, got dtype {array.dtype}")
    labels = array.astype(np.int64)
    if labels.size and labels.min() < -1:
        raise ParameterError(where, f"holds {int(labels.min())}; use -1 for unknown labels")
    return labels


def l2_normalize(array: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise ``x / max(||x||, eps)`` like ``torch.nn.functional.normalize``; ``(N, D)`` float32."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return (array / np.maximum(norms, eps)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Centers:
    """Per-class mean features.

    Attributes
    ----------
    vectors: ``(C, D)`` float32; a class without samples has a NaN row.
    labels: ``(C,)`` int64, the class of each row (``0 .. C-1``).
    counts: ``(C,)`` int64, samples averaged into each row.
    empty_classes: ``(E,)`` int64, classes without samples (their rows are NaN).
    """

    vectors: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    empty_classes: np.ndarray


def class_centers(
    features: Any,
    labels: Any,
    num_classes: int | None = None,
    *,
    normalize_features: bool = False,
    normalize_centers: bool = False,
) -> Centers:
    """Mean feature of each class (CenterLoss's centers, computed from data).

    Parameters
    ----------
    features:
        ``(N, D)`` float features (numpy or torch).
    labels:
        ``(N,)`` int class of each sample; ``-1`` (unknown) rows are ignored. To get centers
        by *predicted* class, pass the predictions here.
    num_classes:
        ``C``; default ``max(labels) + 1``.
    normalize_features:
        L2-normalise each feature before averaging.
    normalize_centers:
        L2-normalise each center after averaging (NaN rows of empty classes stay NaN).

    Returns
    -------
    Centers
        ``vectors (C, D)`` float32 with NaN rows for empty classes, listed in ``empty_classes``.
    """
    x = as_matrix(features, "features")
    y = as_labels(labels, "labels", x.shape[0])
    known = y >= 0
    if not known.any():
        raise ParameterError("labels", "no sample has a known label (all are -1)")
    if num_classes is None:
        num_classes = int(y.max()) + 1
    if int(num_classes) < 1:
        raise ParameterError("num_classes", f"must be at least 1, got {num_classes}")
    num_classes = int(num_classes)
    if int(y.max()) >= num_classes:
        raise ParameterError(
            "labels", f"holds class {int(y.max())} but num_classes is {num_classes}"
        )
    if normalize_features:
        x = l2_normalize(x)
    sums, counts = class_sums(x, y, num_classes, keep=None if known.all() else known)
    with np.errstate(invalid="ignore", divide="ignore"):
        vectors = (sums / counts[:, None]).astype(np.float32)
    empty = np.flatnonzero(counts == 0).astype(np.int64)
    vectors[empty] = np.nan
    if normalize_centers:
        vectors = l2_normalize(vectors)
    return Centers(vectors, np.arange(num_classes, dtype=np.int64), counts, empty)


def class_sums(x: np.ndarray, y: np.ndarray, num_classes: int,
               keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the rows of each class, in float64.

    x: ``(N, D)`` float, checked; y: ``(N,)`` int64 in ``[0, num_classes)`` (no -1), or
    any ints where ``keep`` (``(N,)`` bool: the rows counted, read a chunk at a time, so no
    copy of the kept rows is made) is False.
    Returns sums ``(C, D)`` float64 and counts ``(C,)`` int64. The rows are added in order
    (``torch.index_add_``, equal to the bit to ``np.add.at`` and ~5x faster), a bounded
    number of rows converted to float64 at a time.
    """
    y = np.ascontiguousarray(y, dtype=np.int64)
    counts = np.bincount(y if keep is None else y[keep], minlength=num_classes).astype(np.int64)
    sums = torch.zeros((num_classes, x.shape[1]), dtype=torch.float64)
    step = max(1, CHUNK_ELEMENTS // (4 * x.shape[1]))
    for start in range(0, x.shape[0], step):  # rows added in order, whatever the chunks
        rows, index = x[start : start + step], y[start : start + step]
        if keep is not None:
            rows, index = rows[keep[start : start + step]], index[keep[start : start + step]]
        sums.index_add_(0, torch.from_numpy(index),
                        torch.from_numpy(np.ascontiguousarray(rows)).to(torch.float64))
    return sums.numpy(), counts


def center_loss(features: Any, labels: Any, centers: Centers | Any) -> float:
    """CenterLoss: mean over labelled samples of the squared L2 distance to the own center.

    Matches the seed's ``CenterLoss.forward`` (``tests/oracles/centerloss.py``) to 1e-6. Two
    documented deviations: (1) the seed clamps the C-1 masked-out zeros of each row to 1e-12
    as well, adding ``(C-1) * 1e-12`` per sample; we add nothing (the difference is below 1e-6
    for C < 10^6); (2) samples labelled ``-1`` are left out of sum and count. Each sample's
    distance is clamped to ``[1e-12, 1e12]`` as in the seed. Computed in float64 as
    ``||x - c||^2`` (the seed's ``||x||^2 + ||c||^2 - 2 x.c`` loses digits in float32).

    Parameters
    ----------
    features: ``(N, D)`` float.
    labels: ``(N,)`` int, ``-1`` = unknown.
    centers: :class:`Centers` or ``(C, D)`` float, row ``c`` is the center of class ``c``.
    """
    x = as_matrix(features, "features")  # float32 rows, converted a chunk at a time below
    y = as_labels(labels, "labels", x.shape[0])
    c_raw = centers.vectors if isinstance(centers, Centers) else centers
    c = _as_center_matrix(c_raw, x.shape[1])
    known = y >= 0
    if not known.any():
        raise ParameterError("labels", "no sample has a known label (all are -1)")
    if int(y.max()) >= c.shape[0]:
        raise ParameterError(
            "labels", f"holds class {int(y.max())} but there are {c.shape[0]} centers"
        )
    nan_rows = np.isnan(c).any(axis=1)
    if nan_rows[y[known]].any():
        missing = np.unique(y[known][nan_rows[y[known]]])
        raise ParameterError("centers", f"are NaN for classes {missing.tolist()} that have samples")
    # each row's distance in float64 as one (N, D) float64 array would give, a bounded number
    # of rows at a time (at 750,000 x 512 the whole copy was 3 GB and most of a live step)
    dist = np.empty(int(known.sum()), np.float64)
    step, done = max(1, CHUNK_ELEMENTS // (4 * x.shape[1])), 0
    for start in range(0, x.shape[0], step):
        keep = known[start : start + step]
        rows = x[start : start + step][keep].astype(np.float64)
        own = c[y[start : start + step][keep]]
        dist[done : done + rows.shape[0]] = ((rows - own) ** 2).sum(axis=1)
        done += rows.shape[0]
    return float(np.clip(dist, 1e-12, 1e12).mean())


def _as_center_matrix(values: Any, dim: int) -> np.ndarray:
    """``(C, D)`` float64 centers; NaN rows (empty classes) allowed, Inf and wrong D are not."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    c = np.asarray(values, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ParameterError(
            "centers", f"must be a non-empty 2-D array (C, D), got shape {c.shape}"
        )
    if c.shape[1] != dim:
        raise ParameterError("centers", f"have dimension {c.shape[1]} but features have {dim}")
    if np.isinf(c).any():
        raise ParameterError("centers", "contain Inf")
    return c


def _check_pair_dims(a_shape: tuple[int, ...], b_shape: tuple[int, ...], b_name: str) -> None:
    if a_shape[1] != b_shape[1]:
        raise ParameterError(
            b_name, f"have dimension {b_shape[1]} but the first input has {a_shape[1]}"
        )


def cosine_similarity_matrix(a: Any, b: Any, *, names: tuple[str, str] = ("a", "b")) -> Any:
    """Cosine similarity of every row of ``a`` with every row of ``b`` (the seed's formula).

    ``normalize(a) @ normalize(b).T``, equal to
    ``F.cosine_similarity(a.unsqueeze(1), b.unsqueeze(0), dim=2)``; zero rows give 0.
    Processed in row chunks of ``a`` so that temporaries stay bounded.

    Parameters
    ----------
    a: ``(N, D)`` float, numpy or torch.
    b: ``(M, D)`` float, numpy or torch.
    names: the parameter names used in error messages.

    Returns
    -------
    ``(N, M)``: a torch tensor (on the tensor input's device, in its float dtype) when either
    input is a tensor, else a float32 numpy array.
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return _cosine_torch(a, b, names)
    x = as_matrix(a, names[0])
    y = as_matrix(b, names[1])
    _check_pair_dims(x.shape, y.shape, names[1])
    out = np.empty((x.shape[0], y.shape[0]), dtype=np.float32)
    for rows, block in _cosine_blocks(x, l2_normalize(y)):
        out[rows] = block
    return out


def _cosine_blocks(x: np.ndarray, y_unit: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, normalize(x[rows]) @ y_unit.T)`` in chunks of bounded size."""
    step = max(1, CHUNK_ELEMENTS // max(y_unit.shape[0], x.shape[1]))
    for start in range(0, x.shape[0], step):
        rows = slice(start, start + step)
        yield rows, l2_normalize(x[rows]) @ y_unit.T


def _as_tensor(values: Any, where: str, like: torch.Tensor | None) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        tensor = values.detach()
    else:
        tensor = torch.from_numpy(as_matrix(values, where))
    if like is not None:
        tensor = tensor.to(device=like.device)
    if not tensor.is_floating_point():
        tensor = tensor.float()
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ParameterError(
            where, f"must be a non-empty 2-D array (N, D), got shape {tuple(tensor.shape)}"
        )
    check_finite_tensor(tensor, where)
    return tensor


def _cosine_torch(a: Any, b: Any, names: tuple[str, str]) -> torch.Tensor:
    like = a if isinstance(a, torch.Tensor) else b
    x = _as_tensor(a, names[0], like)
    y = _as_tensor(b, names[1], like)
    _check_pair_dims(tuple(x.shape), tuple(y.shape), names[1])
    dtype = torch.promote_types(x.dtype, y.dtype)
    x, y = x.to(dtype), y.to(dtype)
    y = torch.nn.functional.normalize(y, dim=1)
    out = torch.empty((x.shape[0], y.shape[0]), dtype=dtype, device=x.device)
    step = max(1, CHUNK_ELEMENTS // max(y.shape[0], x.shape[1]))
    for start in range(0, x.shape[0], step):
        out[start : start + step] = (
            torch.nn.functional.normalize(x[start : start + step], dim=1) @ y.T
        )
    return out


def nearest(
    features: Any, vectors: Any, vector_classes: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Most cosine-similar row of ``vectors`` for every feature.

    Parameters
    ----------
    features: ``(N, D)`` float.
    vectors: ``(M, D)`` float (centers, proxies, prototypes); NaN rows (empty classes) are
        never chosen.
    vector_classes: ``(M,)`` int class of each vector; default ``arange(M)``.

    Returns
    -------
    indices: ``(N,)`` int64 row of ``vectors``.
    classes: ``(N,)`` int64 ``vector_classes[indices]``.
    """
    x = as_matrix(features, "features")
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ParameterError(
            "vectors", f"must be a non-empty 2-D array (M, D), got shape {v.shape}"
        )
    if v.shape[1] != x.shape[1]:
        raise ParameterError(
            "vectors", f"have dimension {v.shape[1]} but features have {x.shape[1]}"
        )
    if np.isinf(v).any():
        raise ParameterError("vectors", "contain Inf")
    usable = ~np.isnan(v).any(axis=1)
    if not usable.any():
        raise ParameterError("vectors", "are all NaN (no class has samples)")
    rows = np.flatnonzero(usable)
    indices = np.empty(x.shape[0], dtype=np.int64)
    for chunk, sims in _cosine_blocks(x, l2_normalize(v[rows])):
        indices[chunk] = rows[np.argmax(sims, axis=1)]
    if vector_classes is None:
        return indices, indices.copy()
    classes = as_labels(vector_classes, "vector_classes", v.shape[0])
    return indices, classes[indices]


def nearest_l2(features: Any, vectors: Any, chunk: int = 65536) -> np.ndarray:
    """The row of ``vectors`` (M, D) nearest to each feature (N, D) in squared Euclidean
    distance, as k-means assigns its members: ``(N,)`` int64. Computed in float64, ``chunk``
    rows of ``features`` at a time."""
    x = np.asarray(features)
    v = np.asarray(vectors, np.float64)
    if v.ndim != 2 or v.shape[0] == 0 or x.ndim != 2 or v.shape[1] != x.shape[1]:
        raise ParameterError("vectors", f"must be a non-empty (M, {x.shape[-1]}) array, got "
                                        f"shape {v.shape}")
    v2 = (v ** 2).sum(1)
    out = np.empty(len(x), np.int64)
    for start in range(0, len(x), chunk):
        f = x[start:start + chunk].astype(np.float64)
        out[start:start + chunk] = (-2.0 * f @ v.T + v2).argmin(axis=1)
    return out

