"""A timeline of checkpoints as the window builds and shows it (Qt-free).

:class:`TimelineRequest` is what File → Open checkpoints… asks for; :func:`build` runs it
on the worker thread (:class:`~protoview.core.timeline.TimelineBuilder`: every input
checked before any feature is extracted, one step per checkpoint, progress and cancel
between and inside them) and hands back a :class:`BuiltTimeline`: the snapshot the replay
shows, the checkpoints' names, the data's class names and thumbnails. :func:`movers_table`
is the movers between any two frames of a timeline snapshot, read from its stored
neighbour lists (no model needed), with the texts the Movers list shows. :func:`tasks_view`
is a class-incremental timeline's tasks at one frame, as the Tasks tab shows them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview.core.timeline import (
    DEFAULT_K,
    OpenOptions,
    TimelineBuilder,
    expand_checkpoints,
    is_timeline_snapshot,
    snapshot_movers,
    snapshot_tasks,
    timeline_checkpoints,
    timeline_to_snapshot,
)
from protoview.core.updates import DataView
from protoview.errors import ProtoviewError
from protoview.present import derive

Detail = Callable[[int, int, str], None] | None
Cancel = Callable[[], bool] | None

#: Movers listed by default.
DEFAULT_TOP = 20


@dataclass(frozen=True)
class TimelineRequest:
    """A timeline to build: ``checkpoints`` (files and globs, put in natural order unless
    ``keep_order``), the ``data`` they are seen on, the options every checkpoint is loaded
    with (as the command line's ``--arch``, ``--preprocess``, ``--nb-proxy``, ``--split``)
    and ``k``, the neighbours per sample for the movers."""

    checkpoints: tuple[str, ...] = ()
    data: str = "demo"
    arch: str | None = None
    preprocess: str | None = None
    nb_proxy: int | None = None
    split: str | None = None
    k: int = DEFAULT_K
    keep_order: bool = False
    device: str | None = None

    def options(self) -> OpenOptions:
        return OpenOptions(arch=self.arch, nb_proxy=self.nb_proxy, split=self.split,
                           preprocess=self.preprocess)

    def describe(self) -> str:
        """``"a timeline of epoch_*.pt over demo"`` (the status bar while it is built)."""
        given = [os.path.basename(c) for c in self.checkpoints]
        what = given[0] if len(given) == 1 else f"{len(given)} checkpoint files"
        return f"a timeline of {what} over {self.data}"


@dataclass
class BuiltTimeline:
    """What :func:`build` hands back: ``snapshot`` (as ``protoview timeline --out`` writes
    it), ``names`` (each checkpoint's file name, in order), ``class_names`` and
    ``thumbnail(i)`` of the data (None when it has none), ``data`` (what the Data panel
    shows of it: description, preprocessing, preview), ``request``, ``notes``."""

    snapshot: Any
    names: list[str]
    class_names: list[str]
    thumbnail: Callable[[int], Any] | None
    request: TimelineRequest
    data: DataView | None = None
    notes: list[str] = field(default_factory=list)


def build(request: TimelineRequest, detail: Detail = None, cancel: Cancel = None) -> BuiltTimeline:
    """Build the timeline of ``request`` (on the worker thread). ``detail(done, total,
    text)`` reports each checkpoint's extraction (``"epoch_2.pt (2 of 5): features"``) and
    map; ``cancel`` is checked between checkpoints and inside them (CancelledError).
    A bad input (checkpoints of two architectures, a glob that matches nothing, a head that
    does not hold the data's classes) raises its one-line error before any extraction."""
    say = detail or (lambda _d, _t, _text: None)
    say(0, 0, f"checking {request.describe()}")
    builder = TimelineBuilder(list(request.checkpoints), request.data, request.options(),
                              k=int(request.k), keep_order=request.keep_order,
                              device=request.device)
    names = [os.path.basename(p) for p in builder.paths]
    current = [0]

    def place() -> str:
        i = min(current[0], len(names) - 1)
        return f"{names[i]} ({i + 1} of {len(names)})"

    def progress(done: int, total: int) -> None:
        if total > 0 and done >= total:
            say(0, 0, f"{place()}: its map, aligned from the one before")
        else:
            say(done, total, f"{place()}: features")

    notes: list[str] = []
    for step in builder.steps(progress, cancel):
        notes += [f"{step.name}: {n}" for n in step.notes
                  if not n.startswith(("loaded from cache", "saved to cache"))]
        current[0] += 1
    timeline = builder.timeline()
    snapshot = timeline_to_snapshot(timeline)
    return BuiltTimeline(snapshot, names, list(timeline.class_names),
                         getattr(builder.dataset, "thumbnail", None), request,
                         DataView.of(builder.dataset), notes)


def expand(specs: list[str], keep_order: bool = False) -> tuple[list[str], str]:
    """The checkpoint files ``specs`` (files and globs) name, in the order the timeline
    takes them, and ``""``; or ``[]`` and the problem (a glob that matches no file)."""
    try:
        return expand_checkpoints(list(specs), keep_order=keep_order), ""
    except ProtoviewError as exc:
        return [], str(exc)


def is_timeline(snapshot: Any) -> bool:
    """``snapshot`` holds a timeline of checkpoints (not an adaptation run)."""
    return snapshot is not None and is_timeline_snapshot(snapshot)


def frame_names(snapshot: Any) -> list[str]:
    """The name of each recorded frame of ``snapshot``: its checkpoint's file name for a
    timeline of checkpoints, else ``"step N"``."""
    if snapshot is None:
        return []
    paths = timeline_checkpoints(snapshot)
    out = []
    for i, frame in enumerate(snapshot.timeline):
        path = str(frame.get("checkpoint", "") or (paths[i] if i < len(paths) else ""))
        out.append(os.path.basename(path) if path else f"step {int(frame.get('step', i))}")
    return out


@dataclass(frozen=True)
class MoversTable:
    """The movers from frame ``a`` to frame ``b`` (indices into the snapshot's timeline):
    ``indices`` (top,) most changed first, ``distance`` (top,) their Jaccard distance,
    ``labels``, ``before``, ``after`` (top,) their label and both predictions, ``texts``
    (two lines each), ``header`` (what the list is), ``mean`` (over every sample)."""

    a: int
    b: int
    indices: np.ndarray
    distance: np.ndarray
    labels: np.ndarray
    before: np.ndarray
    after: np.ndarray
    texts: list[str]
    header: str
    mean: float


def movers_table(snapshot: Any, a: int, b: int, top: int = DEFAULT_TOP,
                 class_names: list[str] | None = None) -> MoversTable:
    """The ``top`` movers from frame ``a`` to frame ``b`` of a timeline snapshot (any two,
    either order; a frame with itself: no sample moved)."""
    frames = snapshot.timeline
    names = frame_names(snapshot)
    step_a, step_b = (int(frames[i].get("step", i + 1)) for i in (a, b))
    movers = snapshot_movers(snapshot, step_a, step_b, top)
    idx = np.asarray(movers.indices, np.int64)
    idx = idx[movers.distance[idx] > 0]  # the same neighbours: not a mover
    labels = np.asarray(snapshot.samples["labels"], np.int64)[idx]
    before = np.asarray(frames[a]["predictions"], np.int64)[idx]
    after = np.asarray(frames[b]["predictions"], np.int64)[idx]
    cls = list(class_names or [])

    def name(c: int) -> str:
        return "?" if c < 0 else derive.class_name(cls, int(c))

    texts = []
    distance = movers.distance[idx]
    for i, lab, pa, pb, d in zip(idx.tolist(), labels.tolist(), before.tolist(), after.tolist(),
                                 distance.tolist(), strict=True):
        label = "no label" if lab < 0 else f"label {name(lab)}"
        new = movers.k - round(2 * movers.k * (1 - d) / (2 - d))  # J = 1 - c / (2k - c)
        texts.append(f"#{i} · {label} · predicted {name(pa)} → {name(pb)}\n"
                     f"{new} of {movers.k} neighbours new · Jaccard {d:.2f}")
    mean = float(np.mean(movers.distance)) if len(movers.distance) else float("nan")
    if a == b:
        header = f"<b>{names[a]}</b> against itself: choose two checkpoints to compare."
    elif not len(idx):
        header = (f"From <b>{names[a]}</b> to <b>{names[b]}</b> no sample's {movers.k} nearest "
                  "neighbours in feature space changed.")
    else:
        header = (f"<b>{len(idx)} movers</b> from <b>{names[a]}</b> to <b>{names[b]}</b>: the "
                  f"samples whose {movers.k} nearest neighbours in feature space changed most "
                  f"(Jaccard distance of the lists, 0 the same, 1 none shared; mean over all "
                  f"{len(movers.distance)} samples {mean:.2f}).")
    return MoversTable(a, b, idx, distance, labels, before, after, texts, header, mean)


@dataclass(frozen=True)
class TasksView:
    """A class-incremental timeline's tasks at frame ``frame``, for the Tasks tab:
    ``names`` (``"task 1"`` ...), ``checkpoints`` (the frames' files), ``accuracy``
    (frames, tasks: NaN before a task is learnt), ``accuracy_title``; ``forgetting``
    (tasks,) at the frame (NaN: not learnt yet) and ``forgetting_text`` (it names the
    frame's checkpoint); the weight norm of
    each class at the frame, in head order (the tasks one after the other): ``norms`` (C,)
    (NaN: not in the head yet), ``norm_names`` (the classes' names), ``bounds`` (the x
    between two tasks' bars), ``norm_title`` (WA's gamma in it); ``summary``: the run's
    average incremental accuracy and forgetting."""

    frame: int
    names: list[str]
    checkpoints: list[str]
    accuracy: np.ndarray
    accuracy_title: str
    forgetting: np.ndarray
    forgetting_text: str
    norms: np.ndarray
    norm_names: list[str]
    bounds: list[float]
    norm_title: str
    summary: str


def _points(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:.1f}"


def tasks_view(snapshot: Any, frame: int | None = None,
               class_names: list[str] | None = None) -> TasksView | None:
    """The tasks of a class-incremental timeline snapshot at ``frame`` (None: the last),
    from :func:`~protoview.core.timeline.snapshot_tasks`; None when it has no tasks."""
    tasks = None if snapshot is None else snapshot_tasks(snapshot)
    if tasks is None:
        return None
    acc = tasks["accuracy"]
    steps, count = acc.shape
    i = steps - 1 if frame is None else int(np.clip(frame, 0, steps - 1))
    names = frame_names(snapshot)
    here = names[i] if i < len(names) else f"checkpoint {i + 1}"
    task_names = [f"task {j + 1}" for j in range(count)]
    seen = int(np.count_nonzero(np.isfinite(acc[i])))
    forgetting = tasks["forgetting"][i]
    parts = [f"{task_names[j]}{' (new)' if j == seen - 1 else ''} {_points(forgetting[j])}"
             for j in range(seen)]
    forgetting_text = (f"<b>At {here}</b>, forgetting (points below the task's best so "
                       "far): " + " · ".join(parts))
    order = list(tasks["order"])
    cls = list(class_names or [])
    norms = tasks["class_norm"][i][np.asarray(order, np.int64)]
    ends = np.cumsum(tasks["sizes"])[:-1]
    gamma = float(tasks["wa_gamma"][i])
    gamma_text = (f"WA's gamma {gamma:.3f}" if np.isfinite(gamma)
                  else "WA's gamma n/a (one task)")
    return TasksView(
        frame=i, names=task_names, checkpoints=names, accuracy=acc,
        accuracy_title="Accuracy per task over the checkpoints",
        forgetting=forgetting, forgetting_text=forgetting_text,
        norms=norms, norm_names=[derive.class_name(cls, c) for c in order],
        bounds=[float(e) - 0.5 for e in ends],
        norm_title=f"Weight norm per class · {gamma_text}",
        summary=(f"average incremental accuracy {tasks['average_incremental_accuracy']:.1%} · "
                 f"forgetting {_points(tasks['forgetting_mean'])} points (PyCIL's: the old "
                 "tasks at the last checkpoint)"),
    )


__all__ = [
    "DEFAULT_TOP", "BuiltTimeline", "MoversTable", "TasksView", "TimelineRequest", "build",
    "expand", "frame_names", "is_timeline", "movers_table", "tasks_view",
]
