"""The window on a fast fake session: cancel, drops, recent files, errors."""

from __future__ import annotations

import time

import numpy as np
from PySide6 import QtCore, QtGui

from protoview.present import OpenRequest


def test_cancel_a_long_run_within_a_second_and_keep_working(opened, qtbot, fake_session_cls):
    w = opened
    fake_session_cls.step_seconds = 2.0  # each step is two seconds of busy work
    w.adapt_panel.n_steps.setValue(5)
    qtbot.mouseClick(w.adapt_panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.cancel_button.isEnabled(), timeout=2000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(w.worker.cancelled, timeout=3000):
        qtbot.mouseClick(w.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    assert time.perf_counter() - t0 < 1.0
    assert w.history == []  # no half step recorded
    qtbot.waitUntil(lambda: not w.cancel_button.isEnabled(), timeout=2000)
    fake_session_cls.step_seconds = 0.0
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        qtbot.mouseClick(w.adapt_panel.step_button, QtCore.Qt.MouseButton.LeftButton)
    assert [h.step for h in w.history] == [1]


def _drop(window, path) -> None:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(path))])
    pos = QtCore.QPointF(window.width() / 2, window.height() / 2)
    event = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime,
                             QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_dropped_files_open_by_kind(opened, qtbot, tmp_path):
    from protoview.core.features import FeatureResult, write_feature_file

    w = opened
    # a snapshot opens as a snapshot
    snap = tmp_path / "run.h5"
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        w.export_snapshot(str(snap))
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        _drop(w, snap)
    assert w.snapshot is not None
    # a features file (also .h5) opens as data, keeping the checkpoint
    feats = tmp_path / "features.h5"
    rng = np.random.default_rng(0)
    result = FeatureResult(rng.normal(size=(20, 4)).astype(np.float32),
                           rng.normal(size=(20, 3)).astype(np.float32),
                           rng.integers(0, 3, 20).astype(np.int64))
    write_feature_file(feats, result, attrs={})
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        _drop(w, feats)
    assert w.open_request.data == str(feats)
    assert w.open_request.checkpoint == OpenRequest().checkpoint
    # a checkpoint replaces the checkpoint and keeps the data
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"x")
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        _drop(w, ckpt)
    assert w.open_request.checkpoint == str(ckpt) and w.open_request.data == str(feats)
    assert str(ckpt) in w.recent_files()


def test_a_broken_checkpoint_shows_its_name_and_the_session_stays(opened, qtbot):
    w = opened
    w.raise_errors = False
    before = w.state
    with qtbot.waitSignal(w.worker.failed, timeout=5000):
        w.open_files(checkpoint="/data/broken.pt")
    assert "broken.pt" in w.last_error and "bad magic number" in w.last_error
    assert w.error_box.isVisible()
    assert w.state is before  # still showing the last good session
    w.error_box.hide()
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        w.adapt_panel.step_button.click()
    assert w.history[-1].step == 1


def test_a_checkpoint_with_code_asks_before_running_it(opened, qtbot, fake_session_cls):
    """Never loaded silently: the window asks; Cancel keeps the open session, and only
    the explicit answer opens the file with its code allowed (this once)."""
    from PySide6 import QtWidgets

    w = opened
    state = w.state
    with qtbot.waitSignal(w.worker.failed, timeout=5000):
        w.submit(OpenRequest(checkpoint="/data/pickled.pt", data="demo"))
    assert w.trust_box.isVisible() and not w.error_box.isVisible()
    assert "/data/pickled.pt" in w.trust_box.text() and "mymodule.Net" in w.trust_box.text()
    assert "runs that code" in w.trust_box.text()
    assert not any(r.trust for r in fake_session_cls.opened_requests)
    # Cancel: nothing is opened, the session stays
    w.trust_box.button(QtWidgets.QMessageBox.StandardButton.Cancel).click()
    qtbot.wait(50)
    assert w.state is state and not any(r.trust for r in fake_session_cls.opened_requests)
    # asked again, the user trusts it: opened once with trust, then forgotten
    with qtbot.waitSignal(w.worker.failed, timeout=5000):
        w.submit(OpenRequest(checkpoint="/data/pickled.pt", data="demo"))
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        w.trust_button.click()
    assert fake_session_cls.opened_requests[-1].trust
    assert fake_session_cls.opened_requests[-1].checkpoint == "/data/pickled.pt"
    assert w.state is not state
