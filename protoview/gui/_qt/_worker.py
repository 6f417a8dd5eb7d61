"""ONE long-lived compute worker that owns the session (a QThread with a request queue).

The main thread calls :meth:`ComputeWorker.submit` with a frozen request (from
:mod:`protoview.present`); the worker drives the session's generator for it
(:meth:`~protoview.present.Computes.run`) and sends each :class:`~protoview.present.Update`
back through a queued signal as it comes: it never rewrites a request and reads nothing
of the session but its :class:`~protoview.present.Computes` protocol. A newer request
cancels the older one: the ``cancel`` callable handed to the session returns True as soon
as a newer job was submitted (or :meth:`cancel` was called). Errors go to ``failed`` (one
handler on the main thread); the session stays as it was before the failing job.

When no request waits, the worker refreshes the rest of the map in slices
(:meth:`~protoview.present.Computes.background`), sending a ``refresh`` update after each;
any new request interrupts it between batches, and it resumes once the queue is empty.

Cold start: the one-time costs (the map engine's compilation, torch's first optimiser
step: ``warm_up``) are paid after the first open, when idle, or before the first job that
needs them; that first open shows a quick PCA preview of the map at once (the Data panel
with it) and then the UMAP map, which compiles the engine, glides in.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PySide6 import QtCore

from protoview.errors import CancelledError, ProtoviewError
from protoview.present import Computes, OpenRequest, Update
from protoview.present import compute as present_compute

_LIVE: weakref.WeakSet = weakref.WeakSet()
_STOP = object()


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


@dataclass(frozen=True)
class _CallJob:
    kind: str
    fn: Callable[..., Any]
    needs_session: bool
    reports: bool = False  # fn(session, detail, cancel): progress and cancel (a long job)


class ComputeWorker(QtCore.QThread):
    """The compute thread. Start it with :meth:`start`; stop it with :meth:`stop`.

    Signals (all delivered queued on the main thread): ``result(Update)``,
    ``progress(int done, int total, str what)`` (what is being done, for the progress
    bar; "" when only counted), ``message(str)``, ``failed(int job, object error,
    str traceback)``, ``cancelled(int job)``, ``busy(bool)``.

    open_session(request, progress, cancel) -> Computes and warm_up(message) -> seconds are
    injected (tests pass fakes); the defaults open a real session.
    """

    result = QtCore.Signal(object)
    progress = QtCore.Signal(int, int, str)
    message = QtCore.Signal(str)
    failed = QtCore.Signal(int, object, str)
    cancelled = QtCore.Signal(int)
    busy = QtCore.Signal(bool)
    # The worker thread emits these twins; each is queued to this object (which lives on
    # the main thread) and re-emitted there as the public signal, so every receiver is
    # called directly on the main thread. A Python callable connected to a signal emitted
    # from another thread gets queued calls, and one still queued when its receiver was
    # disconnected and collected (pytest-qt's waitSignal blockers) ran on a half-freed
    # object: a segmentation fault, seen once in three runs of the GUI tests.
    _result = QtCore.Signal(object)
    _progress = QtCore.Signal(int, int, str)
    _message = QtCore.Signal(str)
    _failed = QtCore.Signal(int, object, str)
    _cancelled = QtCore.Signal(int)
    _busy = QtCore.Signal(bool)

    #: seconds of progressive refresh between two looks at the queue (at least one batch)
    refresh_slice = 0.5

    def __init__(self, open_session: Callable[..., Computes] = present_compute.open_session,
                 warm_up: Callable[[Callable[[str], None]], float] | None = present_compute.warm_up,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._open_session = open_session
        self._warm_up = warm_up
        self._queue: queue.Queue = queue.Queue()
        self._latest = 0
        self._lock = threading.Lock()
        self._cancel_upto = 0
        self.session: Computes | None = None  # touched only on the worker thread
        self.warm_seconds = float("nan")
        self._warm_pending = warm_up is not None
        self.background_refresh = True
        self._refresh_failed = False
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        for name in ("result", "progress", "message", "failed", "cancelled", "busy"):
            getattr(self, "_" + name).connect(getattr(self, name), queued)
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

    def submit_call(self, kind: str, fn: Callable[..., Any], needs_session: bool = False,
                    reports: bool = False) -> int:
        """Run ``fn(session)`` on the worker (reading / writing files); its return value
        comes back as ``Update.payload`` with ``Update.kind == kind``. ``reports``: a long
        job, called ``fn(session, detail, cancel)`` (``detail(done, total, text)`` drives
        the progress bar; ``cancel()`` is True once it is cancelled: raise CancelledError);
        the session is not touched unless ``fn`` does."""
        return self.submit(_CallJob(kind, fn, needs_session, reports))

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
        while True:
            if self._warm_pending and self.session is not None and self._queue.empty():
                self._warm(in_job=False)  # idle after the first open: the one-time costs now
                continue
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
                self._cancelled.emit(job)
                continue
            self._busy.emit(True)
            try:
                self._run_job(job, request)
                self._refresh_failed = False
            except CancelledError:
                self._cancelled.emit(job)
            except Exception as exc:  # noqa: BLE001 - one handler on the main thread
                self._failed.emit(job, exc, traceback.format_exc())
            finally:
                self._busy.emit(False)

    def _warm(self, in_job: bool = True) -> None:
        """The one-time costs, once (``in_job``: inside a job, which says it is busy)."""
        if not self._warm_pending:
            return
        self._warm_pending = False
        if not in_job:
            self._busy.emit(True)
        # on the progress bar, not the status line (which keeps the last result's)
        say = lambda text: self._progress.emit(0, 0, text)  # noqa: E731
        say("preparing the map engine and the optimiser (once per start)")
        try:
            self.warm_seconds = self._warm_up(say)
        except Exception as exc:  # noqa: BLE001 - reported, the map may still work
            self._failed.emit(0, exc, traceback.format_exc())
        if not in_job:
            self._busy.emit(False)

    def _run_job(self, job: int, request: Any) -> None:
        t0 = time.perf_counter()

        def cancel() -> bool:
            return self._is_cancelled(job)

        def progress(done: int, total: int) -> None:
            self._progress.emit(int(done), int(total), "")

        def detail(done: int, total: int, text: str) -> None:
            self._progress.emit(int(done), int(total), str(text))

        if isinstance(request, OpenRequest):
            self._open(job, request, t0, detail, cancel)
            return
        if isinstance(request, _CallJob):
            if request.needs_session:
                self._require_session()
            payload = (request.fn(self.session, detail, cancel) if request.reports
                       else request.fn(self.session))
            self._send(job, Update(kind=request.kind, payload=payload,
                                   seconds=time.perf_counter() - t0))
            return
        self._require_session()
        self._warm()  # a step must not pay the one-time costs inside it
        for update in self.session.run(request, progress, cancel, detail):
            self._send(job, update)

    def _open(self, job: int, request: OpenRequest, t0: float, detail, cancel) -> None:
        """Open, send it (a quick preview first while the map engine is not prepared yet),
        then the map."""
        self._message.emit(f"opening {request.checkpoint} with {request.data}…")
        preview = {"preview": True} if self._warm_pending else {}
        session = self._open_session(
            request, progress=lambda d, t: detail(d, t, "extracting features"), cancel=cancel,
            **preview)
        self.session = session  # only replaced when the open succeeded
        self._send(job, session.update("open", request, t0, partial=session.map_pending))
        if session.map_pending:
            self._progress.emit(0, 0, "drawing the UMAP map (a new machine's first start "
                               "compiles the map engine: about half a minute)")
        for update in session.finish_open(request, cancel=cancel):
            self._send(job, update)

    def _send(self, job: int, update: Update) -> None:
        self._result.emit(replace(update, job=job))

    def _require_session(self) -> None:
        if self.session is None:
            raise ProtoviewError("session", "nothing is open yet; open a checkpoint or the demo first")

    def _refresh_wanted(self) -> bool:
        return (self.background_refresh and not self._refresh_failed
                and self.session is not None and bool(self.session.refresh_pending))

    def _refresh_in_background(self) -> None:
        """One slice of the progressive refresh; a new request stops it between batches."""
        job = self._latest
        try:
            update = self.session.background(self.refresh_slice,
                                             cancel=lambda: not self._queue.empty())
        except CancelledError:
            return
        except Exception as exc:  # noqa: BLE001 - reported once; resumes after the next job
            self._refresh_failed = True
            self._failed.emit(job, exc, traceback.format_exc())
            return
        if update is not None:
            self._send(job, update)
