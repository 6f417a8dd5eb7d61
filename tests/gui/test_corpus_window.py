"""Bad inputs from the corpus (``tests/corpus/make_corpus.py``) opened in the real window.

The window starts on the fast fake session (tests/gui/fakes.py); the corpus files go
through the real loaders (``Session.open``, ``read_snapshot``), as a user's drop or recent
file would. Each must show one message naming the file and the problem, leave the open
session as it was, keep the window working, and never run a file's hidden code.
"""

from __future__ import annotations

import os

import pytest
from PySide6 import QtCore, QtWidgets

from protoview.present import OpenRequest
from protoview.present.compute import open_session as default_open
from tests.corpus.make_corpus import build
from tests.gui.fakes import FakeSession

WINDOW_CASES = ["ckpt_random_bytes", "ckpt_pickle_os_system", "snap_truncated", "ds_empty_folder", "snap_not_hdf5"]


def _open_session(req: OpenRequest, progress=None, cancel=None):
    """The demo (the window's start) on the fake session; every file through the real one."""
    if req == OpenRequest():
        return FakeSession.open(req, progress, cancel)
    return default_open(req, progress, cancel)


@pytest.fixture
def window(qtbot, tmp_path):
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=_open_session, warm_up=None, raise_errors=False)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        w.open_demo()
    qtbot.waitUntil(lambda: w.state is not None, timeout=2000)
    yield w
    w.close()


@pytest.mark.parametrize("name", WINDOW_CASES)
def test_a_corpus_file_shows_its_name_and_the_window_keeps_working(window, qtbot, tmp_path, name):
    (case,) = build(tmp_path / "corpus", names=[name])
    w = window
    state, request = w.state, w.open_request
    with qtbot.waitSignal(w.worker.failed, timeout=60_000):
        w.open_path(case.paths[0])  # as a drop or a recent file: opened by its kind
    assert all(word in w.last_error for word in case.expect), w.last_error
    assert "internal error" not in w.last_error and "\n" not in w.last_error
    if case.marker is not None:
        # hidden code: the window asks before anything runs; the user declines
        assert w.trust_box.isVisible() and not w.error_box.isVisible()
        assert case.expect[0] in w.trust_box.text() and "runs that code" in w.trust_box.text()
        w.trust_box.button(QtWidgets.QMessageBox.StandardButton.Cancel).click()
        assert not os.path.lexists(case.marker)
    else:
        assert w.error_box.isVisible() and case.expect[0] in w.error_box.text()
    assert case.expect[0] in w.status_label.text()
    assert case.marker is None or not os.path.lexists(case.marker)
    # the session that was open stays open, and the next open starts from it
    assert w.state is state and w.snapshot is None
    assert w.open_request == request
    w.error_box.hide()
    with qtbot.waitSignal(w.worker.result, timeout=10_000):
        w.adapt_panel.step_button.click()
    assert [h.step for h in w.history] == [1]
    with qtbot.waitSignal(w.worker.result, timeout=10_000):
        w.open_demo()
    assert w.state is not state and w.history == []
    assert case.marker is None or not os.path.lexists(case.marker)
