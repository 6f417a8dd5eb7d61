"""Accuracy-type numbers of a classifier and of a clustering.

Labels ``-1`` mean "unknown" and are left out everywhere. When no sample has a known label
the scores are NaN (an unlabelled dataset is not an error); malformed input raises
:class:`~protoview.errors.ParameterError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from protoview.core.geometry import Centers, as_labels, as_matrix, check_finite_tensor, nearest
from protoview.core.heads import predicted_classes
from protoview.errors import ParameterError


def as_predictions(logits_or_preds: Any, where: str = "logits_or_preds") -> np.ndarray:
    """``(N, C)`` logits -> ``argmax`` over classes (seed: ``torch.max(logits, dim=1)``);
    ``(N,)`` predictions pass through. Returns ``(N,)`` int64, ``N >= 1``."""
    if isinstance(logits_or_preds, torch.Tensor):
        logits_or_preds = logits_or_preds.detach().cpu().numpy()
    values = np.asarray(logits_or_preds)
    if values.ndim == 2:  # the one argmax (no map: the logits' own classes)
        return predicted_classes(as_matrix(values, where))
    preds = as_labels(values, where)
    if preds.shape[0] == 0:
        raise ParameterError(where, "is empty")
    return preds


def _checked_pair(preds: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    p = as_predictions(preds, where)
    y = as_labels(labels, "labels", p.shape[0])
    return p, y


def _check_num_classes(num_classes: int, *arrays: np.ndarray) -> int:
    if int(num_classes) < 1:
        raise ParameterError("num_classes", f"must be at least 1, got {num_classes}")
    for name, array in zip(("preds", "labels"), arrays, strict=False):
        if array.size and int(array.max()) >= int(num_classes):
            raise ParameterError(
                name, f"holds class {int(array.max())} but num_classes is {num_classes}"
            )
    return int(num_classes)


def accuracy(logits_or_preds: Any, labels: Any) -> float:
    """Fraction of labelled samples predicted right.

    Parameters
    ----------
    logits_or_preds: ``(N, C)`` float logits (argmax is taken) or ``(N,)`` int predictions.
    labels: ``(N,)`` int, ``-1`` = unknown (ignored).

    Returns
    -------
    float in ``[0, 1]``; NaN when no label is known.
    """
    preds, y = _checked_pair(logits_or_preds, labels, "logits_or_preds")
    known = y >= 0
    if not known.any():
        return float("nan")
    return float(np.mean(preds[known] == y[known]))


def per_class_accuracy(preds: Any, labels: Any, num_classes: int) -> np.ndarray:
    """Accuracy within each true class.

    Parameters
    ----------
    preds: ``(N,)`` int predictions (or ``(N, C)`` logits).
    labels: ``(N,)`` int, ``-1`` ignored.
    num_classes: ``C``.

    Returns
    -------
    ``(C,)`` float32; NaN for a class without labelled samples.
    """
    p, y = _checked_pair(preds, labels, "preds")
    num_classes = _check_num_classes(num_classes, y)
    known = y >= 0
    totals = np.bincount(y[known], minlength=num_classes)
    hits = np.bincount(y[known & (p == y)], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hits / totals).astype(np.float32)


def confusion_matrix(preds: Any, labels: Any, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs; equals sklearn's with ``labels=range(C)``.

    Parameters
    ----------
    preds: ``(N,)`` int predictions in ``[0, C)`` (or ``(N, C)`` logits); ``-1`` ignored.
    labels: ``(N,)`` int true classes in ``[0, C)``; ``-1`` ignored.
    num_classes: ``C``.

    Returns
    -------
    ``(C, C)`` int64, rows = true class, columns = predicted class.
    """
    p, y = _checked_pair(preds, labels, "preds")
    num_classes = _check_num_classes(num_classes, p, y)
    keep = (y >= 0) & (p >= 0)
    flat = y[keep] * num_classes + p[keep]
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def nearest_center_accuracy(features: Any, labels: Any, centers: Centers | Any) -> float:
    """Accuracy of classifying each feature by its most cosine-similar class center.

    Parameters
    ----------
    features: ``(N, D)`` float.
    labels: ``(N,)`` int, ``-1`` ignored.
    centers: :class:`Centers` or ``(C, D)`` float with row ``c`` = class ``c``; NaN rows
        (empty classes) are never chosen.
    """
    if isinstance(centers, Centers):
        _, classes = nearest(features, centers.vectors, centers.labels)
    else:
        _, classes = nearest(features, centers)
    return accuracy(classes, labels)


def nearest_proxy_accuracy(features: Any, labels: Any, proxies: Any, proxy_classes: Any) -> float:
    """Accuracy of classifying each feature by the class of its most cosine-similar proxy.

    Parameters
    ----------
    features: ``(N, D)`` float.
    labels: ``(N,)`` int, ``-1`` ignored.
    proxies: ``(C*P, D)`` float classifier weight rows (``head_proxies`` vectors).
    proxy_classes: ``(C*P,)`` int class of each proxy.
    """
    _, classes = nearest(features, proxies, proxy_classes)
    return accuracy(classes, labels)


def _hungarian_accuracy(assignments: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes.

    With more clusters than classes the unmatched clusters count as wrong (and vice versa).
    Inputs: ``(N,)`` int64 each, all labels known.
    """
    clusters, cluster_idx = np.unique(assignments, return_inverse=True)
    classes, class_idx = np.unique(labels, return_inverse=True)
    matched = match_groups_to_classes(cluster_idx, class_idx, clusters.size, classes.size)
    return float(np.mean(matched[cluster_idx] == class_idx))


def match_groups_to_classes(groups: Any, labels: Any, n_groups: int, n_classes: int) -> np.ndarray:
    """For each of ``n_groups`` groups (clusters, prototypes) the class it matches, or -1.

    groups, labels: ``(N,)`` int, -1 unknown. Groups and classes are matched one to one by
    the largest overlap (Hungarian, ``scipy.optimize.linear_sum_assignment``, as
    :func:`clustering_scores`' accuracy); a group with no member of its matched class (or,
    with more groups than classes, a group left over) gets -1. Returns ``(n_groups,)`` int64.
    """
    g = np.asarray(groups, np.int64)
    y = np.asarray(labels, np.int64)
    out = np.full(max(int(n_groups), 0), -1, np.int64)
    ok = (g >= 0) & (g < n_groups) & (y >= 0) & (y < n_classes)
    if not ok.any() or n_groups <= 0 or n_classes <= 0:
        return out
    table = np.bincount(g[ok] * n_classes + y[ok], minlength=n_groups * n_classes)
    table = table.reshape(n_groups, n_classes)
    rows, cols = linear_sum_assignment(table, maximize=True)
    keep = table[rows, cols] > 0
    out[rows[keep]] = cols[keep]
    return out


def clustering_scores(assignments: Any, labels: Any) -> dict[str, float]:
    """How well a clustering agrees with the labels.

    Parameters
    ----------
    assignments: ``(N,)`` int cluster of each sample (``>= 0``).
    labels: ``(N,)`` int, ``-1`` ignored.

    Returns
    -------
    ``{"nmi", "ari", "hungarian_accuracy"}``: sklearn's ``normalized_mutual_info_score`` and
    ``adjusted_rand_score``, and the Hungarian-matched accuracy (scipy
    ``linear_sum_assignment``; the number of clusters may differ from the number of
    classes). All NaN when no label is known.
    """
    a = as_labels(assignments, "assignments")
    if a.shape[0] == 0:
        raise ParameterError("assignments", "is empty")
    if a.min() < 0:
        raise ParameterError("assignments", "must be cluster indices >= 0")
    y = as_labels(labels, "labels", a.shape[0])
    known = y >= 0
    if not known.any():
        return {"nmi": float("nan"), "ari": float("nan"), "hungarian_accuracy": float("nan")}
    a, y = a[known], y[known]
    return {
        "nmi": float(normalized_mutual_info_score(y, a)),
        "ari": float(adjusted_rand_score(y, a)),
        "hungarian_accuracy": _hungarian_accuracy(a, y),
    }


def softmax_entropy(logits: Any) -> Any:
    """Entropy of the softmax of each row, as TSD: ``-(softmax * log_softmax).sum(1)``.

    Parameters
    ----------
    logits: ``(N, C)`` float, numpy or torch.

    Returns
    -------
    ``(N,)`` entropies in nats: a tensor (same device, gradient kept) for tensor input,
    else float32 numpy.
    """
    if not isinstance(logits, torch.Tensor):
        return softmax_entropy(torch.from_numpy(as_matrix(logits, "logits"))).numpy()
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ParameterError(
            "logits", f"must be a non-empty 2-D array (N, C), got shape {tuple(logits.shape)}"
        )
    if not logits.is_floating_point():
        logits = logits.float()
    check_finite_tensor(logits.detach(), "logits")
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


@dataclass(frozen=True)
class ErrorGroup:
    """One group (a k-means cluster) and the head's mistakes in it.

    group: its index; members: ``(n,)`` int64 its samples' rows (all of them, labelled or
    not); labelled: members with a known label; errors: those predicted wrong; error_rate:
    ``errors / labelled`` (NaN when none is labelled); class_mix: ``[(class, count), ...]``
    the true classes of its labelled members, most frequent first.
    """

    group: int
    members: np.ndarray
    labelled: int
    errors: int
    error_rate: float
    class_mix: list[tuple[int, int]]


def error_groups(groups: Any, preds: Any, labels: Any) -> list[ErrorGroup]:
    """The groups ranked by the head's error rate among their labelled members (then by the
    number of errors, then by index); groups without a labelled member come last.

    groups: ``(N,)`` int group of each sample (``>= 0``; -1 left out); preds: ``(N,)`` int
    predictions (or ``(N, C)`` logits); labels: ``(N,)`` int, ``-1`` unknown.
    """
    g = as_labels(groups, "groups")
    p, y = _checked_pair(preds, labels, "preds")
    if g.shape[0] != y.shape[0]:
        raise ParameterError("groups", f"has {g.shape[0]} entries, expected {y.shape[0]}")
    rows = []
    for group in np.unique(g[g >= 0]):
        members = np.flatnonzero(g == group)
        known = members[y[members] >= 0]
        errors = int(np.sum(p[known] != y[known]))
        classes, counts = np.unique(y[known], return_counts=True)
        order = np.lexsort((classes, -counts))
        rate = errors / known.size if known.size else float("nan")
        mix = [(int(classes[i]), int(counts[i])) for i in order]
        rows.append(ErrorGroup(int(group), members, int(known.size), errors, rate, mix))
    rows.sort(key=lambda r: (r.labelled == 0, -(r.error_rate if r.labelled else 0.0),
                             -r.errors, r.group))
    return rows
