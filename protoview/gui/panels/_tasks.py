"""The Tasks panel of a class-incremental timeline: the accuracy of each task over the
checkpoints (one line per task, the checkpoint shown marked), the forgetting of each task
at the checkpoint shown, and the weight norm of each class there as bars in head order,
the tasks' boundaries marked and WA's gamma in the title. Numbers and texts come from
:func:`protoview.present.timeline.tasks_view`; this only draws them."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.map import class_colors
from protoview.gui.panels._plots import ChartLegend, LegendEntry, make_plot, scale_chart_text
from protoview.present import timeline as present_timeline

HELP = ("Open the task checkpoints of a class-incremental run (File → Open checkpoints…) "
        "to see its tasks.")
BOUND_COLOR = "#7f7f7f"
ACCURACY_TITLE = "Accuracy per task over the checkpoints"
ACCURACY_SHORT = "Accuracy per task"  # at talk size


class TasksPanel(QtWidgets.QWidget):
    """Feed it with :meth:`set_timeline` (a snapshot, or None) and :meth:`show_frame`."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.snapshot = None
        self.class_names: list[str] = []
        self.view: present_timeline.TasksView | None = None
        self.text_scale = 1.0
        self.summary = QtWidgets.QLabel(HELP)
        self.summary.setWordWrap(True)
        self.forgetting = QtWidgets.QLabel("")
        self.forgetting.setWordWrap(True)
        self.accuracy_plot = make_plot(ACCURACY_TITLE, "accuracy", "checkpoint")
        self.accuracy_plot.setMouseEnabled(False, False)
        self.accuracy_plot.setYRange(0, 1, padding=0.02)
        self.accuracy_legend = ChartLegend(self.accuracy_plot)
        self.now_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(
            "#2ca02c", width=1.5, style=QtCore.Qt.PenStyle.DashLine))
        self.accuracy_plot.addItem(self.now_line)
        self.curves: list[pg.PlotDataItem] = []
        self.norm_plot = make_plot("Weight norm per class", "L2 norm", "class (head order)")
        self.norm_plot.setMouseEnabled(False, False)
        self.norm_plot.getAxis("left").enableAutoSIPrefix(False)  # norms as they are
        self.norm_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#4c72b0")
        self.norm_plot.addItem(self.norm_bars)
        self.bound_lines: list[pg.InfiniteLine] = []
        # in a scroll area: at talk size the two plots keep room for their curves and the
        # tab scrolls, rather than squash them to their titles
        inner = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(inner)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.accuracy_plot, 1)
        layout.addWidget(self.forgetting)
        layout.addWidget(self.norm_plot, 1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._size_plots()

    def plots(self) -> list[pg.PlotWidget]:
        return [self.accuracy_plot, self.norm_plot]

    def set_text_scale(self, scale: float) -> None:
        """Talk-size text (the window's presentation mode): the plots' ticks, axis titles,
        titles (short ones at talk size) and the legend, by ``scale`` (the lines above and
        between them follow the window's font)."""
        self.text_scale = float(scale)
        scale_chart_text(self.plots(), [self.accuracy_legend], scale, self.font())
        self._size_plots()
        self.accuracy_plot.setTitle(ACCURACY_TITLE if scale <= 1 else ACCURACY_SHORT,
                                    size=f"{10.5 * scale:.1f}pt")
        if self.view is not None:  # the norm title is set with each checkpoint
            self.norm_plot.setTitle(self._norm_title(self.view), size=f"{10.5 * scale:.1f}pt")

    def _size_plots(self) -> None:
        """Room for each plot's bars or curves under its title, axis (and legend)."""
        line = QtGui.QFontMetricsF(self.font()).height() * self.text_scale
        self.accuracy_plot.setMinimumHeight(int(11 * line))
        self.norm_plot.setMinimumHeight(int(9 * line))

    def _norm_title(self, view: present_timeline.TasksView) -> str:
        """The norm chart's title; at talk size only its WA's gamma part (the whole one,
        in large letters, is wider than the numbers' column)."""
        if self.text_scale <= 1:
            return view.norm_title
        return "Norms · " + view.norm_title.rsplit(" · ", 1)[-1]

    # ------------------------------------------------------------ contents
    def set_timeline(self, snapshot, class_names: list[str] | None = None) -> bool:
        """Show the tasks of ``snapshot`` (its last checkpoint); False (and the help) when
        it has none."""
        self.snapshot, self.class_names = snapshot, list(class_names or [])
        for curve in self.curves:
            self.accuracy_plot.removeItem(curve)
        self.curves = []
        view = present_timeline.tasks_view(snapshot, None, self.class_names)
        if view is None:
            self.view = None
            self.summary.setText(HELP)
            self.forgetting.setText("")
            self.accuracy_legend.set_entries([])
            self.norm_bars.setOpts(x=[], height=[])
            return False
        colors = class_colors(len(view.names))
        x = np.arange(1, len(view.checkpoints) + 1, dtype=np.float64)
        entries = []
        for j, name in enumerate(view.names):
            pen = pg.mkPen(colors[j], width=2)
            curve = self.accuracy_plot.plot(x, view.accuracy[:, j], pen=pen, symbol="o",
                                            symbolSize=6, symbolBrush=colors[j],
                                            symbolPen=None, connect="finite")
            self.curves.append(curve)
            entries.append(LegendEntry(name, pen, "o", colors[j]))
        self.accuracy_legend.set_entries(entries)
        self.accuracy_plot.setXRange(0.8, len(x) + 0.2, padding=0)
        self.accuracy_plot.getAxis("bottom").setTicks(
            [[(float(i), str(i)) for i in x.astype(int)]])
        self.summary.setText(view.summary)
        self._show(view)
        return True

    def show_frame(self, frame: int | None) -> None:
        """The checkpoint shown (a frame index; None: the last)."""
        if self.view is None:  # no timeline with tasks
            return
        view = present_timeline.tasks_view(self.snapshot, frame, self.class_names)
        if view is not None:
            self._show(view)

    def _show(self, view: present_timeline.TasksView) -> None:
        self.view = view
        self.now_line.setValue(view.frame + 1)
        self.forgetting.setText(view.forgetting_text)
        colors = class_colors(len(view.names))
        sizes = np.diff([-0.5, *view.bounds, len(view.norms) - 0.5]).round().astype(int)
        task = np.repeat(np.arange(len(sizes)), sizes)
        brushes = [pg.mkBrush(colors[t]) for t in task]
        heights = np.nan_to_num(view.norms, nan=0.0)
        self.norm_bars.setOpts(x=np.arange(len(heights)), height=heights, width=0.8,
                               brushes=brushes)
        for line in self.bound_lines:
            self.norm_plot.removeItem(line)
        self.bound_lines = []
        for b in view.bounds:
            line = pg.InfiniteLine(pos=b, angle=90, pen=pg.mkPen(
                BOUND_COLOR, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
            self.norm_plot.addItem(line)
            self.bound_lines.append(line)
        self.norm_plot.setTitle(self._norm_title(view), size=f"{10.5 * self.text_scale:.1f}pt")
        axis = self.norm_plot.getAxis("bottom")
        axis.setTicks([[(float(i), n) for i, n in enumerate(view.norm_names)]])
        top = float(np.nanmax(view.norms)) if np.isfinite(view.norms).any() else 1.0
        self.norm_plot.setXRange(-0.6, len(heights) - 0.4, padding=0)
        self.norm_plot.setYRange(0, top * 1.1, padding=0)
