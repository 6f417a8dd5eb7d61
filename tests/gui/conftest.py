"""GUI test fixtures: a leak check (threads, workers, active timers) and a window on fakes."""

from __future__ import annotations

import threading

import pytest
from PySide6 import QtCore

from tests.gui.fakes import FakeSession


@pytest.fixture(autouse=True)
def no_leaks(qapp):
    """Fail a test that leaves a compute worker, a Python thread or an active QTimer."""
    from protoview.gui._qt import live_workers

    before = set(threading.enumerate())
    yield
    qapp.processEvents()
    assert not live_workers(), "a ComputeWorker thread is still running"
    # QThreads are checked above; a _DummyThread is only Python's record of a foreign thread
    # that once called threading.current_thread() and never goes away.
    extra = [t for t in threading.enumerate() if t not in before and t.is_alive()
             and not isinstance(t, threading._DummyThread)]
    assert not extra, f"threads left running: {extra}"
    active = [t for w in qapp.topLevelWidgets() for t in w.findChildren(QtCore.QTimer)
              if t.isActive()]
    assert not active, f"{len(active)} QTimer(s) still active: {[t.parent() for t in active]}"


@pytest.fixture
def fake_session_cls():
    """A fresh FakeSession subclass per test (so class settings do not leak)."""
    return type("FakeSessionT", (FakeSession,), {"opened_requests": []})


@pytest.fixture
def window(qtbot, tmp_path, fake_session_cls):
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=fake_session_cls.open, warm_up=None,
                   raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


@pytest.fixture
def opened(window, qtbot):
    """The window with a fake session open and its first map drawn."""
    with qtbot.waitSignal(window.worker.result, timeout=5000):
        window.open_demo()
    qtbot.waitUntil(lambda: window.state is not None, timeout=2000)
    return window
