"""Numbers → Geometry (private to :mod:`protoview.gui.window`): the dock of the
:class:`~protoview.gui.panels.GeometryPanel`, tabbed with the numbers. It listens to the
window's :class:`~protoview.present.Shown` (the measurements are its ``geometry`` field),
sends Measure to the worker through the window's ``submit`` (a GeometryRequest: seconds at
50,000 samples, never on this thread) and turns a click on an error group into the
window's selection."""

from __future__ import annotations

from PySide6 import QtWidgets

from protoview.gui.panels import GeometryPanel
from protoview.present import StepRequest
from protoview.present import geometry as texts


class GeometryDock(QtWidgets.QDockWidget):
    """See the module docstring. ``win``: the MainWindow (its ``shown`` and ``submit``)."""

    def __init__(self, win) -> None:
        super().__init__("Geometry", win)
        self.setObjectName("GeometryDock")
        self.panel = GeometryPanel()
        # in a scroll area: the dock, tabbed with the numbers, never widens their side (a
        # talk narrows it to a share of the screen)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setWidget(self.panel)
        scroll.setMinimumWidth(win.fontMetrics().horizontalAdvance("M") * 12)
        self.setWidget(scroll)
        self.shown, self.submit = win.shown, win.submit
        self.panel.measure_requested.connect(self.submit)
        self.panel.group_chosen.connect(self.shown.select)
        events = self.shown.events
        for name in ("geometry", "state", "snapshot", "class_names"):
            getattr(events, name).connect(self._changed)
        events.updated.connect(self._after_update)
        self.visibilityChanged.connect(self._changed)
        self._pending = True  # what is shown changed while the dock was hidden

    def open(self) -> None:
        """Numbers → Geometry: the dock in front; measured at once when the map shown has
        no measurement yet (and is the live session's)."""
        self.show()
        self.raise_()
        self.redraw()
        shown = self.shown
        _g, current = texts.for_shown(shown)
        if not current and shown.snapshot is None and shown.state is not None:
            self.submit(self.panel.request())

    def redraw(self) -> None:
        self._pending = False
        self.panel.show_measured(self.shown)

    def _changed(self, _value=None) -> None:
        """Redraw now when the dock is on screen (its tab in front), else when it comes."""
        self._pending = True
        if self.isVisible() and not self.visibleRegion().isEmpty():
            self.redraw()

    def _after_update(self, update) -> None:
        """"after each step": a Step / Run N that ended is measured."""
        if (self.panel.follow.isChecked() and isinstance(update.request, StepRequest)
                and not update.partial):
            self.submit(self.panel.request())
