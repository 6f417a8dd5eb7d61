"""The process's one QApplication (private to :mod:`protoview.gui`)."""

from __future__ import annotations

import sys

from PySide6 import QtWidgets


def application() -> QtWidgets.QApplication:
    """The QApplication (made on first use), named so that QSettings find the window's."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("protoview")
    app.setOrganizationName("protoview")
    return app
