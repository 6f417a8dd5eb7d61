"""Start the window: ``run_app()`` opens the built-in demo, ``run_app(ckpt, data)`` those files.

Before Qt starts, :func:`~protoview.gui._qt.xcb_problem` checks that the system
libraries of Qt's X11 platform are there (one line naming the packages if not, exit 2).

``PROTOVIEW_SCREENSHOT=PATH``: save the window as a PNG at ``PATH`` once the first map is
drawn, then quit (exit 0; 1 when the open failed). CI uses it to drive the window once
on a real X server (tests/gui/test_xcb.py).
"""

from __future__ import annotations

import os
import sys

from protoview.gui._qt import _platform, application
from protoview.gui.window._main_window import MainWindow
from protoview.present import OpenRequest

SCREENSHOT_ENV = "PROTOVIEW_SCREENSHOT"

__all__ = ["SCREENSHOT_ENV", "initial_request", "run_app"]


def initial_request(checkpoint: str | None = None, data: str | None = None,
                    **options) -> OpenRequest:
    """The OpenRequest for the command line: the demo when nothing is given.

    options: ``arch``, ``split``, ``nb_proxy``, ``preprocess``, ``device``, ``features``,
    ``dino_weights`` (None: not given).
    """
    given = {key: value for key, value in options.items() if value is not None}
    if checkpoint is None and data is None and not given:
        return OpenRequest()
    base = OpenRequest()
    return OpenRequest(checkpoint=checkpoint or base.checkpoint, data=data or base.data, **given)


def run_app(checkpoint: str | None = None, data: str | None = None, *,
            snapshot: str | None = None, **options) -> int:
    """Create the QApplication and the window, open the files (or the demo), run the loop.

    options: as :func:`initial_request` (the command line's ``--arch`` ... ``--preprocess``).
    snapshot: open this snapshot instead (a timeline of checkpoints: its replay).
    """
    problem = _platform.xcb_problem()
    if problem is not None:
        print(f"protoview: error: {problem}", file=sys.stderr)
        return 2
    app = application()
    window = MainWindow()
    window.show()
    shot = os.environ.get(SCREENSHOT_ENV, "").strip()
    if shot:
        _screenshot_then_quit(app, window, shot)
    if snapshot is not None:
        window.open_snapshot(snapshot)
    else:
        window.submit(initial_request(checkpoint, data, **options))
    return int(app.exec())


def _screenshot_then_quit(app, window, path: str) -> None:
    """Save ``window`` to ``path`` after the first map (and its charts) are drawn, quit."""
    from PySide6 import QtCore

    def on_result(res) -> None:
        if res.kind in ("open", "read_snapshot") and not getattr(res, "partial", False):
            QtCore.QTimer.singleShot(800, save)  # the charts and the fit land in later turns

    def save() -> None:
        window.view.finish_animation()
        ok = window.grab().save(path, "PNG")
        print(f"protoview: screenshot {'saved to' if ok else 'could not be saved to'} {path} "
              f"(platform {app.platformName()})", file=sys.stderr)
        window.close()
        app.exit(0 if ok else 1)

    def on_failed(_job, error, _tb) -> None:
        print(f"protoview: error: {error}", file=sys.stderr)
        window.close()
        app.exit(1)

    window.worker.result.connect(on_result)
    window.worker.failed.connect(on_failed)
