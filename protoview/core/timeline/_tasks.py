"""Class-incremental runs: the classes grouped by task, and the numbers PyCIL reports.

A class-incremental run (PyCIL's layout) saves one checkpoint per task, its head grown by
that task's classes: head class ``k`` is the data's class ``order[k]`` (PyCIL's seeded
class order), so a head of ``T`` classes holds the data classes ``order[:T]`` and task
``j`` is the head classes ``bounds[j] .. bounds[j + 1] - 1``. :class:`Tasks` holds the
sizes (``--tasks 10,10,10`` or the checkpoints' head sizes, :func:`tasks_for`) and the
order. Per checkpoint (:func:`task_numbers`):

- **accuracy per task**: over the labelled samples of each task's classes (PyCIL's
  grouped accuracy, ``utils/toolkit.py`` ``accuracy``, in tasks rather than its fixed
  blocks of 10 classes), NaN for a task its head does not hold yet;
- **old / new**: the classes of the earlier tasks, and of the newest task its head holds
  (PyCIL's ``old`` / ``new`` with ``nb_old`` = its known classes);
- **weight norms**: each class's mean L2 norm over its head rows (its ``nb_proxy``
  proxies), and per task; WA's ``gamma`` (``models/wa.py`` ``weight_align``: the mean norm
  of the old classes' rows over that of the newest task's, the factor WA multiplies the
  new rows by; > 1 means the new classes' rows are the longer ones, the bias towards new
  classes that WA and BiC correct).

Across the timeline (:func:`forgetting`): the forgetting of task ``j`` at checkpoint
``s`` is the drop from its best accuracy so far, ``max_{s' <= s} acc[s', j] - acc[s, j]``
(PyCIL's ``trainer.py``: ``max(np_acctable, axis=1) - np_acctable[:, task]``); its summary
is the mean over every task but the newest at the last checkpoint (:func:`mean_forgetting`)
and the average incremental accuracy is the mean accuracy after each task
(:func:`average_incremental_accuracy`, PyCIL's ``sum(cnn_curve["top1"]) / len``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoview.errors import ParameterError

_OPTION = "--tasks"


@dataclass(frozen=True)
class Tasks:
    """The tasks of a class-incremental run: ``sizes`` (classes per task, in head order),
    ``order`` (head class ``k`` is data class ``order[k]``; its length is the classes),
    ``source`` (``"--tasks"`` or ``"the heads' sizes"``)."""

    sizes: tuple[int, ...]
    order: tuple[int, ...]
    source: str

    @property
    def bounds(self) -> tuple[int, ...]:
        """``(0, s1, s1 + s2, ..., T)``: task ``j`` is head classes ``bounds[j]..bounds[j+1]-1``."""
        return tuple(int(v) for v in np.concatenate([[0], np.cumsum(self.sizes)]))

    @property
    def count(self) -> int:
        return len(self.sizes)

    def task_of_data_class(self) -> np.ndarray:
        """(C,) int64: the task of each data class (its head class's task)."""
        head_task = np.repeat(np.arange(self.count), self.sizes)
        out = np.full(len(self.order), -1, np.int64)
        out[np.asarray(self.order, np.int64)] = head_task
        return out

    def seen(self, head_classes: int) -> int:
        """How many tasks a head of ``head_classes`` classes holds (its classes are a task
        boundary, checked by :func:`tasks_for`)."""
        return int(np.searchsorted(self.bounds, head_classes, side="right") - 1)

    def label(self, j: int) -> str:
        """``"task 2 (classes 10-19)"``: the head classes of task ``j`` (0-based)."""
        lo, hi = self.bounds[j], self.bounds[j + 1] - 1
        return f"task {j + 1} ({lo}-{hi})"


def parse_tasks(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"10,10,10"`` (or a sequence) as task sizes, each a whole number >= 1
    (ParameterError naming ``--tasks`` otherwise)."""
    words = text.replace(" ", "").split(",") if isinstance(text, str) else list(text)
    try:
        sizes = tuple(int(w) for w in words)
    except (TypeError, ValueError):
        raise ParameterError(_OPTION, f"takes the classes of each task separated by commas "
                                      f"(e.g. 10,10,10), got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ParameterError(_OPTION, f"every task holds at least one class, got {text!r}")
    return sizes


def tasks_for(option: str | Sequence[int] | None, head_sizes: Sequence[int],
              names: Sequence[str], order: Sequence[int]) -> Tasks | None:
    """The tasks of a timeline whose checkpoints' heads hold ``head_sizes`` classes
    (``names`` the files, for the messages), the data's classes in head ``order``.

    ``option`` (``--tasks``): the sizes, which must add up to the largest head and have
    every head's size as a task boundary; None: read from the heads' sizes, each head
    that grows adding a task (None when no head grows: not a class-incremental run).
    ParameterError naming ``--tasks`` when the sizes do not fit or no head grows.
    """
    largest = max(head_sizes)
    grows = len(set(head_sizes)) > 1
    if option is None or option == "":
        if not grows:
            return None
        bounds = sorted(set(head_sizes))
        sizes = tuple(int(b - a) for a, b in zip([0, *bounds[:-1]], bounds, strict=True))
        return Tasks(sizes, tuple(int(v) for v in order), "the heads' sizes")
    sizes = parse_tasks(option)
    text = ",".join(str(s) for s in sizes)
    if not grows:
        raise ParameterError(
            _OPTION, f"every checkpoint's head holds {largest} classes: task sizes group the "
                     "classes of a class-incremental run, whose head grows by a task (give "
                     "its task checkpoints, or leave --tasks out)")
    if sum(sizes) != largest:
        raise ParameterError(
            _OPTION, f"{text} adds up to {sum(sizes)} classes, but the largest head holds "
                     f"{largest}: the task sizes must add up to it")
    bounds = set(np.cumsum(sizes).tolist())
    for name, size in zip(names, head_sizes, strict=True):
        if size not in bounds:
            raise ParameterError(
                _OPTION, f"{name}'s head holds {size} classes, which is not the end of a task "
                         f"of {text} (ends {', '.join(str(b) for b in sorted(bounds))})")
    return Tasks(sizes, tuple(int(v) for v in order), "--tasks")


@dataclass
class TaskNumbers:
    """One checkpoint's numbers by task (see the module docstring): ``accuracy`` (tasks,)
    NaN for a task its head lacks or without labelled samples; ``old`` / ``new`` accuracy;
    ``class_norm`` (C,) each data class's mean L2 norm of its head rows (NaN: not in the
    head); ``task_norm`` (tasks,) the mean over each task's classes; ``wa_gamma`` (NaN for
    the first task); ``seen`` the tasks its head holds; ``forgetting`` (tasks,) filled by
    :func:`forgetting` (NaN for a task its head lacks)."""

    accuracy: np.ndarray
    old: float
    new: float
    class_norm: np.ndarray
    task_norm: np.ndarray
    wa_gamma: float
    seen: int
    forgetting: np.ndarray | None = None


def _mean_where(hit: np.ndarray, mask: np.ndarray) -> float:
    n = int(mask.sum())
    return float(hit[mask].sum() / n) if n else float("nan")


def task_accuracy(predictions: np.ndarray, labels: np.ndarray, tasks: Tasks,
                  head_classes: int) -> tuple[np.ndarray, float, float]:
    """(accuracy per task (tasks,), old, new) of a head of ``head_classes`` classes:
    ``predictions`` and ``labels`` (N,) in the data's classes (-1: unlabelled), each task
    over its labelled samples (NaN for a task the head lacks or without samples); old: the
    tasks before the newest the head holds, new: that newest task (PyCIL's ``old`` /
    ``new``; NaN where none)."""
    predictions = np.asarray(predictions, np.int64)
    labels = np.asarray(labels, np.int64)
    task_of = tasks.task_of_data_class()
    valid = (labels >= 0) & (labels < len(task_of))
    label_task = np.full(len(labels), -1, np.int64)
    label_task[valid] = task_of[labels[valid]]
    hit = predictions == labels
    seen = tasks.seen(head_classes)
    out = np.full(tasks.count, np.nan)
    for j in range(seen):
        out[j] = _mean_where(hit, label_task == j)
    newest = seen - 1
    old = _mean_where(hit, (label_task >= 0) & (label_task < newest))
    new = _mean_where(hit, label_task == newest) if newest >= 0 else float("nan")
    return out, old, new


def class_norms(rows: Any, row_classes: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes,) float64: each class's mean L2 norm over its head ``rows`` (R, D)
    (a tensor or array; ``torch.norm(p=2, dim=1)`` as PyCIL takes it), NaN for a class
    without rows; ``row_classes`` (R,) the data class of each row."""
    import torch

    norms = torch.norm(torch.as_tensor(rows).detach().float(), p=2, dim=1).cpu().numpy()
    row_classes = np.asarray(row_classes, np.int64)
    total = np.bincount(row_classes, weights=norms.astype(np.float64), minlength=num_classes)
    count = np.bincount(row_classes, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)[:num_classes]


def wa_gamma(rows: Any, new_rows: int) -> float:
    """WA's ``gamma`` for head ``rows`` (R, D) in head order whose last ``new_rows`` rows
    are the newest task's: ``mean(norm(old rows)) / mean(norm(new rows))``, computed as
    PyCIL's ``weight_align`` does (``utils/inc_net.py``, float32 torch); NaN when there
    are no old or no new rows."""
    import torch

    weights = torch.as_tensor(rows).detach()
    if new_rows < 1 or new_rows >= weights.shape[0]:
        return float("nan")
    newnorm = torch.norm(weights[-new_rows:, :], p=2, dim=1)
    oldnorm = torch.norm(weights[:-new_rows, :], p=2, dim=1)
    return float(torch.mean(oldnorm) / torch.mean(newnorm))


def task_numbers(predictions: np.ndarray, labels: np.ndarray, tasks: Tasks,
                 head_classes: int, rows: Any, row_classes: np.ndarray,
                 nb_proxy: int) -> TaskNumbers:
    """:class:`TaskNumbers` of one checkpoint: its predictions (data classes), the data's
    labels, its head of ``head_classes`` classes and its rows (head order) with their data
    classes, ``nb_proxy`` rows a class."""
    accuracy, old, new = task_accuracy(predictions, labels, tasks, head_classes)
    c = len(tasks.order)
    norm = class_norms(rows, row_classes, c)
    task_of = tasks.task_of_data_class()
    seen = tasks.seen(head_classes)
    task_norm = np.full(tasks.count, np.nan)
    for j in range(seen):
        values = norm[task_of == j]
        task_norm[j] = float(np.mean(values)) if np.isfinite(values).all() else float("nan")
    newest = tasks.sizes[seen - 1] if seen >= 1 else 0
    gamma = wa_gamma(rows, newest * int(nb_proxy)) if seen >= 2 else float("nan")
    return TaskNumbers(accuracy, old, new, norm, task_norm, gamma, seen)


def forgetting(accuracy: np.ndarray) -> np.ndarray:
    """(S, tasks) float64: at checkpoint ``s`` the drop of each task from its best accuracy
    at any checkpoint up to ``s``, ``max_{s' <= s} acc[s', j] - acc[s, j]`` (>= 0); NaN
    where ``accuracy`` (S, tasks) is NaN (a task not in the head yet)."""
    acc = np.asarray(accuracy, np.float64)
    best = np.fmax.accumulate(acc, axis=0)
    return np.where(np.isnan(acc), np.nan, best - acc)


def mean_forgetting(accuracy: np.ndarray, seen: int) -> float:
    """PyCIL's forgetting summary at the last checkpoint, whose head holds ``seen`` tasks:
    the mean forgetting of every task but the newest (``np.mean((max - last)[:task])``);
    NaN with one task or none labelled."""
    last = forgetting(accuracy)[-1, : max(seen - 1, 0)]
    return float(np.mean(last)) if len(last) and np.isfinite(last).all() else float("nan")


def task_ends(head_sizes: Sequence[int]) -> list[int]:
    """The index of the last checkpoint of each head size, in timeline order (the
    checkpoint that ends each task)."""
    last: dict[int, int] = {}
    for i, size in enumerate(head_sizes):
        last[int(size)] = i
    return sorted(last.values())


def average_incremental_accuracy(accuracies: Sequence[float], head_sizes: Sequence[int]) -> float:
    """PyCIL's average incremental accuracy: the mean of the accuracy (over the classes seen
    so far) at the end of each task (:func:`task_ends`; every checkpoint when there is one
    per task). NaN when one of them is."""
    values = np.asarray(accuracies, np.float64)[task_ends(head_sizes)]
    return float(np.mean(values)) if len(values) else float("nan")
