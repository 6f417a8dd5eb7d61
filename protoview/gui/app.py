"""Start the window: ``run_app()`` opens the built-in demo, ``run_app(ckpt, data)`` those files."""

from __future__ import annotations

import sys

from protoview.core.session import OpenRequest
from protoview.gui.main_window import MainWindow

__all__ = ["MainWindow", "run_app", "initial_request"]


def initial_request(checkpoint: str | None = None, data: str | None = None) -> OpenRequest:
    """The OpenRequest for the command line: the demo when nothing is given."""
    if checkpoint is None and data is None:
        return OpenRequest()
    base = OpenRequest()
    return OpenRequest(checkpoint=checkpoint or base.checkpoint, data=data or base.data)


def run_app(checkpoint: str | None = None, data: str | None = None) -> int:
    """Create the QApplication and the window, open the files (or the demo), run the loop."""
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("protoview")
    app.setOrganizationName("protoview")
    window = MainWindow()
    window.show()
    window.submit(initial_request(checkpoint, data))
    return int(app.exec())
