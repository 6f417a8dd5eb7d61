"""Batches of an adaptation run: the stratified order of the refresh plan, batch bounds,
and reading a batch of samples from any dataset (in-memory ``get_batch`` or item by item),
checked for non-finite values."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from protoview.errors import DatasetError


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation (N,) int64 whose every prefix holds each label in proportion.

    Samples are shuffled (``default_rng([seed, 7919])``), then ordered by
    ``(rank within their label + 0.5) / label count``: the first ``m`` samples hold
    ``round(m * n_c / N)`` (within one) of each label ``c``; unknown labels (-1) are one
    more stratum. Ties keep the shuffled order.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    n = labels.shape[0]
    shuffled = np.random.default_rng([seed, 7919]).permutation(n).astype(np.int64)
    strata = labels[shuffled]
    _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    by_stratum = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, np.int64)
    rank[by_stratum] = np.arange(n) - np.repeat(starts, counts)
    key = (rank + 0.5) / counts[inverse]
    return shuffled[np.argsort(key, kind="stable")]


def count_correct(predictions: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    known = labels >= 0
    return int((predictions[known] == labels[known]).sum()), int(known.sum())


def batch_bounds(n: int, b: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches of ``b`` over ``n`` samples; a last batch of
    one sample is merged into the one before when ``b > 1`` (train-mode BatchNorm cannot
    normalise one; with ``b == 1`` every batch is one sample)."""
    bounds = [(start, min(start + b, n)) for start in range(0, n, b)]
    if b > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def read_batch(dataset: Any, indices: np.ndarray, labels: np.ndarray | None,
               device: torch.device, where: str) -> tuple[torch.Tensor, np.ndarray]:
    """Samples ``indices`` of ``dataset`` as a float32 batch and their labels (N,) int64
    (``labels``: the dataset's, else the items'). In-memory images come in one tensor op
    (on CUDA as raw pixels over the bus); a sample that cannot be read, samples of
    different shapes, or NaN / infinite values raise DatasetError naming ``where``."""
    get_batch = getattr(dataset, "get_batch", None)
    if callable(get_batch):
        x, y = get_batch(indices, device=device) if device.type == "cuda" else get_batch(indices)
        finite = torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
        if not bool(finite.all()):
            bad = [int(i) for i in np.asarray(indices)[~finite.cpu().numpy()]]
            raise DatasetError(where, f"samples {bad[:5]} contain NaN or infinite values")
        return x, np.asarray(labels[indices] if labels is not None else y.numpy(), np.int64)
    xs, ys = [], []
    for i in indices.tolist():
        try:
            item = dataset[i]
            x, y = item[0], item[1]
        except (IndexError, KeyError, TypeError, ValueError, OSError) as exc:
            raise DatasetError(where, f"sample {i} could not be read ({exc})") from exc
        xs.append(torch.as_tensor(x, dtype=torch.float32))
        ys.append(int(y))
    try:
        batch = torch.stack(xs)
    except RuntimeError:
        shapes = sorted({tuple(x.shape) for x in xs})
        raise DatasetError(where, f"samples have different shapes {shapes[:3]}") from None
    if not bool(torch.isfinite(batch).all()):
        bad = [int(i) for i, x in zip(indices, xs, strict=True) if not bool(torch.isfinite(x).all())]
        raise DatasetError(where, f"samples {bad[:5]} contain NaN or infinite values")
    return batch, labels[indices] if labels is not None else np.asarray(ys, dtype=np.int64)
