"""The "fixed/broken" colour mode's choice of run (private to :mod:`protoview.gui.window`):
which run (or the unadapted model) the map's samples are compared with, a combo box
beside "Colour by".

Per sample, the model on the map against the chosen one: fixed = right on the map and
wrong there, broken = wrong on the map and right there, unchanged (right or wrong in
both). What is offered and what is chosen belong to :class:`~protoview.present.Shown`
(``versus_choices()``, ``versus``): the combo shows them and reports a choice.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.gui.map import VERSUS_MODE


class VersusChooser(QtCore.QObject):
    """Owns the combo box. Emits ``chosen(object)``: the number of the run chosen (0: the
    unadapted model; None: nothing)."""

    chosen = QtCore.Signal(object)

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
        combo.currentIndexChanged.connect(lambda _i: self.chosen.emit(combo.currentData()))
        self.combo = combo

    def show_choices(self, items: list[tuple[str, int]], chosen: int | None) -> None:
        """Offer ``items`` ((text, run number) each) with ``chosen`` current, silently."""
        combo = self.combo
        shown = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
        combo.blockSignals(True)
        if shown != list(items):
            combo.clear()
            for text, data in items:
                combo.addItem(text, data)
        combo.setCurrentIndex(combo.findData(chosen) if chosen is not None else -1)
        combo.blockSignals(False)

    def show_for_mode(self, mode: str) -> None:
        self.combo.setVisible(mode == VERSUS_MODE)
