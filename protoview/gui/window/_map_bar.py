"""The bar above the map (private): colour mode (and the run fixed/broken compares with),
box / lasso selection, "go to #", how
fresh the map is with its Refresh button, and the selection and highlight summaries (elided: a long text never widens the window)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.window import _versus
from protoview.gui.map import COLOR_MODES


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


def build_map_bar(win) -> QtWidgets.QVBoxLayout:
    """Create the bar's widgets on ``win`` (a MainWindow) and return its layout: the
    controls on one row, the selection and highlight summaries on the next."""
    win.colour_combo = QtWidgets.QComboBox()
    win.colour_combo.addItems(list(COLOR_MODES))
    win.colour_combo.setToolTip("colour samples by (L)")
    win.colour_combo.currentTextChanged.connect(win.set_color_mode)
    win.versus_combo = _versus.build_combo(win)
    win.box_button = QtWidgets.QToolButton()
    win.box_button.setText("Box")
    win.box_button.setToolTip("left-drag selects a box of samples (right-drag always does)")
    win.lasso_button = QtWidgets.QToolButton()
    win.lasso_button.setText("Lasso")
    win.lasso_button.setToolTip("left-drag draws a free-hand lasso around samples")
    for button, mode in ((win.box_button, "box"), (win.lasso_button, "lasso")):
        button.setCheckable(True)
        button.toggled.connect(lambda on, m=mode: win.set_select_mode(m if on else None))
    win.goto_edit = QtWidgets.QLineEdit()
    win.goto_edit.setPlaceholderText("go to #")
    win.goto_edit.setToolTip("jump to a sample by its number: marks it, centres the map on "
                             "it, lists its nearest neighbours (Ctrl+G)")
    win.goto_edit.setValidator(QtGui.QIntValidator(0, 2**31 - 1, win.goto_edit))
    win.goto_edit.setMaximumWidth(win.fontMetrics().horizontalAdvance("M") * 7)
    win.goto_edit.setMinimumWidth(win.fontMetrics().horizontalAdvance("go to #") + 16)  # never "g…"
    win.goto_edit.returnPressed.connect(win.go_to_typed_sample)
    win.selection_label = ElidedLabel("")
    win.selection_label.setObjectName("SelectionLabel")
    win.highlight_label = ElidedLabel("")
    win.highlight_label.setObjectName("HighlightLabel")
    win.map_label = QtWidgets.QLabel("")
    win.map_label.setObjectName("MapFreshness")
    # a fixed width: its text changes with every result, and a label that resizes
    # re-lays out (and repaints) the window each time
    win.map_label.setMinimumWidth(
        win.fontMetrics().horizontalAdvance("map of step 00000 — 100% refreshed") + 8)
    win.map_label.setToolTip("after a step its batch moves at once; the other samples "
                             "are refreshed to the new model in the background")
    win.refresh_button = QtWidgets.QToolButton()
    win.refresh_button.setText("Refresh map")
    win.refresh_button.setToolTip("the exact map and full-set accuracy of the current model, now")
    win.refresh_button.setEnabled(False)
    win.refresh_button.clicked.connect(win.refresh_map)
    bar = QtWidgets.QHBoxLayout()
    bar.setContentsMargins(6, 4, 6, 0)
    bar.addWidget(QtWidgets.QLabel("Colour by"))
    bar.addWidget(win.colour_combo)
    bar.addWidget(QtWidgets.QLabel("Select"))
    bar.addWidget(win.box_button)
    bar.addWidget(win.lasso_button)
    bar.addWidget(win.goto_edit)
    bar.addStretch(1)
    bar.addWidget(win.map_label)
    bar.addWidget(win.refresh_button)
    summary = QtWidgets.QHBoxLayout()
    summary.setContentsMargins(6, 0, 6, 0)
    summary.addWidget(win.versus_combo)  # here, not above: the top row keeps its width
    summary.addWidget(win.selection_label, 3)
    summary.addWidget(win.highlight_label, 2)
    rows = QtWidgets.QVBoxLayout()
    rows.setSpacing(2)
    rows.addLayout(bar)
    rows.addLayout(summary)
    return rows
