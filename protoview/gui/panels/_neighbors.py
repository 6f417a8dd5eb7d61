"""The Neighbours panel: a focused sample's nearest neighbours in feature space (not on
the 2-D map), with thumbnails, labels and where each lies on the map (its map rank), so
that the projection's distortion shows. The map draws lines to them."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from protoview.errors import ProtoviewError
from protoview.gui._qt import pixmap_from_array
from protoview.present import NEIGHBOUR_METRICS as METRICS
from protoview.present import compute, derive

HELP = ("Click a sample on the map (or type its number in “go to #”) to list its nearest "
        "neighbours in feature space.")


class NeighborsPanel(QtWidgets.QWidget):
    """Emits ``sample_chosen(int)`` when a neighbour is clicked (the window focuses it)
    and ``settings_changed()`` when k or the metric changes."""

    sample_chosen = QtCore.Signal(int)
    settings_changed = QtCore.Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.k = QtWidgets.QSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(10)
        self.k.setToolTip("how many neighbours")
        self.metric_combo = QtWidgets.QComboBox()
        self.metric_combo.addItems(list(METRICS))
        self.metric_combo.setToolTip("cosine: the map's own metric (features are normalised)")
        self.header = QtWidgets.QLabel(HELP)
        self.header.setWordWrap(True)
        self.header.setObjectName("NeighborsHeader")
        self.list = QtWidgets.QListWidget()
        self.list.setIconSize(QtCore.QSize(40, 40))
        self.list.setUniformItemSizes(True)
        self.list.itemActivated.connect(self._chosen)
        self.list.itemClicked.connect(self._chosen)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("k"))
        row.addWidget(self.k)
        row.addWidget(QtWidgets.QLabel("metric"))
        row.addWidget(self.metric_combo)
        row.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.header)
        layout.addWidget(self.list, 1)
        self.k.valueChanged.connect(lambda _v: self.settings_changed.emit())
        self.metric_combo.currentTextChanged.connect(lambda _t: self.settings_changed.emit())
        self.result: Any = None  # a core.neighbors.Neighbors
        self.ranks = np.zeros(0, np.int64)

    def clear(self, text: str = "") -> None:
        """No sample: an empty list and ``text`` (default: how to pick one)."""
        self.result = None
        self.ranks = np.zeros(0, np.int64)
        self.list.clear()
        self.header.setText(text or HELP)

    def show_neighbors(self, state, index: int, names: list[str], thumbnail=None) -> Any:
        """List the neighbours of sample ``index`` of ``state``; returns them (None when
        the state holds no features, e.g. a snapshot saved without them)."""
        self.list.clear()
        try:
            nb, ranks = compute.neighbours(state, index, self.k.value(),
                                           self.metric_combo.currentText())
        except ProtoviewError as exc:
            self.clear(f"Sample #{index}: no neighbours — {exc.problem}.")
            return None
        self.result, self.ranks = nb, ranks
        header, lines = derive.neighbour_texts(state, index, nb, ranks, names)
        self.header.setText(header)
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)
        for i, line in zip(nb.indices.tolist(), lines, strict=True):
            item = QtWidgets.QListWidgetItem(line)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, int(i))
            icon = thumbnail_icon(thumbnail, i, self.list.iconSize().width())
            if icon is not None:
                item.setIcon(icon)
            self.list.addItem(item)
        return nb

    def _chosen(self, item: QtWidgets.QListWidgetItem) -> None:
        self.sample_chosen.emit(int(item.data(QtCore.Qt.ItemDataRole.UserRole)))


def thumbnail_icon(thumbnail, index: int, side: int) -> QtGui.QIcon | None:
    if thumbnail is None:
        return None
    try:
        image = thumbnail(int(index))
    except Exception:  # noqa: BLE001 - a thumbnail is optional decoration
        return None
    if image is None:
        return None
    return QtGui.QIcon(pixmap_from_array(np.asarray(image), side))
