"""The question asked when a checkpoint holds pickled code (private to
:mod:`protoview.gui.window`): never loaded silently, trusted only for this one open
(nothing is remembered)."""

from __future__ import annotations

from dataclasses import replace

from PySide6 import QtCore, QtWidgets

from protoview.errors import UntrustedCodeError
from protoview.present import OpenRequest


class TrustQuestion(QtCore.QObject):
    """Owns the (non-modal) question box: ``box`` and its ``button`` that trusts. Emits
    ``trusted(object)``: the request to open again, with ``trust=True``."""

    trusted = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        box = QtWidgets.QMessageBox(parent)
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setWindowTitle("protoview — run code from this checkpoint?")
        self.button = box.addButton("Open and run its code",
                                    QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(self._on_answer)
        self.box = box
        self._request: OpenRequest | None = None

    def ask(self, request: OpenRequest, error: UntrustedCodeError) -> None:
        """Ask whether to open ``request``, which ``error`` refused for its pickled code."""
        self._request = request
        self.box.setText(
            f"{error.where}\n\nThis checkpoint {error.problem.split(';')[0]}.\n\n"
            "Loading it runs that code on this computer, with your permissions. Open it only "
            "if you trust where the file came from (the command line's --trust-checkpoint).")
        self.box.show()

    def _on_answer(self, button) -> None:
        request, self._request = self._request, None
        if button is self.button and request is not None:
            self.trusted.emit(replace(request, trust=True))
