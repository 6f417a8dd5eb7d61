"""ONE long-lived compute worker that owns the Session (a QThread with a request queue).

The main thread calls :meth:`ComputeWorker.submit` with a frozen request from
:mod:`protoview.core.session`; the worker runs it and sends back a :class:`Result`
(numpy arrays and numbers only) through queued signals. A newer request cancels the
older one: the ``cancel`` callable handed to the session returns True as soon as a newer
job was submitted (or :meth:`cancel` was called). Errors go to ``failed`` (one handler on
the main thread); the session stays as it was before the failing job.

Steps run live: each step's pixels go out at once (its batch's points moved), then the
probe of that step (its full-set accuracy estimate). When no request waits, the worker
refreshes the rest of the map in slices (``Session.refresh_some``), sending a ``refresh``
result after each; any new request interrupts it between batches, and it resumes (for
the new model, after a step) once the queue is empty again. At the end of a pass the
whole set is refreshed before the next step (the exact full-set accuracy).
"""

from __future__ import annotations

import math
import queue
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6 import QtCore

from protoview.core.session import (
    ForgetRunsRequest,
    HistoryRow,
    KMeansRequest,
    OpenRequest,
    RefreshRequest,
    SinkhornRequest,
    StepRequest,
)
from protoview.errors import CancelledError, ProtoviewError

_LIVE: weakref.WeakSet = weakref.WeakSet()
_STOP = object()


@dataclass(frozen=True)
class ResetRequest:
    """Back to the source model."""


@dataclass
class Result:
    """What a job hands back. ``state``: GeometryState; ``partial``: more results follow;
    ``followed``: the same step's next result (its probe) follows at once, so the window
    may leave the charts for that one."""

    job: int
    kind: str
    state: Any
    history: list[HistoryRow] = field(default_factory=list)
    source_accuracy: float = float("nan")
    class_names: list[str] = field(default_factory=list)
    thumbnail: Callable[[int], Any] | None = None
    partial: bool = False
    seconds: float = 0.0
    payload: Any = None
    #: ``preview(i)`` -> (image as stored, model input as pixels, (min, max), ...) or None
    preview: Callable[[int], Any] | None = None
    preprocess: str = ""  # how the images became model inputs, for people ("" for features)
    preprocess_source: str = ""
    followed: bool = False
    #: every run of the session (RunRecord; the current one's history is ``history``) and
    #: the number of the current run (0: none, the source model)
    runs: list = field(default_factory=list)
    current_run: int = 0
    domain_names: tuple[str, ...] = ()


def live_workers() -> list[ComputeWorker]:
    """Workers whose thread is still running (tests assert this is empty at teardown)."""
    return [w for w in list(_LIVE) if w.isRunning()]


def _leave_a_core_for_the_window() -> None:
    """torch's CPU kernels use every core by default, starving the window's thread while
    a step runs (measured: 170-200 ms stalls on 2 cores). Keep one core free for it."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch.get_num_threads() >= (cores or 1) and (cores or 1) > 1:
        torch.set_num_threads(max(1, (cores or 1) - 1))


def default_open(req: OpenRequest, progress=None, cancel=None):
    from protoview.core.session import Session

    return Session.open(req, progress=progress, cancel=cancel)


def default_warm_up(message: Callable[[str], None]) -> float:
    from protoview.core.session import warm_up

    return warm_up(message)


class ComputeWorker(QtCore.QThread):
    """The compute thread. Start it with :meth:`start`; stop it with :meth:`stop`.

    Signals (all delivered queued on the main thread): ``result(Result)``,
    ``progress(int done, int total)``, ``message(str)``, ``failed(int job, object error,
    str traceback)``, ``cancelled(int job)``, ``busy(bool)``.
    """

    result = QtCore.Signal(object)
    progress = QtCore.Signal(int, int)
    message = QtCore.Signal(str)
    failed = QtCore.Signal(int, object, str)
    cancelled = QtCore.Signal(int)
    busy = QtCore.Signal(bool)

    #: seconds of progressive refresh between two looks at the queue (at least one batch)
    refresh_slice = 0.5

    def __init__(self, open_session: Callable = default_open,
                 warm_up: Callable[[Callable[[str], None]], float] | None = default_warm_up,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._open_session = open_session
        self._warm_up = warm_up
        self._queue: queue.Queue = queue.Queue()
        self._latest = 0
        self._lock = threading.Lock()
        self._cancel_upto = 0
        self.session: Any = None  # touched only on the worker thread
        self.warm_seconds = float("nan")
        self.background_refresh = True
        self._refresh_failed = False
        _LIVE.add(self)

    # ------------------------------------------------------------ main-thread API
    def submit(self, request: Any) -> int:
        """Queue ``request``; cancels any older job. Returns the new job id."""
        with self._lock:
            self._latest += 1
            job = self._latest
            self._cancel_upto = job - 1
        self._queue.put((job, request))
        return job

    def submit_call(self, kind: str, fn: Callable[[Any], Any], needs_session: bool = False) -> int:
        """Run ``fn(session)`` on the worker (reading / writing files); its return value
        comes back as ``Result.payload`` with ``Result.kind == kind``."""
        return self.submit(_CallJob(kind, fn, needs_session))

    def cancel(self) -> None:
        """Cancel the running job and drop queued ones (returns at once)."""
        with self._lock:
            self._cancel_upto = self._latest

    def stop(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and end the thread; True when it ended in time."""
        self.cancel()
        self._queue.put((0, _STOP))
        return self.wait(timeout_ms)

    # ------------------------------------------------------------ worker thread
    def _is_cancelled(self, job: int) -> bool:
        return job <= self._cancel_upto

    def run(self) -> None:  # noqa: D102 - QThread override
        _leave_a_core_for_the_window()
        if self._warm_up is not None:
            self.busy.emit(True)
            self.message.emit("preparing the map engine (once per start)…")
            try:
                self.warm_seconds = self._warm_up(self.message.emit)
            except Exception as exc:  # noqa: BLE001 - reported, the map may still work
                self.failed.emit(0, exc, traceback.format_exc())
            self.message.emit("map engine ready")
            self.busy.emit(False)
        while True:
            if self._refresh_wanted():
                try:
                    job, request = self._queue.get_nowait()
                except queue.Empty:
                    self._refresh_in_background()
                    continue
            else:
                job, request = self._queue.get()
            if request is _STOP:
                return
            if self._is_cancelled(job):
                self.cancelled.emit(job)
                continue
            self.busy.emit(True)
            try:
                self._run_job(job, request)
                self._refresh_failed = False
            except CancelledError:
                self.cancelled.emit(job)
            except Exception as exc:  # noqa: BLE001 - one handler on the main thread
                self.failed.emit(job, exc, traceback.format_exc())
            finally:
                self.busy.emit(False)

    def _run_job(self, job: int, request: Any) -> None:
        t0 = time.perf_counter()

        def cancel() -> bool:
            return self._is_cancelled(job)

        def progress(done: int, total: int) -> None:
            self.progress.emit(int(done), int(total))

        if isinstance(request, OpenRequest):
            self.message.emit(f"opening {request.checkpoint} with {request.data}…")
            session = self._open_session(request, progress=progress, cancel=cancel)
            self.session = session  # only replaced when the open succeeded
            self._emit(job, "open", t0)
            return
        if isinstance(request, _CallJob):
            if request.needs_session:
                self._require_session()
            payload = request.fn(self.session)
            self.result.emit(Result(job=job, kind=request.kind, state=None, payload=payload,
                                    seconds=time.perf_counter() - t0))
            return
        self._require_session()
        if isinstance(request, StepRequest):
            self._run_steps(job, request, progress, cancel, t0)
        elif isinstance(request, ResetRequest):
            self.session.reset()
            self._emit(job, "reset", t0)
        elif isinstance(request, ForgetRunsRequest):
            forget = getattr(self.session, "forget_runs", None)
            if callable(forget):
                forget()
            self._emit(job, "runs", t0)
        elif isinstance(request, RefreshRequest):
            self.message.emit("refreshing the map for the current model…")
            self.session.refresh(progress=progress, cancel=cancel)
            self._emit(job, "refresh", t0)
        elif isinstance(request, KMeansRequest):
            self.session.kmeans(request, progress=progress, cancel=cancel)
            self._emit(job, "kmeans", t0)
        elif isinstance(request, SinkhornRequest):
            self.session.sinkhorn(request)
            self._emit(job, "sinkhorn", t0)
        else:
            raise TypeError(f"unknown request {request!r}")

    def _require_session(self) -> None:
        if self.session is None:
            raise ProtoviewError("session", "nothing is open yet; open a checkpoint or the demo first")

    def _run_steps(self, job, req: StepRequest, progress, cancel, t0) -> None:
        """Steps one at a time so that the map moves after each (streamed partial results)."""
        total = req.n_steps if req.n_steps > 0 else _steps_left_in_pass(self.session, req)
        one = replace(req, n_steps=1, record_every=1, live=True)
        s = self.session
        for done in range(total):
            if cancel():
                raise CancelledError(f"cancelled after {done} of {total} steps")
            s.step(one, cancel=cancel)
            progress(done + 1, total)
            # the pixels first; then the step's probe, or at a pass end the whole set
            until = "all" if getattr(s, "at_pass_end", False) else "probe"
            more = bool(getattr(s, "refresh_pending" if until == "all" else "probe_pending", False))
            self._emit(job, "step", t0, partial=more or done + 1 < total, followed=more)
            if more and s.refresh_some(seconds=None, until=until, cancel=cancel) is not None:
                self._emit(job, "step", t0, partial=done + 1 < total)

    def _refresh_wanted(self) -> bool:
        return (self.background_refresh and not self._refresh_failed
                and bool(getattr(self.session, "refresh_pending", False)))

    def _refresh_in_background(self) -> None:
        """One slice of the progressive refresh; a new request stops it between batches."""
        job, t0 = self._latest, time.perf_counter()
        try:
            state = self.session.refresh_some(
                seconds=self.refresh_slice, cancel=lambda: not self._queue.empty())
        except CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - reported once; resumes after the next job
            self._refresh_failed = True
            self.failed.emit(job, exc, traceback.format_exc())
            return
        if state is not None:
            self._emit(job, "refresh", t0, partial=bool(self.session.refresh_pending))

    def _emit(self, job: int, kind: str, t0: float, partial: bool = False,
              followed: bool = False) -> None:
        s = self.session
        ds = getattr(s, "dataset", None)
        history = [replace(h) for h in s.history]
        current = getattr(s, "current_run", None)
        self.result.emit(Result(
            job=job, kind=kind, state=_detached(s.state),
            history=history,
            runs=[replace(r, history=history if r is current else list(r.history))
                  for r in getattr(s, "runs", [])],
            current_run=0 if current is None else int(current.number),
            domain_names=tuple(getattr(ds, "domain_names", ()) or ()),
            source_accuracy=float(getattr(s, "source_accuracy", float("nan"))),
            class_names=list(getattr(ds, "class_names", []) or []),
            thumbnail=getattr(ds, "thumbnail", None),
            partial=partial, seconds=time.perf_counter() - t0, followed=followed,
            **(_data_view(ds) if kind == "open" else {}),
        ))


def _data_view(dataset: Any) -> dict[str, Any]:
    """What the data panel shows of a newly opened dataset (read by duck typing)."""
    transform = getattr(dataset, "transform", None)
    describe = getattr(transform, "describe", None)
    return {
        "preview": getattr(dataset, "preview", None) if callable(describe) else None,
        "preprocess": describe() if callable(describe) else "",
        "preprocess_source": str(getattr(dataset, "transform_source", "") or ""),
    }


def _detached(state: Any) -> Any:
    """A shallow copy the worker will not mutate later (arrays are replaced, not edited)."""
    if state is None:
        return None
    return replace(state, metrics=dict(state.metrics), attrs=dict(state.attrs))


@dataclass(frozen=True)
class _CallJob:
    kind: str
    fn: Callable[[Any], Any]
    needs_session: bool


def _steps_left_in_pass(session: Any, req: StepRequest) -> int:
    """Steps to the end of the current pass over the data (one pass when at a boundary).

    Uses the session's AdaptRun when it matches ``req`` (not a public API yet), else
    ceil(N / batch_size).
    """
    run = getattr(session, "_run", None)
    if run is not None and hasattr(run, "steps_per_pass"):
        left = run.steps_per_pass - getattr(run, "position", 0)
        return left if left > 0 else run.steps_per_pass
    n = len(session.dataset) if getattr(session, "dataset", None) is not None else 1
    return max(1, math.ceil(n / max(1, req.batch_size)))
