"""The colour bar of the entropy colour mode (private to :mod:`protoview.gui.map`): under
the map, in nats from 0 to log(classes), shown only in that mode."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

from protoview.gui.map._palette import ENTROPY_BINS, entropy_colors


class EntropyBar(pg.ColorBarItem):
    """Added under the plot of ``view`` (an EmbeddingView); follows its colour mode, text
    colours and text scale."""

    def __init__(self, view) -> None:
        colors = entropy_colors(ENTROPY_BINS)
        cmap = pg.ColorMap(np.linspace(0, 1, len(colors)), [pg.mkColor(c) for c in colors])
        super().__init__(values=(0, 1), colorMap=cmap, interactive=False,
                         orientation="horizontal", width=12, label="entropy (nats)",
                         colorMapMenu=False)
        self._owner = view
        self._styled = False
        self.setVisible(False)
        view.getPlotItem().layout.addItem(self, 4, 1)

    def restyle(self) -> None:
        """The view's text colour and text scale on the ticks and the label."""
        view = self._owner
        fg = view.text_colors[0]
        axis = self.getAxis("bottom")
        axis.setPen(fg)
        axis.setTextPen(fg)
        font = QtGui.QFont(view.font())
        font.setPointSizeF(8.5 * view.text_scale)
        axis.setStyle(tickFont=font)
        axis.setLabel("entropy (nats): low = confident", color=fg,
                      **{"font-size": f"{8.5 * view.text_scale:.1f}pt"})

    def follow_mode(self) -> None:
        """Shown (0 to log C nats) in the entropy mode with a state, else hidden."""
        view = self._owner
        on = view.color_mode == "entropy" and view.state is not None
        if on:
            top = float(np.log(max(view.num_classes(), 2)))
            self.setLevels((0.0, top))
            if not self._styled:
                self.restyle()
                self._styled = True
        self.setVisible(on)
        # a hidden item still takes its row: give it no height when off
        self.setMaximumHeight(10_000 if on else 0)
