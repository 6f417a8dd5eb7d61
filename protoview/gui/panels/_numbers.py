"""Numbers that move with every step: accuracy over steps (the session's runs side by side,
with the shifts of a continual stream marked), per-class accuracy beside the unadapted
model's, the confusion matrix (counts and a colour bar), Sinkhorn's balance, and the
labels for NMI / ARI / center loss."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.panels._plots import (
    CellCounts,
    ChartLegend,
    ClassAxis,
    LegendEntry,
    hover_text,
    make_plot,
    scale_chart_text,
)
from protoview.gui.panels._run_curves import (
    CURRENT_WIDTH,
    RunOverlay,
    draw_curve,
    pass_starts,
)
from protoview.present import HistoryRow
from protoview.present.derive import (
    NOT_LEARNT,
    numbers_line,
    per_class_and_confusion,
    progress_unit,
    unlearnt_classes,
)

MAX_CELL_COUNTS = 12  # more classes than this: no count written in the confusion cells
NOW_COLOR = "#2ca02c"
ONLINE_COLOR, FULL_COLOR, PROBE_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"
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
        self._class_key: tuple | None = None  # what the per-class legend and range show
        self._confusion_size: int | None = None  # the confusion's classes (its range)
        # what the charts show now, for their hover texts
        self.per_class_shown = np.zeros(0)
        self.unlearnt = np.zeros(0, bool)  # classes the head shown lacks yet (tasks)
        self.confusion_shown = np.zeros((0, 0), np.int64)
        self.balance_shown: tuple[np.ndarray, list[str]] = (np.zeros(0, np.int64), [])
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
        for plot, text_at in ((self.class_plot, self.per_class_text),
                              (self.confusion_plot, self.confusion_text),
                              (self.balance_plot, self.balance_text)):
            hover_text(plot, text_at)
        self.set_text_scale(1.0)  # the same chart fonts as after a talk

    def _build_accuracy(self) -> None:
        """The accuracy chart: online, full set, the probe's estimate with its interval,
        the unadapted model's line, and the other runs (:class:`RunOverlay`); the legend
        under the plot (:class:`ChartLegend`), never over the curves."""
        self.accuracy_plot = make_plot("Accuracy over steps", "accuracy", "step")
        self.accuracy_plot.setYRange(0, 1)
        self.accuracy_plot.setMouseEnabled(False, False)
        self.accuracy_legend = ChartLegend(self.accuracy_plot)
        online_pen = pg.mkPen(ONLINE_COLOR, width=CURRENT_WIDTH)
        full_pen = pg.mkPen(FULL_COLOR, width=2)
        probe_pen = pg.mkPen(PROBE_COLOR, width=1.5)
        self.online_curve = self.accuracy_plot.plot([], [], pen=online_pen)
        self.full_curve = self.accuracy_plot.plot(
            [], [], pen=full_pen, symbol="o", symbolSize=5, symbolBrush=FULL_COLOR,
            symbolPen=None)
        self.probe_curve = self.accuracy_plot.plot(
            [], [], pen=probe_pen, symbol="t", symbolSize=5, symbolBrush=PROBE_COLOR,
            symbolPen=None)
        self.probe_bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0),
                                          bottom=np.zeros(0), beam=0.25,
                                          pen=pg.mkPen(PROBE_COLOR, width=1))
        self.accuracy_plot.addItem(self.probe_bars)
        self.source_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("#7f7f7f", width=1.5, style=QtCore.Qt.PenStyle.DashLine),
            label="unadapted", labelOpts={"position": 0.2, "color": "#7f7f7f", "anchors": [(0, 1), (0, 1)]})
        self.source_line.setVisible(False)
        self.accuracy_plot.addItem(self.source_line)
        self.accuracy_plot.setXRange(0, 1, padding=0.02)
        self.runs = RunOverlay(self.accuracy_plot, self.accuracy_legend, [
            LegendEntry("online (running)", online_pen),
            LegendEntry("full set", full_pen, "o", FULL_COLOR),
            LegendEntry("full set, probe (95% CI)", probe_pen, "t", PROBE_COLOR)])
        self.runs.set_runs([], 0, [False, False, False])

    def _build_per_class(self) -> None:
        self.class_plot = make_plot("Per-class accuracy", "accuracy", "class", class_x=True)
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
        self.confusion_plot = make_plot("Confusion", "true label", "predicted", class_x=True)
        self.confusion_plot.setAxisItems({"left": ClassAxis("left")})
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
        self.balance_plot = make_plot("Sinkhorn balance", "samples", "target", class_x=True)
        self.balance_plot.setMouseEnabled(False, False)
        self.balance_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#4c72b0")
        self.balance_plot.addItem(self.balance_bars)
        self.ideal_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen("#7f7f7f", width=1.5, style=QtCore.Qt.PenStyle.DashLine),
            label="ideal", labelOpts={"position": 0.99, "color": "#7f7f7f",
                                      "anchors": [(1, 1), (1, 1)]})  # never cut by the edge
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
        self._title_labels(labelled, progress_unit(state))
        per_class, conf = per_class_and_confusion(state.labels, state.predictions, n)
        self.unlearnt = unlearnt_classes(state, n)
        per_class[self.unlearnt] = np.nan  # a class the head lacks yet has no accuracy
        if labelled:
            self._draw_per_class(per_class)
        else:  # unlabelled data: nothing to score, and no bar may read as 0%
            for bars in (self.class_bars, self.baseline_bars):
                bars.setOpts(x=[], height=[], width=0.38)
            self.baseline_bars.setVisible(False)
            self.class_legend.setVisible(False)
            self._class_key = None
            self.per_class_shown = np.zeros(0)
            self.class_plot.getAxis("bottom").set_classes(0, [])  # no bar to name
        self._draw_confusion(conf)  # all zeros without labels
        self.scores.setText(numbers_line(state, source_accuracy))

    _titled = (True, "step")  # the titles the plots are built with: labelled, x unit

    def _title_labels(self, labelled: bool, unit: str = "step") -> None:
        """Chart titles say "no labels" when no sample has a known label, and what the
        accuracy chart's x axis counts (steps, or a timeline's checkpoints); re-titled only
        on a change: a new title re-lays the plot out."""
        if (labelled, unit) == self._titled:
            return
        self._titled = (labelled, unit)
        tail = "" if labelled else " — no labels"
        self.accuracy_plot.setTitle(f"Accuracy over {unit}s{tail}")
        self.accuracy_plot.setLabel("bottom", unit)
        self.class_plot.setTitle(f"Per-class accuracy{tail}")
        self.confusion_plot.setTitle(f"Confusion (rows: label){tail}")

    def set_class_names(self, names: list[str]) -> None:
        """The names of the classes (a new dataset's): every class axis takes them now."""
        self.class_names = list(names)
        for axis in (self.class_plot.getAxis("bottom"), self.confusion_plot.getAxis("bottom"),
                     self.confusion_plot.getAxis("left")):
            axis.set_classes(axis.class_count, self.class_names)

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
        self.per_class_shown = np.asarray(per_class, np.float64)
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
        self.class_plot.getAxis("bottom").set_classes(n, self.class_names)
        key = (self.baseline_bars.isVisible(), n)
        if key != self._class_key:  # a legend rebuild costs ~15 ms a row
            self._class_key = key
            self.class_legend.clear()
            if self.baseline_bars.isVisible():
                self.class_legend.addItem(self.baseline_bars, "unadapted")
                self.class_legend.addItem(self.class_bars, "now")
            self.class_legend.setVisible(self.baseline_bars.isVisible())  # no empty box
            self.class_plot.setXRange(-0.6, n - 0.4, padding=0)

    def _draw_confusion(self, conf: np.ndarray) -> None:
        n = len(conf)
        self.confusion_shown = np.asarray(conf, np.int64)
        top = float(max(int(conf.max(initial=0)), 1))
        self.confusion_image.setImage(conf.astype(np.float32), autoLevels=False)
        self.confusion_image.setRect(QtCore.QRectF(-0.5, -0.5, n, n))
        self.confusion_bar.setLevels((0.0, top))
        for name in ("bottom", "left"):
            self.confusion_plot.getAxis(name).set_classes(n, self.class_names)
        if n != self._confusion_size:
            self._confusion_size = n
            self.confusion_plot.setRange(xRange=(-0.5, n - 0.5), yRange=(-0.5, n - 0.5),
                                         padding=0)
        font = QtGui.QFont(self.font())
        font.setPointSizeF(7.5 * self.text_scale)
        counts = []
        if n <= MAX_CELL_COUNTS:
            counts = [(str(int(conf[i, j])), float(j), float(i), int(conf[i, j]) / top > 0.6)
                      for i in range(n) for j in range(n) if conf[i, j]]
        self.cell_counts.set_counts(counts, font)

    # ---------------------------------------------------------------- hover texts
    def per_class_text(self, x: float, _y: float) -> str:
        """What the per-class chart says of the class under the mouse."""
        i, shown = int(round(x)), self.per_class_shown
        if not 0 <= i < len(shown):
            return ""
        name = self.class_plot.getAxis('bottom').name(i)
        if i < len(self.unlearnt) and self.unlearnt[i]:
            return f"{name}: {NOT_LEARNT} (the head shown lacks the class: no accuracy)"
        text = f"{name}: {_percent(shown[i])} now"
        if self.baseline is not None and len(self.baseline) == len(shown):
            text += f" · {_percent(self.baseline[i])} unadapted"
        return text

    def confusion_text(self, x: float, y: float) -> str:
        """What the confusion matrix says of the cell under the mouse."""
        j, i, conf = int(round(x)), int(round(y)), self.confusion_shown
        if not (0 <= i < len(conf) and 0 <= j < len(conf)):
            return ""
        name = self.confusion_plot.getAxis("bottom").name
        return f"label {name(i)} → predicted {name(j)}: {int(conf[i, j])} samples"

    def balance_text(self, x: float, _y: float) -> str:
        """What the balance chart says of the target under the mouse."""
        i = int(round(x))
        counts, names = self.balance_shown
        if not 0 <= i < len(counts):
            return ""
        return f"{names[i] if i < len(names) else i}: {int(counts[i])} samples"

    def set_history(self, history: list[HistoryRow], source_accuracy: float, runs=None,
                    current_run: int = 0) -> None:
        """The current run's curves, the other ``runs``' online accuracy (one colour, dash
        and legend entry each), the current run's shift marks and pass starts."""
        steps = np.array([h.step for h in history], np.float64)
        online = np.array([h.online_accuracy for h in history], np.float64)
        full = np.array([h.full_accuracy for h in history], np.float64)
        ok = np.isfinite(full)
        draw_curve(self.online_curve, history, online, ONLINE_COLOR)
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
        shown = [bool(np.isfinite(online).any()), bool(ok.any()), bool(seen.any())]
        largest = self.runs.set_runs(runs, current_run, shown)
        current = next((r for r in runs if r.number == current_run), None)
        self.runs.set_marks(current.shift_marks() if current is not None else [])
        # where a pass starts, in the current run or in any run drawn beside it (their
        # curves break there too)
        starts = {*pass_starts(history), *(p for r in self.runs.drawn for p in pass_starts(r.history))}
        self.runs.set_passes(sorted(starts))
        end = max(1.0, steps.max() if steps.size else 1.0, largest)
        # room right of the last step: its marker is never cut by the plot's edge
        self.accuracy_plot.setXRange(0, end + max(0.5, 0.025 * end), padding=0)

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
        names = [f"P{i}" for i in range(n)] if target == "prototypes" else self.class_names
        self.balance_plot.getAxis("bottom").set_classes(n, names)
        self.balance_shown = (counts, [names[i] if i < len(names) else str(i) for i in range(n)])
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
        tick = scale_chart_text(self.plots(), [self.accuracy_legend], scale, self.font())
        # the per-class legend is built again in the new size: relabelled in place, its
        # rows kept the larger size after a talk (the texts sat high in a tall box)
        self.class_legend.opts["labelTextSize"] = f"{8.0 * scale:.1f}pt"
        self._class_key = None
        if len(self.per_class_shown):
            self._draw_per_class(self.per_class_shown)
        for line in (self.source_line, self.ideal_line):
            line.label.setFont(tick)
        self.runs.set_text_scale(scale, tick)
        # the plot keeps room for its curves under the title, the axes and the legend
        self.accuracy_plot.setMinimumHeight(int(12 * QtGui.QFontMetricsF(tick).height()))


def _percent(value: float) -> str:
    return f"{value:.1%}" if np.isfinite(value) else "no labelled sample"
