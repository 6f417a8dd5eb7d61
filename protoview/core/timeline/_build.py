"""Building a timeline: each checkpoint's features (cached), its map aligned from the one
before by the anchored update a live step uses, its accuracy and its neighbour lists.

:class:`TimelineBuilder` checks and opens everything first (a bad input raises before any
feature is extracted), then :meth:`TimelineBuilder.steps` is a generator of one
:class:`CheckpointStep` per checkpoint (the window's worker can drive it and cancel it
between checkpoints); :meth:`TimelineBuilder.timeline` is the result.
:func:`build_timeline` does both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview.core.state import GeometryState, compute_geometry, timeline_frame
from protoview.core.timeline._inputs import (
    OpenOptions,
    expand_checkpoints,
    inspect_checkpoints,
    largest_head,
    load_on,
    open_reference,
)
from protoview.core.timeline._movers import (
    DEFAULT_K,
    Movers,
    knn_jaccard,
    knn_lists,
    movers_between,
)
from protoview.core.timeline._tasks import (
    TaskNumbers,
    Tasks,
    average_incremental_accuracy,
    forgetting,
    mean_forgetting,
    task_numbers,
    tasks_for,
)
from protoview.errors import CancelledError, CheckpointError, ParameterError

Progress = Callable[[int, int], None] | None
Cancel = Callable[[], bool] | None


@dataclass
class CheckpointStep:
    """One checkpoint of a timeline (step 1 is the first).

    path: the file; sha256: its digest; head_classes: its head's class count;
    accuracy: over the labelled samples of the classes its head has (all of them unless
    the head is a smaller, earlier one of a class-incremental run; NaN: no labels);
    evaluated: those samples' count; class_accuracy: (C,) float64, NaN for a class its
    head lacks or without labelled samples; frame: the recorded map (a snapshot timeline
    entry: positions, predictions); knn: (N, k) int64 neighbour lists in feature space;
    knn_change: mean Jaccard distance of the lists from the step before (NaN for the
    first); map_held: share of samples kept exactly in place by the aligned update (NaN for
    the first map); seconds / map_seconds: extraction (or cache read) and map time;
    tasks: its numbers by task (a class-incremental run, :class:`TaskNumbers`) or None;
    geometry: its feature space's geometry (a row of
    :func:`~protoview.core.measures.geometry_row`: NC1-NC4, k-NN accuracy, linear CKA to
    the first checkpoint) or None (not measured); geometry_seconds: its time.
    """

    step: int
    path: str
    sha256: str
    head_classes: int
    accuracy: float
    evaluated: int
    class_accuracy: np.ndarray
    frame: dict
    knn: np.ndarray
    knn_change: float = float("nan")
    map_held: float = float("nan")
    seconds: float = 0.0
    map_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    tasks: TaskNumbers | None = None
    geometry: dict | None = None
    geometry_seconds: float = 0.0

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class Timeline:
    """Checkpoints over one dataset: ``steps`` in order, ``state`` the last checkpoint's
    geometry (its features, proxies, centers and map), ``k`` the neighbour-list length;
    ``tasks`` the tasks of a class-incremental run (None: the heads do not grow);
    ``class_order`` where the head's classes come from in the data (its source) or ""."""

    steps: list[CheckpointStep]
    state: GeometryState
    dataset: str
    class_names: list[str]
    k: int
    tasks: Tasks | None = None
    class_order: str = ""

    # ---------------------------------------------------------------- class-incremental
    def task_matrix(self) -> np.ndarray:
        """(checkpoints, tasks) accuracy of each task at each checkpoint (NaN: a task its
        head lacks); (S, 0) without tasks."""
        if self.tasks is None:
            return np.zeros((len(self.steps), 0))
        return np.stack([s.tasks.accuracy for s in self.steps])  # type: ignore[union-attr]

    def forgetting_matrix(self) -> np.ndarray:
        """(checkpoints, tasks): the drop of each task from its best accuracy so far."""
        return forgetting(self.task_matrix())

    def mean_forgetting(self) -> float:
        """PyCIL's forgetting: the last checkpoint's mean over every task but its newest."""
        if self.tasks is None:
            return float("nan")
        return mean_forgetting(self.task_matrix(), self.steps[-1].tasks.seen)  # type: ignore[union-attr]

    def average_incremental_accuracy(self) -> float:
        """PyCIL's average incremental accuracy: the mean accuracy at the end of each task."""
        return average_incremental_accuracy([s.accuracy for s in self.steps],
                                            [s.head_classes for s in self.steps])

    def find(self, which: int | str, where: str = "--movers") -> CheckpointStep:
        """The step ``which``: its number (1-based, as text too) or its file (path or name)."""
        text = str(which)
        if text.lstrip("-").isdigit():
            number = int(text)
            if 1 <= number <= len(self.steps):
                return self.steps[number - 1]
        for step in self.steps:
            if text in (step.path, step.name):
                return step
        raise ParameterError(where, f"no checkpoint {text!r} in the timeline: give its number "
                                    f"(1 to {len(self.steps)}) or its file name")

    def movers(self, a: int | str, b: int | str, top: int | None = None) -> Movers:
        """The samples whose neighbourhood changed most from checkpoint ``a`` to ``b`` (any
        two; see :meth:`find`), ranked."""
        sa, sb = self.find(a), self.find(b)
        return movers_between(sa.knn, sb.knn, sa.step, sb.step, top)


class TimelineBuilder:
    """See the module docstring. ``checkpoints``: files and globs (see
    :func:`expand_checkpoints`); ``data``: one dataset spelling; ``options``: how every
    checkpoint is loaded; ``k``: neighbours per sample for the movers; ``with_map``: draw
    the maps (False: accuracy and movers only, NaN positions); ``seed``: the first map's;
    ``geometry``: measure each checkpoint's geometry (:func:`~protoview.core.measures.
    measure_point`: NC1-NC4, k-NN accuracy, linear CKA to the first checkpoint)."""

    def __init__(self, checkpoints: Sequence[str], data: str, options: OpenOptions | None = None,
                 *, k: int = DEFAULT_K, seed: int = 0, with_map: bool = True,
                 keep_order: bool = False, device: str | None = None,
                 batch_size: int | None = 256, use_cache: bool = True,
                 cache_dir: str | None = None, warn: bool = True,
                 class_order: str | None = "auto",
                 tasks: str | Sequence[int] | None = None, geometry: bool = True) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ParameterError("--k", f"must be a whole number >= 1, got {k!r}")
        self.options = options or OpenOptions()
        self.paths = expand_checkpoints(checkpoints, keep_order=keep_order)
        self.infos = inspect_checkpoints(self.paths, self.options)
        self.reference_index = largest_head(self.infos)
        self.reference, self.dataset = open_reference(
            self.infos[self.reference_index], data, self.options, warn=warn)
        self.data, self.k = data, k
        self.extract = dict(device=device, batch_size=batch_size)
        self.use_cache, self.cache_dir = use_cache, cache_dir
        # an encoder without a head (SwAV, DINO, ...): the data's classes, no accuracy
        self.num_classes = int(self.reference.info.head.num_classes) or len(
            getattr(self.dataset, "class_names", None) or [])
        self._class_incremental(class_order, tasks)
        self._steps: list[CheckpointStep] = []
        self._state: GeometryState | None = None
        self._maps = AlignedMaps(seed, with_map)
        self.with_geometry = bool(geometry)
        self._first_features: np.ndarray | None = None  # the linear CKA's reference

    def __len__(self) -> int:
        return len(self.paths)

    def _class_incremental(self, class_order: str | None, tasks: Any) -> None:
        """The head's class order (``--class-order``, PyCIL's for PyCIL checkpoints) and
        the tasks (``--tasks`` or the heads' sizes), checked before any extraction."""
        from protoview.core.heads import describe_head
        from protoview.core.opening import class_order_for

        names = list(getattr(self.dataset, "class_names", []) or [])
        ref = self.infos[self.reference_index]
        if not getattr(self.reference, "has_head", True):  # encoders: no classes, no tasks
            if tasks:
                raise ParameterError("--tasks", "the checkpoints have no classifier head: "
                                                "there are no tasks to group its classes by")
            self.order, self.tasks = None, None
            return
        self.order = class_order_for(class_order, self.reference.info, len(names))
        if self.order is not None and self.order.order and self.num_classes != len(names):
            raise CheckpointError(
                ref.path, f"has the largest head of the timeline, {self.num_classes} classes, "
                          f"but the data have {len(names)}: {self.order.source} class order "
                          "needs a head of every class of the data (give the data of the "
                          "run's classes)")
        nb_proxy = describe_head(self.reference.classifier).nb_proxy
        sizes = [c.info.head.num_proxies // nb_proxy for c in self.infos]
        order = (self.order.order if self.order is not None and self.order.order
                 else tuple(range(self.num_classes)))
        self.tasks = tasks_for(tasks, sizes, [os.path.basename(p) for p in self.paths], order)
        self.reference = self._fit(self.reference)

    def _fit(self, model: Any) -> Any:
        """``model`` with its head in the data's classes: its class ``k`` the data class
        ``order[k]``, the classes a smaller head lacks absent (a
        :class:`~protoview.core.heads.ClassScatter`), its rows kept in the head's order."""
        from protoview.core.heads import describe_head
        from protoview.core.opening import scatter_class_order

        if not getattr(model, "has_head", True):
            return model
        held = describe_head(model.classifier).num_classes
        if held > self.num_classes:
            raise CheckpointError(model.info.path, f"has a head of {held} classes, more than the "
                                                   f"largest head's {self.num_classes}")
        ordered = self.order is not None and bool(self.order.order)
        if not ordered and held == self.num_classes:
            return model
        return scatter_class_order(model, self.order, self.num_classes)

    def steps(self, progress: Progress = None, cancel: Cancel = None) -> Iterator[CheckpointStep]:
        """Each checkpoint in turn: load, extract (cached), map, numbers; ``progress(done,
        total)`` per extraction batch, ``cancel`` checked between checkpoints and inside."""
        for i, path in enumerate(self.paths):
            if cancel is not None and cancel():
                raise CancelledError(f"timeline cancelled after {i} of {len(self.paths)} checkpoints")
            model = (self.reference if i == self.reference_index else self._fit(
                load_on(path, self.reference, self.data, self.dataset, self.options)))
            step = self._step(i + 1, path, model, progress, cancel)
            self._steps.append(step)
            yield step

    def timeline(self) -> Timeline:
        """The timeline of the steps run so far (ParameterError before any)."""
        from protoview.core.data import preprocess_attrs

        if self._state is None:
            raise ParameterError("checkpoints", "the timeline has no step yet")
        self._state.attrs.update(preprocess_attrs(self.dataset))
        return Timeline(list(self._steps), self._state,
                        str(getattr(self.dataset, "description", "")),
                        list(getattr(self.dataset, "class_names", []) or []), self.k,
                        self.tasks, self.order.source if self.order is not None else "")

    # ------------------------------------------------------------------ one checkpoint
    def _features(self, model: Any, progress: Progress, cancel: Cancel) -> Any:
        from protoview.core.features import cached_features, extract_features

        kwargs = dict(self.extract, progress=progress, cancel=cancel)
        if self.use_cache:
            return cached_features(model, self.dataset, cache_dir=self.cache_dir, **kwargs)
        return extract_features(model, self.dataset, **kwargs)

    def _step(self, number: int, path: str, model: Any, progress: Progress,
              cancel: Cancel) -> CheckpointStep:
        from protoview.core.heads import describe_head, map_proxies

        result = self._features(model, progress, cancel)
        vectors, classes = map_proxies(model.classifier)
        proxies = vectors.detach().float().cpu().numpy()
        proxy_classes = classes.cpu().numpy().astype(np.int64)
        head = describe_head(model.classifier)
        head_classes = int(head.held)
        state = self._map(result, proxies, proxy_classes, cancel)
        held = np.zeros(self.num_classes, bool)
        held[proxy_classes] = True
        accuracy, evaluated, per_class = seen_class_accuracy(
            state.predictions, result.labels, head_classes, self.num_classes, held=held)
        state.metrics["accuracy"] = accuracy
        numbers = None
        if self.tasks is not None:
            numbers = task_numbers(state.predictions, result.labels, self.tasks, head_classes,
                                   vectors, proxy_classes, head.nb_proxy)
            earlier = [s.tasks.accuracy for s in self._steps if s.tasks is not None]
            numbers.forgetting = forgetting(np.stack([*earlier, numbers.accuracy]))[-1]
        knn = knn_lists(result.features, self.k)
        t0 = time.perf_counter()
        geometry = (self._geometry(number, result, proxies, proxy_classes, head)
                    if self.with_geometry else None)
        geometry_seconds = time.perf_counter() - t0
        previous = self._steps[-1] if self._steps else None
        held = state.map_held
        return CheckpointStep(
            step=number, path=path, sha256=model.info.sha256, head_classes=head_classes,
            accuracy=accuracy, evaluated=evaluated, class_accuracy=per_class,
            frame={**timeline_frame(state, number), "checkpoint": path}, knn=knn,
            knn_change=(float("nan") if previous is None
                        else float(knn_jaccard(previous.knn, knn).mean())),
            map_held=(float("nan") if held is None
                      else float(np.mean(held[state.rows.slice("samples")]))),
            seconds=float(result.seconds), map_seconds=float(state.metrics.get("map_seconds", 0.0)),
            notes=list(result.notes), tasks=numbers, geometry=geometry,
            geometry_seconds=geometry_seconds,
        )

    def _geometry(self, number: int, result: Any, proxies: np.ndarray,
                  proxy_classes: np.ndarray, head: Any) -> dict | None:
        """The checkpoint's geometry row (None when it cannot be measured: fewer than two
        classes with samples). A head smaller than the data's classes (an early task of a
        class-incremental run) has no NC3 / proxy-to-center cosine: its rows do not cover
        the classes measured."""
        from protoview.core.measures import measure_point

        if self._first_features is None:
            self._first_features = np.asarray(result.features)
        full = len(proxies) > 0 and int(getattr(head, "held", 0)) == self.num_classes
        # class-major in the data's classes (a head in PyCIL's order has its rows in its own)
        rows = proxies[np.argsort(proxy_classes, kind="stable")] if full else None
        try:
            return measure_point(
                result.features, result.logits, result.labels,
                reference=self._first_features, head_rows=rows,
                nb_proxy=int(getattr(head, "nb_proxy", 1) or 1),
                cosine_head=getattr(head, "kind", "") == "cosine", step=number)
        except ParameterError:
            return None

    def _map(self, result: Any, proxies: np.ndarray, proxy_classes: np.ndarray,
             cancel: Cancel) -> GeometryState:
        state = self._maps.next(result.features, result.labels, logits=result.logits,
                                proxies=proxies, proxy_classes=proxy_classes,
                                num_classes=self.num_classes, cancel=cancel,
                                prediction_map=getattr(result, "prediction_map", None))
        self._state = state
        return state


class AlignedMaps:
    """A sequence of maps, each aligned from the one before: the first fitted, every next
    one the anchored update a live step uses (a point whose vector did not move since its
    position was last set stays exactly in place; its anchor is kept), new proxies of a
    growing head joining where their nearest samples are (:func:`grown_layout`).
    ``with_map=False``: the geometry only (NaN positions)."""

    def __init__(self, seed: int = 0, with_map: bool = True) -> None:
        self.seed, self.with_map = int(seed), bool(with_map)
        self.state: GeometryState | None = None
        self.anchors: np.ndarray | None = None  # (rows.total, D) each point's anchor

    def next(self, features: np.ndarray, labels: np.ndarray, *, logits: np.ndarray | None = None,
             proxies: np.ndarray | None = None, proxy_classes: np.ndarray | None = None,
             num_classes: int | None = None, cancel: Cancel = None,
             prediction_map: Any = None) -> GeometryState:
        """The geometry of the next model's ``features`` (N, D) (the same N samples in the
        same order every time), its map aligned from the previous one."""
        previous = anchors = new_rows = knn = None
        d = np.shape(features)[1]
        proxies = np.zeros((0, d), np.float32) if proxies is None else proxies
        if self.state is not None and self.with_map:
            previous, anchors, new_rows = grown_layout(self.state, self.anchors, features, proxies)
            knn = self.state.map_knn
        state = compute_geometry(
            features, labels, logits=logits, proxies=proxies, proxy_classes=proxy_classes,
            num_classes=num_classes, previous_embedding=previous, anchor_vectors=anchors,
            previous_knn=knn, new_rows=new_rows, with_map=self.with_map, seed=self.seed,
            cancel=cancel, prediction_map=prediction_map)
        self.anchors = state.anchors_after(anchors, shared=False)  # only this builder holds them
        self.state = state
        return state


def grown_layout(state: GeometryState, anchors: np.ndarray | None, features: np.ndarray,
                 proxies: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The previous joint layout for the next checkpoint, whose head may have other rows.

    Samples and centers keep their rows of ``state``'s layout and ``anchors``; the proxies
    the two heads share (the first rows: a growing head keeps the old classes' rows first)
    keep theirs; each new proxy starts at the distance-weighted mean of the previous
    positions of its nearest samples in the new ``features`` (N, D) and is marked new
    (always placed, never held). Returns (previous (N + C + P, 2), anchors or None,
    new_rows (N + C + P,) bool or None when the head did not change size).
    """
    from protoview.core.projection import place_points

    rows = state.rows
    p_new = len(proxies)
    joint_xy = state.joint_embedding()
    if rows.proxies == p_new and rows.prototypes == 0:
        return joint_xy, anchors, None
    start = rows.slice("proxies").start
    keep = min(rows.proxies, p_new)
    emb = np.asarray(state.embedding)
    ok = np.isfinite(emb).all(axis=1)
    added = np.asarray(proxies[keep:], np.float32)
    placed = (place_points(np.asarray(features)[ok], emb[ok], added) if len(added) and ok.any()
              else np.zeros((len(added), 2), np.float32))
    previous = np.concatenate([joint_xy[: start + keep], placed]).astype(np.float32)
    if anchors is not None and len(anchors) >= start + keep:
        anchors = np.concatenate([np.asarray(anchors)[: start + keep],
                                  added.reshape(-1, anchors.shape[1])])
    else:
        anchors = None
    new_rows = np.zeros(start + p_new, bool)
    new_rows[start + keep:] = True
    return previous, anchors, new_rows


def seen_class_accuracy(predictions: np.ndarray, labels: np.ndarray, head_classes: int,
                        num_classes: int, held: np.ndarray | None = None,
                        ) -> tuple[float, int, np.ndarray]:
    """(accuracy, samples counted, per-class accuracy (num_classes,) float64) over the
    labelled samples whose class is in a head of ``head_classes`` classes (as PyCIL scores
    a task: the classes seen so far); NaN where nothing is counted. ``held`` (num_classes,)
    bool: the data classes the head has (a head in PyCIL's class order holds
    ``order[:head_classes]``); None: the first ``head_classes``."""
    from protoview.core.metrics import per_class_accuracy

    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    if head_classes == 0 or num_classes == 0:  # an encoder without a head predicts nothing
        return float("nan"), 0, np.full(num_classes, np.nan)
    if held is None:
        held = np.arange(num_classes) < head_classes
    held = np.asarray(held, bool)
    seen = (labels >= 0) & (labels < num_classes)
    seen[seen] = held[labels[seen]]
    accuracy = float(np.mean(predictions[seen] == labels[seen])) if seen.any() else float("nan")
    per_class = per_class_accuracy(predictions, labels, num_classes).astype(np.float64)
    per_class[~held] = np.nan
    return accuracy, int(seen.sum()), per_class


def build_timeline(checkpoints: Sequence[str], data: str, options: OpenOptions | None = None,
                   *, progress: Progress = None, cancel: Cancel = None,
                   on_step: Callable[[CheckpointStep], None] | None = None,
                   **kwargs: Any) -> Timeline:
    """A :class:`Timeline` of ``checkpoints`` over ``data`` (the keywords of
    :class:`TimelineBuilder`); ``on_step`` is called with each step as it is done."""
    builder = TimelineBuilder(checkpoints, data, options, **kwargs)
    for step in builder.steps(progress, cancel):
        if on_step is not None:
            on_step(step)
    return builder.timeline()
