"""Start the window: ``run_app()`` opens the built-in demo, ``run_app(ckpt, data)`` those files."""

from __future__ import annotations

import sys

from protoview.core.session import OpenRequest
from protoview.gui.main_window import MainWindow

__all__ = ["MainWindow", "run_app", "initial_request"]


def initial_request(checkpoint: str | None = None, data: str | None = None, **options) -> OpenRequest:
    """The OpenRequest for the command line: the demo when nothing is given.

    options: ``arch``, ``split``, ``nb_proxy``, ``preprocess``, ``device`` (None: not given).
    """
    given = {key: value for key, value in options.items() if value is not None}
    if checkpoint is None and data is None and not given:
        return OpenRequest()
    base = OpenRequest()
    return OpenRequest(checkpoint=checkpoint or base.checkpoint, data=data or base.data, **given)


def run_app(checkpoint: str | None = None, data: str | None = None, **options) -> int:
    """Create the QApplication and the window, open the files (or the demo), run the loop.

    options: as :func:`initial_request` (the command line's ``--arch`` ... ``--preprocess``).
    """
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("protoview")
    app.setOrganizationName("protoview")
    window = MainWindow()
    window.show()
    window.submit(initial_request(checkpoint, data, **options))
    return int(app.exec())
