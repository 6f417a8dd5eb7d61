"""The bar above the map (private to :mod:`protoview.gui.window`): colour mode (and the
run fixed/broken compares with), box / lasso selection, "go to #", how fresh the map is
with its Refresh button, and the selection and highlight summaries (elided: a long text
never widens the window)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.map import COLOR_MODES
from protoview.gui.window._versus import VersusChooser


class ElidedLabel(QtWidgets.QLabel):
    """A one-line label that shows as much of its text as fits, ending in "…", and never
    asks for more width than a few characters; the whole text is its tool tip."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                           QtWidgets.QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._full = text or ""
        self.setToolTip(self._full)
        super().setText(self._full)
        self.update()

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt override
        return QtCore.QSize(self.fontMetrics().horizontalAdvance("M") * 4,
                            super().minimumSizeHint().height())

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt override
        return QtCore.QSize(min(super().sizeHint().width(),
                                self.fontMetrics().horizontalAdvance("M") * 30),
                            super().sizeHint().height())

    def shown_text(self) -> str:
        width = max(self.contentsRect().width(), 0)
        return self.fontMetrics().elidedText(self._full, QtCore.Qt.TextElideMode.ElideRight,
                                             width)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QtGui.QPainter(self)
        rect = self.contentsRect()
        painter.drawText(rect, int(self.alignment() | QtCore.Qt.AlignmentFlag.AlignVCenter),
                         self.shown_text())


class MapBar(QtCore.QObject):
    """The controls on one row, the selection and highlight summaries on the next, in the
    layout ``rows`` (the window puts it above the map; a layout, not a widget of its own,
    so that a change of font re-lays the window out at once, as presentation mode needs).

    Emits ``colour_chosen(str)``, ``select_mode_chosen(object)`` (``box``, ``lasso`` or
    None), ``go_to_requested()`` (Return in "go to #") and ``refresh_requested()``.
    """

    colour_chosen = QtCore.Signal(str)
    select_mode_chosen = QtCore.Signal(object)
    go_to_requested = QtCore.Signal()
    refresh_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        metrics = parent.fontMetrics()
        self.colour_combo = QtWidgets.QComboBox()
        self.colour_combo.addItems(list(COLOR_MODES))
        self.colour_combo.setToolTip("colour samples by (L)")
        self.colour_combo.currentTextChanged.connect(self.colour_chosen)
        self.versus = VersusChooser(self)
        self.box_button = self._mode_button(
            "Box", "box", "left-drag selects a box of samples (right-drag always does)")
        self.lasso_button = self._mode_button(
            "Lasso", "lasso", "left-drag draws a free-hand lasso around samples")
        self.goto_edit = self._goto_edit(metrics)
        self.selection_label = ElidedLabel("")
        self.selection_label.setObjectName("SelectionLabel")
        self.highlight_label = ElidedLabel("")
        self.highlight_label.setObjectName("HighlightLabel")
        self.map_label = QtWidgets.QLabel("")
        self.map_label.setObjectName("MapFreshness")
        # a fixed width: its text changes with every result, and a label that resizes
        # re-lays out (and repaints) the window each time
        self.map_label.setMinimumWidth(
            metrics.horizontalAdvance("map of step 00000 — 100% refreshed") + 8)
        self.map_label.setToolTip("after a step its batch moves at once; the other samples "
                                  "are refreshed to the new model in the background")
        self.refresh_button = QtWidgets.QToolButton()
        self.refresh_button.setText("Refresh map")
        self.refresh_button.setToolTip(
            "the exact map and full-set accuracy of the current model, now")
        self.refresh_button.setEnabled(False)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.rows = self._lay_out()

    def _mode_button(self, text: str, mode: str, tip: str) -> QtWidgets.QToolButton:
        button = QtWidgets.QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setCheckable(True)
        button.toggled.connect(lambda on: self.select_mode_chosen.emit(mode if on else None))
        return button

    def _goto_edit(self, metrics: QtGui.QFontMetrics) -> QtWidgets.QLineEdit:
        edit = QtWidgets.QLineEdit()
        edit.setPlaceholderText("go to #")
        edit.setToolTip("jump to a sample by its number: marks it, centres the map on it, "
                        "lists its nearest neighbours (Ctrl+G)")
        edit.setValidator(QtGui.QIntValidator(0, 2**31 - 1, edit))
        edit.setMaximumWidth(metrics.horizontalAdvance("M") * 7)
        edit.setMinimumWidth(metrics.horizontalAdvance("go to #") + 16)  # never "g…"
        edit.returnPressed.connect(self.go_to_requested)
        return edit

    def _lay_out(self) -> QtWidgets.QVBoxLayout:
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 0)
        bar.addWidget(QtWidgets.QLabel("Colour by"))
        bar.addWidget(self.colour_combo)
        bar.addWidget(QtWidgets.QLabel("Select"))
        bar.addWidget(self.box_button)
        bar.addWidget(self.lasso_button)
        bar.addWidget(self.goto_edit)
        bar.addStretch(1)
        bar.addWidget(self.map_label)
        bar.addWidget(self.refresh_button)
        summary = QtWidgets.QHBoxLayout()
        summary.setContentsMargins(6, 0, 6, 0)
        summary.addWidget(self.versus.combo)  # here, not above: the top row keeps its width
        summary.addWidget(self.selection_label, 3)
        summary.addWidget(self.highlight_label, 2)
        rows = QtWidgets.QVBoxLayout()
        rows.setSpacing(2)
        rows.addLayout(bar)
        rows.addLayout(summary)
        return rows

    def show_select_mode(self, mode: str | None) -> None:
        """Check the Box / Lasso button of ``mode`` (None: neither), without a signal."""
        for button, m in ((self.box_button, "box"), (self.lasso_button, "lasso")):
            if button.isChecked() != (m == mode):
                button.blockSignals(True)
                button.setChecked(m == mode)
                button.blockSignals(False)

    def typed_sample(self) -> int | None:
        """The number typed in "go to #" (None: nothing typed)."""
        text = self.goto_edit.text().strip()
        return int(text) if text else None

    def ask_go_to(self) -> None:
        """Put the focus in "go to #" with its text selected (Ctrl+G)."""
        self.goto_edit.setFocus()
        self.goto_edit.selectAll()
