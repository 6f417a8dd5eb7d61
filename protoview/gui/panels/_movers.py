"""The Movers panel of a timeline of checkpoints: the samples whose neighbourhood in
feature space changed most between two checkpoints A and B (any two), with their
thumbnails, label and both predictions (:func:`protoview.present.timeline.movers_table`).
The window rings them on the map (they become the selection), focuses one when it is
clicked, and puts A beside B for Before / after."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from protoview.gui.panels._neighbors import thumbnail_icon
from protoview.present import timeline as present_timeline

HELP = "Open a timeline of checkpoints (File → Open checkpoints…) to list its movers."
NO_IMAGES = ("No thumbnails: a snapshot holds no images (File → Open checkpoints… builds "
             "the timeline from the data, with them).")


class MoversPanel(QtWidgets.QWidget):
    """Choose A and B (default the first and the last checkpoint; ``follow``: the frame
    shown and the one before) and how many; the list follows.

    Signals: ``sample_chosen(int)`` (a row clicked), ``movers_changed(object)`` (the
    listed samples, (K,) int64, each time the list changes), ``compare_requested(int, int)``
    (Before / after: frames A and B).
    """

    sample_chosen = QtCore.Signal(int)
    movers_changed = QtCore.Signal(object)
    compare_requested = QtCore.Signal(int, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.snapshot: Any = None
        self.class_names: list[str] = []
        self.thumbnail = None
        self.table: present_timeline.MoversTable | None = None
        self.a_combo = QtWidgets.QComboBox()
        self.b_combo = QtWidgets.QComboBox()
        for combo, tip in ((self.a_combo, "checkpoint A: before"),
                           (self.b_combo, "checkpoint B: after")):
            combo.setToolTip(tip)
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.currentIndexChanged.connect(self._chosen_by_hand)
        self.top = QtWidgets.QSpinBox()
        self.top.setRange(1, 500)
        self.top.setValue(present_timeline.DEFAULT_TOP)
        self.top.setToolTip("how many movers to list")
        self.top.valueChanged.connect(lambda _v: self.refresh())
        self.follow = QtWidgets.QCheckBox("follow the replay")
        self.follow.setToolTip("B: the checkpoint shown; A: the one before it")
        self.ring = QtWidgets.QCheckBox("ring on the map")
        self.ring.setChecked(True)
        self.ring.setToolTip("select the movers listed (rings on the map; File → Export "
                             "selection writes them)")
        self.ring.toggled.connect(lambda on: self.movers_changed.emit(
            self.indices() if on else np.zeros(0, np.int64)))
        self.compare_button = QtWidgets.QPushButton("Before / after")
        self.compare_button.setToolTip("A's map beside B's (B on the replay slider)")
        self.compare_button.clicked.connect(
            lambda: self.compare_requested.emit(self.a_combo.currentIndex(),
                                                self.b_combo.currentIndex()))
        self.header = QtWidgets.QLabel(HELP)
        self.header.setWordWrap(True)
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.header.setObjectName("MoversHeader")
        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("MoversNote")
        self.note.setVisible(False)
        self.list = QtWidgets.QListWidget()
        self.list.setIconSize(QtCore.QSize(40, 40))
        self.list.setUniformItemSizes(True)
        self.list.setAlternatingRowColors(True)  # two lines each: rows told apart
        self.list.itemActivated.connect(self._chosen)
        self.list.itemClicked.connect(self._chosen)
        choose = QtWidgets.QGridLayout()
        choose.addWidget(QtWidgets.QLabel("A"), 0, 0)
        choose.addWidget(self.a_combo, 0, 1)
        choose.addWidget(QtWidgets.QLabel("→ B"), 0, 2)
        choose.addWidget(self.b_combo, 0, 3)
        choose.setColumnStretch(4, 1)
        options = QtWidgets.QHBoxLayout()
        options.addWidget(QtWidgets.QLabel("top"))
        options.addWidget(self.top)
        options.addStretch(1)
        options.addWidget(self.compare_button)
        checks = QtWidgets.QHBoxLayout()
        checks.addWidget(self.ring)
        checks.addWidget(self.follow)
        checks.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(choose)
        layout.addLayout(options)
        layout.addLayout(checks)
        layout.addWidget(self.header)
        layout.addWidget(self.note)
        layout.addWidget(self.list, 1)
        self._set_enabled(False)

    # ------------------------------------------------------------ what it lists
    def set_timeline(self, snapshot: Any, class_names: list[str], thumbnail=None) -> None:
        """List the movers of ``snapshot`` (a timeline of checkpoints; None or another
        snapshot: nothing), A the first checkpoint and B the last."""
        self.snapshot = snapshot if present_timeline.is_timeline(snapshot) else None
        self.class_names, self.thumbnail = list(class_names), thumbnail
        names = present_timeline.frame_names(self.snapshot)
        for combo, index in ((self.a_combo, 0), (self.b_combo, len(names) - 1)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)
        self._set_enabled(self.snapshot is not None)
        self.refresh()

    def set_thumbnail(self, thumbnail) -> None:
        """The data's ``thumbnail(i)`` (None: a snapshot alone, without images)."""
        if thumbnail is not self.thumbnail:
            self.thumbnail = thumbnail
            self._fill()

    def set_class_names(self, names: list[str]) -> None:
        if list(names) != self.class_names:
            self.class_names = list(names)
            self.refresh()

    def show_frame(self, index: int | None) -> None:
        """The replay shows frame ``index``: with ``follow``, B is it and A the one before."""
        if self.snapshot is None or index is None or not self.follow.isChecked():
            return
        self.choose(max(int(index) - 1, 0), int(index))

    def choose(self, a: int, b: int) -> None:
        """Frames A and B (the list follows once)."""
        for combo, value in ((self.a_combo, a), (self.b_combo, b)):
            combo.blockSignals(True)
            combo.setCurrentIndex(int(value))
            combo.blockSignals(False)
        self.refresh()

    def _chosen_by_hand(self, _index: int) -> None:
        """A or B picked in its box: the pair is the user's now (the replay no longer
        moves it)."""
        self.follow.setChecked(False)
        self.refresh()

    def indices(self) -> np.ndarray:
        """The samples listed, most moved first ((K,) int64)."""
        return (np.zeros(0, np.int64) if self.table is None
                else np.asarray(self.table.indices, np.int64))

    def refresh(self) -> None:
        """Compute the list again (A, B or the count changed)."""
        if self.snapshot is None:
            self.table = None
            self.header.setText(HELP)
            self.note.setVisible(False)
            self.list.clear()
            return
        self.table = present_timeline.movers_table(
            self.snapshot, self.a_combo.currentIndex(), self.b_combo.currentIndex(),
            self.top.value(), self.class_names)
        self.header.setText(self.table.header)
        self._fill()
        if self.ring.isChecked():
            self.movers_changed.emit(self.indices())

    def _fill(self) -> None:
        self.list.clear()
        table = self.table
        self.note.setText(NO_IMAGES)
        self.note.setVisible(table is not None and self.thumbnail is None)
        if table is None:
            return
        side = self.list.iconSize().width()
        for i, text in zip(table.indices.tolist(), table.texts, strict=True):
            item = QtWidgets.QListWidgetItem(text)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, int(i))
            icon = thumbnail_icon(self.thumbnail, i, side)
            if icon is not None:
                item.setIcon(icon)
            self.list.addItem(item)

    def _set_enabled(self, on: bool) -> None:
        for widget in (self.a_combo, self.b_combo, self.top, self.follow, self.ring,
                       self.compare_button):
            widget.setEnabled(on)

    def _chosen(self, item: QtWidgets.QListWidgetItem) -> None:
        self.sample_chosen.emit(int(item.data(QtCore.Qt.ItemDataRole.UserRole)))
