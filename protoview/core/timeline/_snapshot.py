"""A timeline as a snapshot, in the layout of an adaptation run's (so ``info``, the
window's replay and ``export`` read it), and its movers read back from one.

Each checkpoint is one step: a ``timeline`` frame (its map, predictions, accuracy and its
file as the frame's ``checkpoint`` attribute) and a ``history`` row (``accuracy``,
``head_classes``, ``evaluated``, ``knn_change``, ``map_held``, ``seconds``,
``map_seconds``, and the ragged ``class_accuracy`` and ``knn_indices``); the root state
is the last checkpoint's. A class-incremental run (tasks) adds the history columns
``task_accuracy``, ``task_forgetting``, ``task_norm``, ``class_norm`` (ragged),
``old_accuracy``, ``new_accuracy``, ``wa_gamma``, the root attributes ``tasks`` and
``class_order`` (JSON lists) and the metrics ``average_incremental_accuracy`` and
``forgetting``; :func:`snapshot_tasks` reads them back. Each checkpoint's geometry (NC1-NC4,
k-NN accuracy, linear CKA to the first) is a row of ``metrics/geometry`` (run 0, its step). See docs/snapshot-format.md, "A
timeline of checkpoints".
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from protoview.core.timeline._build import Timeline
from protoview.core.timeline._movers import Movers, movers_between
from protoview.errors import ParameterError, SnapshotError

#: The root ``method`` of a timeline snapshot.
TIMELINE_METHOD = "timeline"


def _padded(frame: dict, proxies: int) -> dict:
    """``frame`` with its proxies' positions as ``proxies`` rows: the rows its head lacks
    (classes that have not arrived yet) NaN, so that every frame has the last head's rows."""
    out = dict(frame)
    xy = np.asarray(frame["proxies_embedding"], np.float32).reshape(-1, 2)
    rows = np.full((proxies, 2), np.nan, np.float32)
    rows[: min(proxies, len(xy))] = xy[:proxies]
    out["proxies_embedding"] = rows
    return out


def timeline_to_snapshot(timeline: Timeline, *, with_features: bool = True):
    """A :class:`~protoview.core.snapshot.Snapshot` of ``timeline``: the last checkpoint's
    state, one history row and one timeline frame per checkpoint (steps 1..T)."""
    from protoview.core.state import state_to_snapshot

    state, steps = timeline.state, timeline.steps
    snap = state_to_snapshot(state, with_features=with_features)
    last = steps[-1]
    snap.attrs.update(
        method=TIMELINE_METHOD, step=last.step, params={"k": timeline.k},
        checkpoint=last.path, checkpoint_sha256=last.sha256, dataset=timeline.dataset,
        timeline_checkpoints=json.dumps([s.path for s in steps]),
    )
    snap.history = {
        "step": np.array([s.step for s in steps], np.int64),
        "accuracy": np.array([s.accuracy for s in steps], np.float64),
        "head_classes": np.array([s.head_classes for s in steps], np.int64),
        "evaluated": np.array([s.evaluated for s in steps], np.int64),
        "knn_change": np.array([s.knn_change for s in steps], np.float64),
        "map_held": np.array([s.map_held for s in steps], np.float64),
        "seconds": np.array([s.seconds for s in steps], np.float64),
        "map_seconds": np.array([s.map_seconds for s in steps], np.float64),
        "class_accuracy": [np.asarray(s.class_accuracy, np.float64) for s in steps],
        "knn_indices": [np.asarray(s.knn, np.int64).reshape(-1) for s in steps],
    }
    snap.metrics["knn_k"] = int(timeline.k)
    if timeline.class_order:
        snap.attrs["class_order_source"] = timeline.class_order
    if timeline.tasks is not None:
        _task_fields(snap, timeline)
    proxies = len(state.proxies)
    snap.timeline = [_padded(s.frame, proxies) for s in steps]
    rows = [s.geometry for s in steps if s.geometry is not None]
    if rows:
        from protoview.core.measures import geometry_table

        snap.geometry = geometry_table(rows)
        snap.geometry_attrs = {"versus": "the first checkpoint"}
    return snap


def _task_fields(snap: Any, timeline: Timeline) -> None:
    tasks, steps = timeline.tasks, timeline.steps
    numbers = [s.tasks for s in steps]
    snap.attrs.update(tasks=json.dumps(list(tasks.sizes)), class_order=json.dumps(list(tasks.order)),
                      tasks_source=tasks.source)
    forgetting = timeline.forgetting_matrix()
    snap.history.update({
        "task_accuracy": [np.asarray(n.accuracy, np.float64) for n in numbers],
        "task_forgetting": [np.asarray(f, np.float64) for f in forgetting],
        "task_norm": [np.asarray(n.task_norm, np.float64) for n in numbers],
        "class_norm": [np.asarray(n.class_norm, np.float64) for n in numbers],
        "old_accuracy": np.array([n.old for n in numbers], np.float64),
        "new_accuracy": np.array([n.new for n in numbers], np.float64),
        "wa_gamma": np.array([n.wa_gamma for n in numbers], np.float64),
    })
    snap.metrics["average_incremental_accuracy"] = timeline.average_incremental_accuracy()
    snap.metrics["forgetting"] = timeline.mean_forgetting()


def snapshot_tasks(snap: Any) -> dict[str, Any] | None:
    """The class-incremental numbers of a timeline snapshot, or None (no tasks; a file
    written before they existed): ``sizes`` and ``order`` (lists), ``task_of_class`` (C,)
    int64 (each data class's task, 0-based: what an old / new colouring needs), ``accuracy`` /
    ``forgetting`` / ``task_norm`` (steps, tasks), ``class_norm`` (steps, C), ``old``,
    ``new``, ``wa_gamma`` (steps,), ``average_incremental_accuracy``, ``forgetting_mean``."""
    if "task_accuracy" not in snap.history or "tasks" not in snap.attrs:
        return None
    try:
        sizes = [int(v) for v in json.loads(str(snap.attrs["tasks"]))]
        order = [int(v) for v in json.loads(str(snap.attrs.get("class_order", "[]")))]
    except (TypeError, ValueError):
        raise SnapshotError("attrs/tasks", "holds no JSON list of task sizes") from None
    h = snap.history

    def stacked(name: str) -> np.ndarray:
        return np.stack([np.asarray(v, np.float64) for v in h[name]])

    task_of_class = np.full(len(order), -1, np.int64)
    task_of_class[np.asarray(order, np.int64)] = np.repeat(np.arange(len(sizes)), sizes)[:len(order)]
    return {
        "sizes": sizes, "order": order, "task_of_class": task_of_class,
        "accuracy": stacked("task_accuracy"),
        "forgetting": stacked("task_forgetting"), "task_norm": stacked("task_norm"),
        "class_norm": stacked("class_norm"),
        "old": np.asarray(h["old_accuracy"], np.float64),
        "new": np.asarray(h["new_accuracy"], np.float64),
        "wa_gamma": np.asarray(h["wa_gamma"], np.float64),
        "average_incremental_accuracy": float(snap.metrics.get("average_incremental_accuracy",
                                                               float("nan"))),
        "forgetting_mean": float(snap.metrics.get("forgetting", float("nan"))),
    }


def is_timeline_snapshot(snap: Any) -> bool:
    """The snapshot holds a timeline of checkpoints (not an adaptation run)."""
    return snap.attrs.get("method") == TIMELINE_METHOD and "knn_indices" in snap.history


def timeline_checkpoints(snap: Any) -> list[str]:
    """The checkpoint files of a timeline snapshot, in step order (empty for other files)."""
    try:
        names = json.loads(str(snap.attrs.get("timeline_checkpoints", "[]")))
    except ValueError:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def snapshot_movers(snap: Any, a: int | str, b: int | str, top: int | None = None) -> Movers:
    """The movers between steps ``a`` and ``b`` (numbers 1..T or file names) of a timeline
    snapshot, from its stored neighbour lists (no model, no features needed)."""
    if not is_timeline_snapshot(snap):
        raise SnapshotError("snapshot", "holds no timeline of checkpoints (no history/knn_indices)")
    steps = [int(s) for s in snap.history["step"]]
    names = timeline_checkpoints(snap)
    n = len(snap.samples["labels"])
    lists = snap.history["knn_indices"]
    k = int(snap.metrics.get("knn_k", len(lists[0]) // max(n, 1)))

    def index(which: int | str) -> int:
        text = str(which)
        if text.isdigit() and int(text) in steps:
            return steps.index(int(text))
        for i, name in enumerate(names):
            if text == name or text == name.rsplit("/", 1)[-1]:
                return i
        raise ParameterError("--movers", f"no checkpoint {text!r} in the timeline: give its "
                                         f"step ({steps[0]} to {steps[-1]}) or its file name")

    ia, ib = index(a), index(b)
    knn_a = np.asarray(lists[ia], np.int64).reshape(n, k)
    knn_b = np.asarray(lists[ib], np.int64).reshape(n, k)
    return movers_between(knn_a, knn_b, steps[ia], steps[ib], top)
