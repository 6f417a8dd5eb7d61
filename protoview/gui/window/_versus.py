"""The "fixed/broken" colour mode's choice of run (private to :mod:`protoview.gui.window`):
which run (or the unadapted model) the map's samples are compared with, kept in a combo
box beside "Colour by".

Per sample, the model on the map against the chosen one: fixed = right on the map and
wrong there, broken = wrong on the map and right there, unchanged (right or wrong in
both). The choices are the unadapted model (when its predictions are known) and every
run of the session with predictions, but the current one.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.gui.map import VERSUS_MODE

UNADAPTED = 0  # the combo's data for the unadapted model (runs are numbered from 1)


class VersusChooser(QtCore.QObject):
    """Owns the combo box and the predictions of each choice. Emits
    ``chosen(object, str)``: the chosen run's predictions (N,) (None: none) and its name."""

    chosen = QtCore.Signal(object, str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        combo = QtWidgets.QComboBox()
        combo.setToolTip("fixed/broken: compare each sample's verdict on the map with this "
                         "run's (green fixed, red broken, grey unchanged)")
        # a fixed width: a long run name must not widen the bar (and squeeze the docks)
        combo.setSizeAdjustPolicy(
            QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(11)
        combo.setVisible(False)
        combo.currentIndexChanged.connect(lambda _i: self.apply_choice())
        self.combo = combo
        self._sources: dict[int, tuple[str, object]] = {}  # choice -> (name, predictions)

    def update_choices(self, runs, current: int, source_predictions) -> None:
        """Offer the unadapted model and the runs with predictions (not the current one);
        keep the chosen one when it is still there."""
        combo = self.combo
        chosen = combo.currentData()
        self._sources = {}
        items = []
        if source_predictions is not None:
            self._sources[UNADAPTED] = ("unadapted", source_predictions)
            items.append(("vs unadapted", UNADAPTED))
        for run in runs:
            if run.number != current and run.predictions is not None:
                self._sources[run.number] = (run.label, run.predictions)
                items.append((f"vs {run.label}", run.number))
        shown = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
        if shown != items:
            combo.blockSignals(True)
            combo.clear()
            for text, data in items:
                combo.addItem(text, data)
            index = combo.findData(chosen) if chosen is not None else -1
            combo.setCurrentIndex(index if index >= 0 else (0 if items else -1))
            combo.blockSignals(False)
        self.apply_choice()

    def apply_choice(self) -> None:
        """Emit the chosen run's predictions and name (the map(s) take them)."""
        chosen = self._sources.get(self.combo.currentData())
        name, predictions = chosen if chosen is not None else ("", None)
        self.chosen.emit(predictions, name)

    def show_for_mode(self, mode: str) -> None:
        self.combo.setVisible(mode == VERSUS_MODE)
