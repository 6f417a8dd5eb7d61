"""Numbers that move with every step: accuracy over steps (the session's runs side by side,
with the shifts of a continual stream marked), per-class accuracy beside the unadapted
model's, the confusion matrix (counts and a colour bar), Sinkhorn's balance, and the
labels for NMI / ARI / center loss."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.panels._plots import (
    MAX_NAMED_TICKS,
    CellCounts,
    IntegerAxis,
    class_ticks,
    make_plot,
)
from protoview.gui.panels._run_curves import RunOverlay
from protoview.present import HistoryRow
from protoview.present.derive import numbers_line, per_class_and_confusion

MAX_CELL_COUNTS = 12  # more classes than this: no count written in the confusion cells
NOW_COLOR = "#2ca02c"
BASELINE_COLOR = "#9a9a9a"
NO_BALANCE = "No Sinkhorn assignment on this map: run Sinkhorn to see how many samples each target receives."


class ChartTabs(QtWidgets.QTabWidget):
    """The tabs under the accuracy chart. Their height never depends on the tab shown: a
    page with wrapped text (Balance, Neighbours) has a height-for-width, which a layout
    takes as its minimum height, and squashed the accuracy chart to its minimum."""

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return False


class NumbersPanel(QtWidgets.QWidget):
    """Accuracy chart + tabs (per class, confusion, Sinkhorn balance) + score labels.

    Feed it with :meth:`update_numbers` after every result, :meth:`set_baseline` with the
    unadapted model's predictions, :meth:`show_balance` after Sinkhorn.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.class_names: list[str] = []
        self.text_scale = 1.0
        self.baseline: np.ndarray | None = None  # per-class accuracy of the source model
        self._class_key: tuple | None = None  # what the per-class legend and ticks show
        self._confusion_layout: tuple | None = None  # what the confusion's ticks show
        self._build_accuracy()
        self._build_per_class()
        self._build_confusion()
        balance = self._build_balance()
        self.scores = QtWidgets.QLabel("")
        self.scores.setObjectName("ScoresLabel")
        self.scores.setWordWrap(True)
        self.scores.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        tabs = ChartTabs()
        tabs.addTab(self.class_plot, "Per class")
        tabs.addTab(self.confusion_plot, "Confusion")
        tabs.addTab(balance, "Balance")
        self.balance_tab = balance
        self.tabs = tabs
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.scores)
        layout.addWidget(self.accuracy_plot, 3)
        layout.addWidget(tabs, 3)

    def _build_accuracy(self) -> None:
        """The accuracy chart: online, full set, the probe's estimate with its interval,
        the unadapted model's line, and the other runs (:class:`RunOverlay`)."""
        self.accuracy_plot = make_plot("Accuracy over steps", "accuracy", "step")
        self.accuracy_plot.setYRange(0, 1)
        self.accuracy_plot.setMouseEnabled(False, False)
        self.accuracy_legend = self.accuracy_plot.addLegend(offset=(-4, -4), labelTextSize="8pt")
        self.online_curve = self.accuracy_plot.plot(
            [], [], pen=pg.mkPen("#1f77b4", width=2), name="online (running)")
        self.full_curve = self.accuracy_plot.plot(
            [], [], pen=pg.mkPen("#ff7f0e", width=2), symbol="o", symbolSize=5,
            symbolBrush="#ff7f0e", symbolPen=None, name="full set")
        self.probe_curve = self.accuracy_plot.plot(
            [], [], pen=pg.mkPen("#2ca02c", width=1.5), symbol="t", symbolSize=5,
            symbolBrush="#2ca02c", symbolPen=None, name="full set, probe (95% CI)")
        self.probe_bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0),
                                          bottom=np.zeros(0), beam=0.25,
                                          pen=pg.mkPen("#2ca02c", width=1))
        self.accuracy_plot.addItem(self.probe_bars)
        self.source_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("#7f7f7f", width=1.5, style=QtCore.Qt.PenStyle.DashLine),
            label="unadapted", labelOpts={"position": 0.2, "color": "#7f7f7f", "anchors": [(0, 1), (0, 1)]})
        self.source_line.setVisible(False)
        self.accuracy_plot.addItem(self.source_line)
        self.accuracy_plot.setXRange(0, 1, padding=0.02)
        self.runs = RunOverlay(self.accuracy_plot, self.accuracy_legend, [
            (self.online_curve, "online (running)"), (self.full_curve, "full set"),
            (self.probe_curve, "full set, probe (95% CI)")])

    def _build_per_class(self) -> None:
        self.class_plot = make_plot("Per-class accuracy", "accuracy", "class")
        self.class_plot.setYRange(0, 1.2, padding=0)  # headroom: the legend never covers a bar
        self.class_plot.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.2, 0.4, 0.6, 0.8, 1.0)]])
        self.class_plot.setMouseEnabled(False, False)
        self.class_legend = self.class_plot.addLegend(offset=(-4, 2), labelTextSize="8pt",
                                                      colCount=2)
        self.baseline_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=BASELINE_COLOR,
                                             name="unadapted")
        self.class_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=NOW_COLOR,
                                          name="now")
        self.class_plot.addItem(self.baseline_bars)
        self.class_plot.addItem(self.class_bars)

    def _build_confusion(self) -> None:
        self.confusion_plot = make_plot("Confusion", "true label", "predicted")
        self.confusion_plot.setAxisItems({"left": IntegerAxis("left")})
        self.confusion_plot.setLabel("left", "true label")
        self.confusion_plot.getViewBox().invertY(True)
        self.confusion_plot.setMouseEnabled(False, False)
        self.confusion_plot.showGrid(x=False, y=False)
        self.confusion_image = pg.ImageItem(axisOrder="row-major")
        self.confusion_plot.addItem(self.confusion_image)
        self.confusion_bar = self.confusion_plot.getPlotItem().addColorBar(
            self.confusion_image, colorMap="viridis", values=(0, 1), interactive=False,
            label="samples", width=12, colorMapMenu=False)
        self.cell_counts = CellCounts()  # one item paints every count (not 100 TextItems)
        self.confusion_plot.addItem(self.cell_counts, ignoreBounds=True)

    def _build_balance(self) -> QtWidgets.QWidget:
        """Sinkhorn's balance chart with its label, in one widget (its tab)."""
        self.balance_plot = make_plot("Sinkhorn balance", "samples", "target")
        self.balance_plot.setMouseEnabled(False, False)
        self.balance_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#4c72b0")
        self.balance_plot.addItem(self.balance_bars)
        self.ideal_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("#7f7f7f", width=1.5, style=QtCore.Qt.PenStyle.DashLine),
            label="ideal", labelOpts={"position": 0.95, "color": "#7f7f7f"})
        self.ideal_line.setVisible(False)
        self.balance_plot.addItem(self.ideal_line)
        self.balance_label = QtWidgets.QLabel(NO_BALANCE)
        self.balance_label.setWordWrap(True)
        balance = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(balance)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.balance_label)
        col.addWidget(self.balance_plot, 1)
        return balance

    def plots(self) -> list[pg.PlotWidget]:
        return [self.accuracy_plot, self.class_plot, self.confusion_plot, self.balance_plot]

    # ---------------------------------------------------------------- updates
    def update_numbers(self, state, history: list[HistoryRow], source_accuracy: float,
                       runs=None, current_run: int = 0) -> None:
        """Redraw everything for ``state`` and the run's ``history`` (``runs``: every run of
        the session, RunRecords; ``current_run``: the number of the one ``history`` is)."""
        self.set_history(history, source_accuracy, runs, current_run)
        if state is None:
            return
        n = max(len(state.center_labels), int(np.max(state.labels, initial=-1)) + 1,
                int(np.max(state.predictions, initial=-1)) + 1)
        labelled = bool(np.any(np.asarray(state.labels) >= 0))
        self._title_labels(labelled)
        per_class, conf = per_class_and_confusion(state.labels, state.predictions, n)
        if labelled:
            self._draw_per_class(per_class)
        else:  # unlabelled data: nothing to score, and no bar may read as 0%
            for bars in (self.class_bars, self.baseline_bars):
                bars.setOpts(x=[], height=[], width=0.38)
            self.baseline_bars.setVisible(False)
            self.class_legend.setVisible(False)
            self._class_key = None
        self._draw_confusion(conf)  # all zeros without labels
        self.scores.setText(numbers_line(state, source_accuracy))

    _titled_labelled = True  # the titles the plots are built with

    def _title_labels(self, labelled: bool) -> None:
        """Chart titles say "no labels" when no sample has a known label (re-titled only on
        a change: a new title re-lays the plot out)."""
        if labelled == self._titled_labelled:
            return
        self._titled_labelled = labelled
        tail = "" if labelled else " — no labels"
        self.accuracy_plot.setTitle(f"Accuracy over steps{tail}")
        self.class_plot.setTitle(f"Per-class accuracy{tail}")
        self.confusion_plot.setTitle(f"Confusion (rows: label){tail}")

    def set_class_names(self, names: list[str]) -> None:
        self.class_names = list(names)

    def set_baseline(self, state) -> None:
        """The unadapted model's per-class accuracy (from the source model's ``state``;
        None: no baseline, e.g. a snapshot)."""
        if state is None:
            self.baseline = None
            return
        n = max(len(state.center_labels), int(np.max(state.labels, initial=-1)) + 1)
        self.baseline, _ = per_class_and_confusion(state.labels, state.predictions, n)

    def _draw_per_class(self, per_class: np.ndarray) -> None:
        n = len(per_class)
        x = np.arange(n, dtype=np.float64)
        base = self.baseline
        if base is not None and len(base) == n:
            self.baseline_bars.setOpts(x=x - 0.2, height=np.nan_to_num(base), width=0.38)
            self.class_bars.setOpts(x=x + 0.2, height=np.nan_to_num(per_class), width=0.38)
            self.baseline_bars.setVisible(True)
        else:
            self.baseline_bars.setOpts(x=[], height=[], width=0.38)
            self.baseline_bars.setVisible(False)
            self.class_bars.setOpts(x=x, height=np.nan_to_num(per_class), width=0.76)
        key = (self.baseline_bars.isVisible(), n, tuple(self.class_names[:MAX_NAMED_TICKS]))
        if key != self._class_key:  # a legend rebuild costs ~15 ms a row
            self._class_key = key
            self.class_legend.clear()
            if self.baseline_bars.isVisible():
                self.class_legend.addItem(self.baseline_bars, "unadapted")
                self.class_legend.addItem(self.class_bars, "now")
            self.class_legend.setVisible(self.baseline_bars.isVisible())  # no empty box
            self.class_plot.getAxis("bottom").setTicks(class_ticks(n, self.class_names))
            self.class_plot.setXRange(-0.6, n - 0.4, padding=0)

    def _draw_confusion(self, conf: np.ndarray) -> None:
        n = len(conf)
        top = float(max(int(conf.max(initial=0)), 1))
        self.confusion_image.setImage(conf.astype(np.float32), autoLevels=False)
        self.confusion_image.setRect(QtCore.QRectF(-0.5, -0.5, n, n))
        self.confusion_bar.setLevels((0.0, top))
        layout = (n, tuple(self.class_names[:MAX_NAMED_TICKS]), self.text_scale)
        fresh = layout != self._confusion_layout
        if fresh:
            self._confusion_layout = layout
            self.confusion_plot.setRange(xRange=(-0.5, n - 0.5), yRange=(-0.5, n - 0.5),
                                         padding=0)
            ticks = class_ticks(n, self.class_names)
            self.confusion_plot.getAxis("bottom").setTicks(ticks)
            self.confusion_plot.getAxis("left").setTicks(ticks)
        font = QtGui.QFont(self.font())
        font.setPointSizeF(7.5 * self.text_scale)
        counts = []
        if n <= MAX_CELL_COUNTS:
            counts = [(str(int(conf[i, j])), float(j), float(i), int(conf[i, j]) / top > 0.6)
                      for i in range(n) for j in range(n) if conf[i, j]]
        self.cell_counts.set_counts(counts, font)

    def set_history(self, history: list[HistoryRow], source_accuracy: float, runs=None,
                    current_run: int = 0) -> None:
        """The current run's curves, the other ``runs``' online accuracy (one colour and one
        legend entry each) and the current run's shift marks."""
        steps = np.array([h.step for h in history], np.float64)
        online = np.array([h.online_accuracy for h in history], np.float64)
        full = np.array([h.full_accuracy for h in history], np.float64)
        ok = np.isfinite(full)
        self.online_curve.setData(steps, online)
        self.full_curve.setData(steps[ok], full[ok])
        probe = np.array([getattr(h, "probe_accuracy", np.nan) for h in history], np.float64)
        low = np.array([getattr(h, "probe_low", np.nan) for h in history], np.float64)
        high = np.array([getattr(h, "probe_high", np.nan) for h in history], np.float64)
        seen = np.isfinite(probe)
        self.probe_curve.setData(steps[seen], probe[seen])
        self.probe_bars.setData(x=steps[seen], y=probe[seen], top=high[seen] - probe[seen],
                                bottom=probe[seen] - low[seen])
        if np.isfinite(source_accuracy):
            self.source_line.setVisible(True)  # first: a hidden label ignores new text
            self.source_line.setValue(source_accuracy)
            self.source_line.label.setFormat(f"unadapted {source_accuracy:.1%}")
        else:
            self.source_line.setVisible(False)
        runs = list(runs or [])
        shown = [bool(steps.size), bool(ok.any()), bool(seen.any())]
        largest = self.runs.set_runs(runs, current_run, shown)
        current = next((r for r in runs if r.number == current_run), None)
        self.runs.set_marks(current.shift_marks() if current is not None else [])
        end = max(1.0, steps.max() if steps.size else 1.0, largest)
        self.accuracy_plot.setXRange(0, end, padding=0.02)

    def show_balance(self, assignment: np.ndarray | None, n_targets: int,
                     target: str = "prototypes") -> np.ndarray:
        """Bar chart of samples per Sinkhorn target; returns the counts (n_targets,)."""
        a = np.zeros(0, np.int64) if assignment is None else np.asarray(assignment, np.int64)
        a = a[a >= 0]
        n = max(int(n_targets), int(a.max()) + 1 if a.size else 0)
        counts = np.bincount(a, minlength=n) if n else np.zeros(0, np.int64)
        self.balance_bars.setOpts(x=np.arange(n), height=counts, width=0.8)
        if counts.size:
            ideal = a.size / n
            self.ideal_line.setValue(ideal)
            self.ideal_line.label.setFormat(f"ideal {ideal:.1f}")
            self.ideal_line.setVisible(True)
            self.balance_plot.setXRange(-0.6, n - 0.4, padding=0)
            self.balance_plot.setYRange(0, max(counts.max(), ideal) * 1.1, padding=0)
            self.balance_label.setText(
                f"Sinkhorn to the {target}: {n} targets · min {counts.min()} · "
                f"max {counts.max()} · ideal {ideal:.1f}")
        else:
            self.ideal_line.setVisible(False)
            self.balance_label.setText(NO_BALANCE)
        if target == "prototypes" or n > MAX_NAMED_TICKS:
            ticks = None if n > MAX_NAMED_TICKS else [[(float(i), f"P{i}") for i in range(n)]]
        else:
            ticks = class_ticks(n, self.class_names)
        self.balance_plot.getAxis("bottom").setTicks(ticks)
        self.balance_plot.setLabel("bottom", target)
        return counts

    def history_points(self) -> int:
        """How many full-set accuracy points the chart shows (for tests)."""
        x, _ = self.full_curve.getData()
        return 0 if x is None else len(x)

    # ---------------------------------------------------------------- talk size
    def set_text_scale(self, scale: float) -> None:
        """Grow every chart's tick labels, axis titles, titles and legends (a talk)."""
        self.text_scale = float(scale)
        tick = QtGui.QFont(self.font())
        tick.setPointSizeF(8.5 * scale)
        for plot in self.plots():
            item = plot.getPlotItem()
            for name in ("left", "bottom"):
                axis = item.getAxis(name)
                axis.setStyle(tickFont=tick)
                axis.label.setFont(tick)
            item.titleLabel.setText(item.titleLabel.text, size=f"{10.5 * scale:.1f}pt")
            if item.legend is not None:
                item.legend.opts["labelTextSize"] = f"{8.0 * scale:.1f}pt"
                for _sample, label in item.legend.items:
                    label.setText(label.text, size=f"{8.0 * scale:.1f}pt")
        for line in (self.source_line, self.ideal_line):
            line.label.setFont(tick)
        self.runs.set_text_scale(scale, tick)
