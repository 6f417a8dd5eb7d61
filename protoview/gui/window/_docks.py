"""The window's two docks (private to :mod:`protoview.gui.window`): the controls on the
left, the numbers and the neighbours on the right."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.gui._qt import guard_wheel
from protoview.gui.panels import (
    AdaptPanel,
    DataPanel,
    KMeansPanel,
    NeighborsPanel,
    NumbersPanel,
    SinkhornPanel,
)


class ControlsDock(QtWidgets.QDockWidget):
    """The data, adaptation, k-means and Sinkhorn panels, one under the other in a scroll
    area: the wheel scrolls it (a spin box or a drop-down takes the wheel only once it
    has the focus, ``wheel_guard``)."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__("Controls", parent)
        self.setObjectName("ControlsDock")
        self.data_panel = DataPanel()
        self.adapt_panel = AdaptPanel()
        self.kmeans_panel = KMeansPanel()
        self.sinkhorn_panel = SinkhornPanel()
        controls = QtWidgets.QWidget()
        controls.setObjectName("Controls")
        col = QtWidgets.QVBoxLayout(controls)
        for panel in self.panels():
            col.addWidget(panel)
        col.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(controls)
        # never narrower than its form (a restored layout must not squash the controls, and
        # no permanent horizontal scroll bar): the width follows the form as it grows (a
        # dataset's name, another method's controls)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll, self.controls = scroll, controls
        self._fit_width()
        controls.installEventFilter(self)
        self.setWidget(scroll)
        self.wheel_guard = guard_wheel(controls)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.controls and event.type() == QtCore.QEvent.Type.LayoutRequest:
            self._fit_width()
        return False

    def _fit_width(self) -> None:
        need = (max(self.controls.sizeHint().width(), self.controls.minimumSizeHint().width())
                + self.scroll.verticalScrollBar().sizeHint().width()
                + 2 * self.scroll.frameWidth() + 2)
        if need > self.scroll.minimumWidth():
            self.scroll.setMinimumWidth(need)

    def panels(self) -> tuple[QtWidgets.QWidget, ...]:
        """The data, adaptation, k-means and Sinkhorn panels, top to bottom."""
        return self.data_panel, self.adapt_panel, self.kmeans_panel, self.sinkhorn_panel


class NumbersDock(QtWidgets.QDockWidget):
    """The numbers panel (charts and scores), the neighbours in one of its tabs."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__("Numbers", parent)
        self.setObjectName("NumbersDock")
        self.numbers = NumbersPanel()
        self.numbers.setMinimumWidth(parent.fontMetrics().horizontalAdvance("M") * 24)
        self.neighbors = NeighborsPanel()
        self.numbers.tabs.addTab(self.neighbors, "Neighbours")
        self.setWidget(self.numbers)
