import time

import numpy as np
import pytest

from protoview.errors import CheckpointError
from protoview.gui._qt import ComputeWorker
from protoview.present import OpenRequest, StepRequest
from protoview.present import Update as Result


@pytest.fixture
def worker(qtbot, fake_session_cls):
    w = ComputeWorker(open_session=fake_session_cls.open, warm_up=None)
    w.start()
    yield w
    assert w.stop(5000)


def _open(worker, qtbot):
    with qtbot.waitSignal(worker.result, timeout=5000) as blocker:
        worker.submit(OpenRequest())
    return blocker.args[0]


def test_open_and_step_results_carry_numpy_only(worker, qtbot):
    res = _open(worker, qtbot)
    assert isinstance(res, Result) and res.kind == "open"
    assert isinstance(res.state.embedding, np.ndarray)
    results = []
    worker.result.connect(results.append)
    worker.submit(StepRequest(n_steps=3))
    qtbot.waitUntil(lambda: bool(results) and not results[-1].partial, timeout=5000)
    assert [r.partial for r in results] == [True, True, False]  # streamed, one per step
    assert [len(r.history) for r in results] == [1, 2, 3]
    # each result is a detached copy: later steps do not change what was sent
    assert not np.allclose(results[0].state.embedding, results[-1].state.embedding)


def test_warm_up_runs_on_the_worker_thread(qtbot, fake_session_cls):
    import threading

    seen = {}

    def warm(message):
        seen["thread"] = threading.current_thread()
        message("compiling")
        return 0.01

    w = ComputeWorker(open_session=fake_session_cls.open, warm_up=warm)
    said = []
    w.progress.connect(lambda _done, _total, what: said.append(what))
    with qtbot.waitSignal(w.result, timeout=5000):
        w.start()
        w.submit(OpenRequest())
    # the open first (it is not kept waiting by the one-time costs), the warm-up when idle
    qtbot.waitUntil(lambda: "thread" in seen, timeout=5000)
    assert w.stop(5000)
    qtbot.waitUntil(lambda: "compiling" in said, timeout=2000)  # delivered on this thread
    assert seen["thread"] is not threading.main_thread()
    assert any("preparing the map engine" in m for m in said) and "compiling" in said
    assert w.warm_seconds == pytest.approx(0.01)


def test_error_reaches_failed_and_session_survives(worker, qtbot):
    _open(worker, qtbot)
    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.submit(OpenRequest(checkpoint="/tmp/broken.pt"))
    job, err, _tb = blocker.args
    assert isinstance(err, CheckpointError) and "/tmp/broken.pt" in str(err)
    assert worker.session is not None  # the old session is kept
    with qtbot.waitSignal(worker.result, timeout=5000):
        worker.submit(StepRequest(n_steps=1))


def test_step_before_open_is_a_clear_error(worker, qtbot):
    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.submit(StepRequest())
    assert "open" in str(blocker.args[1])


def test_cancel_returns_within_a_second(worker, qtbot, fake_session_cls):
    _open(worker, qtbot)
    fake_session_cls.step_seconds = 30.0
    with qtbot.waitSignal(worker.busy, timeout=2000):
        worker.submit(StepRequest(n_steps=5))
    t0 = time.perf_counter()
    with qtbot.waitSignal(worker.cancelled, timeout=1000):
        worker.cancel()
    assert time.perf_counter() - t0 < 1.0
    fake_session_cls.step_seconds = 0.0


def test_newer_request_cancels_older(worker, qtbot, fake_session_cls):
    _open(worker, qtbot)
    fake_session_cls.step_seconds = 30.0
    cancelled, results = [], []
    worker.cancelled.connect(cancelled.append)
    worker.result.connect(results.append)
    old = worker.submit(StepRequest(n_steps=5))
    qtbot.waitUntil(lambda: worker.session is not None, timeout=1000)
    fake_session_cls.step_seconds = 0.0
    new = worker.submit(StepRequest(n_steps=1))
    qtbot.waitUntil(lambda: any(r.job == new for r in results), timeout=3000)
    assert old in cancelled
    assert not any(r.job == old for r in results)


def test_signals_reach_receivers_on_the_main_thread_and_not_after_a_disconnect(worker, qtbot):
    """Receivers are called on the main thread, and one disconnected while a signal was on
    its way is not called. A plain callable (pytest-qt's waitSignal blockers) used to get
    the calls queued before its disconnect, even once it was collected: a segmentation
    fault in one of three runs of the GUI tests. The worker re-emits every signal on the
    main thread, where a disconnect takes effect at once."""
    import threading

    _open(worker, qtbot)
    threads, late = [], []
    worker.result.connect(lambda _r: threads.append(threading.current_thread()))
    worker.progress.connect(lambda *_a: threads.append(threading.current_thread()))
    worker.submit(StepRequest(n_steps=2))
    qtbot.waitUntil(lambda: len(threads) >= 2, timeout=5000)
    assert all(t is threading.main_thread() for t in threads)
    receiver = late.append
    worker.result.connect(receiver)
    worker.submit(StepRequest(n_steps=3))
    time.sleep(0.5)  # the worker emits its three steps meanwhile; none is delivered yet
    worker.result.disconnect(receiver)
    qtbot.wait(100)
    assert late == []
