"""What the window shows, in one evented model: :class:`Shown`.

The window keeps no second copy of any of it: its widgets write to this model (a colour
mode chosen, a sample marked, a selection drawn) and listen to its events; the worker's
results come in through :meth:`Shown.apply`; a snapshot through :meth:`Shown.show_snapshot`
and its frames through :meth:`Shown.show_frame`. Every number a widget shows is derived
from these fields by :mod:`protoview.present.derive`, so a replayed frame, its chart, its
per-class bars and its numbers line read the same object and cannot disagree.

Qt-free (napari's ``ViewerModel`` is the model: fields that emit when they change).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from protoview.present import derive
from protoview.present._events import Event, Events, changed

#: The fields, in the order their events are emitted by one change (names and sources
#: before the map that uses them; the marks after it).
FIELDS = (
    "class_names", "thumbnail", "source_state", "source_accuracy", "source_predictions",
    "runs", "current_run", "history", "snapshot", "frame", "state", "geometry", "colour_mode",
    "versus", "selection", "marked",
)
UNADAPTED = 0  # ``versus``: the unadapted model (runs are numbered from 1)


class Shown:
    """See the module docstring. Fields (each with an event of the same name in
    :attr:`events`, emitted with the new value when it changes):

    state: the map shown (a GeometryState; a snapshot's frame while replaying); history:
    the rows the chart shows (the current run's; up to the frame's step in a replay);
    runs, current_run: every run and the current one's number (0: none); source_state,
    source_accuracy, source_predictions: the unadapted model's map, accuracy and
    predictions (the "before", the dashed line, fixed/broken); class_names; thumbnail(i);
    snapshot: the snapshot shown (None: the live session) and frame, its timeline index
    (None: its own state); colour_mode; versus: the run fixed/broken compares with
    (UNADAPTED, a run number, or None); selection: (K,) int64 sample indices; marked: the
    focused sample (None: none); geometry: the session's geometry measurements (a tuple of
    MapGeometry, oldest first; the Geometry view, :mod:`protoview.present.geometry`).

    ``events.updated`` is emitted after :meth:`apply` with the worker's Update (for what
    depends on the kind of job: the balance chart of a Sinkhorn job reads its request).
    """

    def __init__(self) -> None:
        self.events = Events((*FIELDS, "updated"))
        self.class_names: list[str] = []
        self.thumbnail = None
        self.source_state = None
        self.source_accuracy = float("nan")
        self.source_predictions: np.ndarray | None = None
        self.runs: list = []
        self.current_run = 0
        self.history: list = []
        self.snapshot = None
        self.frame: int | None = None
        self.state = None
        self.colour_mode = "label"
        self.versus: int | None = None
        self.selection = np.zeros(0, np.int64)
        self.marked: int | None = None
        self.geometry: tuple = ()
        #: the request behind the latest result of each kind (e.g. ``requests["sinkhorn"]``)
        self.requests: dict[str, Any] = {}
        self.snapshot_state = None  # the snapshot's own state (frames are shown over it)
        self.snapshot_history: list = []  # every row of the snapshot's current run

    # ---------------------------------------------------------------- changing
    def set(self, **values: Any) -> list[str]:
        """Assign fields; emit the events of those that changed, in :data:`FIELDS` order.
        Returns the names that changed."""
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise AttributeError(f"Shown has no field {sorted(unknown)[0]!r}")
        names = [n for n in FIELDS if n in values and changed(getattr(self, n), values[n])]
        for name in names:
            setattr(self, name, values[name])
        for name in names:
            event: Event = getattr(self.events, name)
            event.emit(getattr(self, name))
        return names

    def apply(self, update: Any) -> bool:
        """Show a worker's Update (see :class:`~protoview.core.updates.Update`). A
        background refresh never takes a shown snapshot away; any other result ends the
        snapshot. Returns whether it was shown."""
        if update.state is None or (update.kind == "refresh" and self.snapshot is not None):
            return False
        self.requests[update.kind] = update.request
        values: dict[str, Any] = dict(
            state=update.state, history=update.history, runs=list(update.runs),
            current_run=update.current_run, source_accuracy=update.source_accuracy,
            thumbnail=update.thumbnail, snapshot=None, frame=None,
        )
        self.snapshot_state, self.snapshot_history = None, []
        if update.source_state is not None:
            values["source_state"] = update.source_state
            values["source_predictions"] = update.source_state.predictions
        if update.class_names:
            values["class_names"] = list(update.class_names)
        elif len(self.class_names) < derive.num_classes(update.state) or self.snapshot is not None:
            values["class_names"] = [str(i) for i in range(derive.num_classes(update.state))]
        other_samples = (self.state is not None
                         and update.state.num_samples != self.state.num_samples)
        if update.kind in ("open", "reset") or other_samples:  # nothing marked or selected
            values.update(selection=np.zeros(0, np.int64), marked=None)
        if update.kind == "open":  # another session: its measurements are to come
            values["geometry"] = ()
        elif update.kind == "geometry" and update.payload is not None:
            values["geometry"] = (*self.geometry, update.payload)
        values["versus"] = self._versus_after(values)
        self.set(**values)
        self.fit_colour_mode()
        self.events.updated.emit(update)
        return True

    def show_snapshot(self, snap: Any, class_names: list[str] | None = None,
                      thumbnail: Any = None) -> None:
        """Show a snapshot read from a file (no model needed): its state, its current run's
        history, every run, its first recorded frame as the "before". ``class_names`` and
        ``thumbnail(i)``: the data's, when known (a timeline built from them); else the
        class numbers and no images."""
        from protoview.core.runs import rows_from_columns, run_from_snapshot
        from protoview.core.state import frame_state, state_from_snapshot

        base = state_from_snapshot(snap)
        entries = getattr(snap, "runs", None) or []
        runs = [run_from_snapshot(entry) for entry in entries]
        current = next((int(e["attrs"].get("number", 0)) for e in entries
                        if e["attrs"].get("current")), 0)
        first = frame_state(base, snap.timeline[0]) if snap.timeline else None
        source = snap.samples.get("source_predictions")
        self.snapshot_state, self.snapshot_history = base, rows_from_columns(snap.history)
        values = dict(
            snapshot=snap, frame=None, state=base, history=self.snapshot_history, runs=runs,
            current_run=current,
            source_accuracy=float(snap.metrics.get("source_accuracy", float("nan"))),
            source_state=first,
            source_predictions=None if source is None else np.asarray(source, np.int64),
            class_names=(list(class_names) if class_names
                         else [str(i) for i in range(derive.num_classes(base))]),
            thumbnail=thumbnail,
            selection=np.zeros(0, np.int64), marked=None,
        )
        values["versus"] = self._versus_after(values)
        self.set(**values)
        self.fit_colour_mode()

    def show_frame(self, index: int) -> None:
        """Show frame ``index`` of the snapshot's timeline, with the numbers of its step's
        history row and the chart up to that step."""
        if self.snapshot is None or not self.snapshot.timeline:
            return
        frame = self.snapshot.timeline[int(index)]
        step = int(frame.get("step", index))
        self.set(frame=int(index), state=self._frame_state(frame, step),
                 history=[h for h in self.snapshot_history if h.step <= step])

    def show_before_frame(self, index: int) -> None:
        """Before / after between two frames of the snapshot shown (two checkpoints of a
        timeline): frame ``index`` is the "before" (the map shows the other)."""
        if self.snapshot is None or not self.snapshot.timeline:
            return
        frame = self.snapshot.timeline[int(index)]
        self.set(source_state=self._frame_state(frame, int(frame.get("step", index))))

    def _frame_state(self, frame: dict, step: int) -> Any:
        """A frame over the snapshot's state, with the numbers of its step's history row."""
        from protoview.core.state import frame_state

        row = next((h for h in self.snapshot_history if h.step == step), None)
        return frame_state(self.snapshot_state, frame, row)

    def frame_states(self) -> list:
        """Every recorded frame of the snapshot shown, as :meth:`show_frame` shows it."""
        from protoview.core.state import timeline_states

        if self.snapshot is None:
            return []
        return timeline_states(self.snapshot_state, self.snapshot.timeline, self.snapshot_history)

    def frame_names(self) -> list[str]:
        """The name of each recorded frame of the snapshot shown: its checkpoint's file for
        a timeline of checkpoints, else ``"step N"`` ([] for none)."""
        from protoview.present.timeline import frame_names

        return frame_names(self.snapshot)

    def frame_steps(self) -> list[int]:
        """The step of each recorded frame of the snapshot shown ([] for none)."""
        timeline = self.snapshot.timeline if self.snapshot is not None else []
        return [int(f.get("step", i)) for i, f in enumerate(timeline)]

    def set_colour_mode(self, mode: str) -> None:
        if mode not in derive.COLOR_MODES:
            raise ValueError(f"unknown colour mode {mode!r}; choose one of {derive.COLOR_MODES}")
        self.set(colour_mode=mode)

    def fit_colour_mode(self) -> None:
        """Fall back to prediction when the colour mode means nothing for the state."""
        if self.colour_mode not in derive.available_colour_modes(self.state):
            self.set(colour_mode="prediction")

    def select(self, indices: Any) -> None:
        """Select these samples (unique, within the state's samples)."""
        sel = np.unique(np.asarray(indices, np.int64).reshape(-1))
        if self.state is not None:
            sel = sel[(sel >= 0) & (sel < self.state.num_samples)]
        self.set(selection=sel)

    def mark(self, index: int | None) -> bool:
        """Mark sample ``index`` (None: none); False when there is no such sample."""
        if index is not None:
            if self.state is None or not 0 <= int(index) < self.state.num_samples:
                return False
            index = int(index)
        self.set(marked=index)
        return True

    def choose_versus(self, number: int | None) -> None:
        self.set(versus=number)

    # ---------------------------------------------------------------- derived
    def versus_choices(self) -> list[tuple[str, int]]:
        """What fixed/broken can compare with: the unadapted model (when its predictions
        are known) and every run with predictions but the current one."""
        items = [("vs unadapted", UNADAPTED)] if self.source_predictions is not None else []
        items += [(f"vs {r.label}", r.number) for r in self.runs
                  if r.number != self.current_run and r.predictions is not None]
        return items

    def versus_predictions(self) -> tuple[str, np.ndarray | None]:
        """(name, predictions (N,)) of the chosen comparison, or ("", None)."""
        if self.versus == UNADAPTED and self.source_predictions is not None:
            return "unadapted", self.source_predictions
        run = next((r for r in self.runs if r.number == self.versus and r.number
                    != self.current_run and r.predictions is not None), None)
        return ("", None) if run is None else (run.label, run.predictions)

    def _versus_after(self, values: dict[str, Any]) -> int | None:
        """The comparison kept when still offered after ``values``, else the first offered."""
        saved = {n: getattr(self, n) for n in ("runs", "current_run", "source_predictions")}
        for name in saved:
            setattr(self, name, values.get(name, saved[name]))
        try:
            offered = [number for _label, number in self.versus_choices()]
        finally:
            for name, value in saved.items():
                setattr(self, name, value)
        if self.versus in offered:
            return self.versus
        return offered[0] if offered else None

    def baseline_state(self) -> Any:
        """The unadapted model's predictions over the shown samples (for the per-class
        bars beside the current ones): the source model's map live; over a snapshot, its
        state with the stored unadapted predictions (None when the file has none)."""
        if self.snapshot is None:
            return self.source_state
        if self.source_predictions is None or self.snapshot_state is None:
            return None
        return replace(self.snapshot_state, predictions=self.source_predictions)

    def freshness(self) -> str:
        """The map's label: which step it shows and how much is refreshed ("" for a
        snapshot's own state and the source model)."""
        if self.snapshot is not None and self.frame is None and not derive.checkpoint_label(
                self.state):  # a timeline's own state is its last checkpoint's map
            return ""
        return derive.map_freshness(self.state)

    def refresh_possible(self) -> bool:
        """The live map is not exact yet (Refresh map can complete it)."""
        return (self.snapshot is None and self.state is not None
                and self.state.metrics.get("refreshed", 1.0) < 1.0)

    def caption(self) -> str:
        return derive.caption_text(self.state, self.source_accuracy)

    def numbers_line(self) -> str:
        """The headline numbers of the state shown (see :func:`derive.numbers_line`)."""
        return derive.numbers_line(self.state, self.source_accuracy)

    def status(self, kind: str, seconds: float = 0.0) -> str:
        """The status bar's line after a result of ``kind``."""
        step = self.history[-1].step if self.history else 0
        summary = self.state.summary() if self.state is not None else "nothing open"
        text = f"{kind}: {summary} · step {step}"
        text += f" · {seconds:.2f} s" if math.isfinite(seconds) else ""
        if kind == "kmeans" and self.state is not None and self.state.attrs.get("kmeans"):
            text += f" · {self.state.attrs['kmeans']}"  # which k-means path ran
        return text
