"""What a session hands back after each part of a job: an :class:`Update`.

Numpy arrays and numbers only, detached from the session (the worker thread goes on
changing the session while the window draws an update), with the request it answers: the
window shows exactly what the update holds and reads nothing else from the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from protoview.core.runs import HistoryRow, RunRecord

#: The kinds of update: a session opened, a step's map (or its completed refresh), a
#: step's probe estimate (the map unchanged), a refresh slice, reset, the runs changed,
#: k-means, Sinkhorn, the geometry measured (the map, with ``payload`` a MapGeometry); and a
#: file job's answer (``state`` None, ``payload`` set).
KINDS = ("open", "step", "probe", "refresh", "reset", "runs", "kmeans", "sinkhorn",
         "geometry")


@dataclass
class DataView:
    """What the window shows of newly opened data: the dataset's description, how its
    images become model inputs (``preprocess``, "" for features, and where that came from),
    ``preview(i)`` -> (image as stored, model input as pixels, (min, max), description) or
    None, and its domains (several for a continual stream; with corrupted data each domain's
    corruption and severity, for a gradual one)."""

    description: str = ""
    preprocess: str = ""
    preprocess_source: str = ""
    preview: Callable[[int], Any] | None = None
    domain_names: tuple[str, ...] = ()
    domain_shifts: tuple[str, ...] = ()
    domain_severities: tuple[int, ...] = ()
    #: the data's own batch order (:func:`~protoview.core.adapt.stream.run_order`): whether
    #: a run shuffles by default, the line that says why, and whether the order is fixed
    #: (CCC: its order is the benchmark)
    shuffled: bool = True
    order_note: str = ""
    order_fixed: bool = False
    #: why the model cannot be adapted ("" when it can): an encoder without a head, a task
    #: checkpoint's partial head
    not_adaptable: str = ""

    @classmethod
    def of(cls, dataset: Any, model: Any = None) -> DataView:
        """What ``dataset`` says of itself (a dataset without a ``transform`` holds
        precomputed features: no preprocessing, no preview)."""
        from protoview.core.adapt.stream import fixed_order, run_order

        transform = getattr(dataset, "transform", None)
        shuffled, order_note = run_order(dataset, None, 0)
        return cls(
            description=str(getattr(dataset, "description", "")),
            preprocess=transform.describe() if transform is not None else "",
            preprocess_source=str(getattr(dataset, "transform_source", "") or ""),
            preview=getattr(dataset, "preview", None) if transform is not None else None,
            domain_names=tuple(getattr(dataset, "domain_names", ()) or ()),
            domain_shifts=tuple(getattr(dataset, "domain_shifts", ()) or ()),
            domain_severities=tuple(int(s) for s in getattr(dataset, "domain_severities", ()) or ()),
            shuffled=shuffled, order_note="" if shuffled else order_note,
            order_fixed=fixed_order(dataset),
            not_adaptable=_not_adaptable(model),
        )


@dataclass
class Update:
    """One result of a job (see the module docstring).

    kind: one of :data:`KINDS` (or a file job's own); state: the map now (a
    :class:`~protoview.core.state.GeometryState`, None for a file job); history: the
    current run's rows; runs: every run of the session (the current one's ``history`` is
    ``history``); current_run: its number (0: the source model); source_state: the source
    model's map (the "before"); source_accuracy; class_names; thumbnail(i) -> image;
    request: the request this answers (the window reads a result's meaning from it, never
    from its widgets); data: set when ``kind == "open"``; partial: more of this job
    follows; followed: the same step's next result follows at once (the window may leave
    the charts to it); seconds: since the job started; job: the worker's job number;
    payload: a file job's answer (a geometry job's: the MapGeometry measured).
    """

    kind: str
    state: Any = None
    history: list[HistoryRow] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    current_run: int = 0
    source_state: Any = None
    source_accuracy: float = float("nan")
    class_names: list[str] = field(default_factory=list)
    thumbnail: Callable[[int], Any] | None = None
    request: Any = None
    data: DataView | None = None
    partial: bool = False
    followed: bool = False
    seconds: float = 0.0
    job: int = 0
    payload: Any = None

    @property
    def step(self) -> int:
        """The step of the current run the update shows (0: none)."""
        return self.history[-1].step if self.history else 0


def _not_adaptable(model: Any) -> str:
    if model is None:
        return ""
    from protoview.core.opening import not_adaptable

    return not_adaptable(model)


def detached(state: Any) -> Any:
    """A shallow copy of a state that later changes of the session cannot reach (its arrays
    are replaced, never edited in place; its metrics and attrs are copied)."""
    if state is None:
        return None
    return replace(state, metrics=dict(state.metrics), attrs=dict(state.attrs))


def detached_history(rows: list[HistoryRow]) -> list[HistoryRow]:
    """A new list of the rows with a copy of the last one: only the last row's numbers are
    filled in later (by the probe and the refresh, ``LiveRun``); the earlier rows are final
    and shared (copying every row made each update cost more as a run grew: 10 ms at
    4,000 steps)."""
    return [*rows[:-1], replace(rows[-1])] if rows else []


def detached_runs(runs: list[RunRecord], current: RunRecord | None,
                  history: list[HistoryRow]) -> list[RunRecord]:
    """Copies of the runs; the current one holds ``history`` (already detached)."""
    return [replace(r, history=history if r is current else list(r.history)) for r in runs]
