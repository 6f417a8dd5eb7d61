"""The window's two docks (private to :mod:`protoview.gui.window`): the controls on the
left, the numbers and the neighbours on the right."""

from __future__ import annotations

from PySide6 import QtWidgets

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
        # never narrower than its form: a restored layout must not squash the controls
        scroll.setMinimumWidth(controls.sizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 4)
        self.setWidget(scroll)
        self.wheel_guard = guard_wheel(controls)

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
