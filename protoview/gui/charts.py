"""Numbers that move with every step: accuracy over steps, per-class accuracy, confusion
matrix, and labels for NMI / ARI / center loss."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from protoview.core.session import HistoryRow


def per_class_and_confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int):
    """Per-class accuracy (C,) float (NaN for empty classes) and confusion (C, C) int64
    (rows = true label, columns = prediction), ignoring unknown (-1) labels/predictions."""
    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    ok = (labels >= 0) & (predictions >= 0) & (labels < n_classes) & (predictions < n_classes)
    conf = np.bincount(labels[ok] * n_classes + predictions[ok],
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    totals = conf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(totals > 0, np.diag(conf) / totals, np.nan)
    return per_class, conf


def _plot(title: str, left: str, bottom: str) -> pg.PlotWidget:
    w = pg.PlotWidget(title=title)
    w.setMenuEnabled(False)
    w.setLabel("left", left)
    w.setLabel("bottom", bottom)
    w.showGrid(x=True, y=True, alpha=0.25)
    return w


class NumbersPanel(QtWidgets.QWidget):
    """Accuracy chart + per-class bars + confusion matrix + score labels.

    Feed it with :meth:`update_numbers` after every result.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.accuracy_plot = _plot("Accuracy over steps", "accuracy", "step")
        self.accuracy_plot.setYRange(0, 1)
        self.accuracy_plot.addLegend(offset=(-4, -4), labelTextSize="8pt")
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
        self.class_plot = _plot("Per-class accuracy", "accuracy", "class")
        self.class_plot.setYRange(0, 1)
        self.class_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#2ca02c")
        self.class_plot.addItem(self.class_bars)
        self.confusion_plot = _plot("Confusion (rows: label)", "label", "prediction")
        self.confusion_plot.getViewBox().invertY(True)
        self.confusion_plot.setAspectLocked(True)
        self.confusion_image = pg.ImageItem(axisOrder="row-major")
        self.confusion_image.setColorMap(pg.colormap.get("viridis"))
        self.confusion_plot.addItem(self.confusion_image)
        self.scores = QtWidgets.QLabel("")
        self.scores.setObjectName("ScoresLabel")
        self.scores.setWordWrap(True)
        self.scores.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        tabs = QtWidgets.QTabWidget()
        tabs.addTab(self.class_plot, "Per class")
        tabs.addTab(self.confusion_plot, "Confusion")
        self.tabs = tabs
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.scores)
        layout.addWidget(self.accuracy_plot, 3)
        layout.addWidget(tabs, 2)

    def update_numbers(self, state, history: list[HistoryRow], source_accuracy: float) -> None:
        """Redraw everything for ``state`` and the run's ``history``."""
        self.set_history(history, source_accuracy)
        if state is None:
            return
        n = max(len(state.center_labels), int(np.max(state.labels, initial=-1)) + 1,
                int(np.max(state.predictions, initial=-1)) + 1)
        per_class, conf = per_class_and_confusion(state.labels, state.predictions, n)
        self.class_bars.setOpts(x=np.arange(n), height=np.nan_to_num(per_class), width=0.8)
        self.class_plot.setXRange(-0.6, n - 0.4, padding=0)
        self.confusion_image.setImage(conf.astype(np.float32), autoLevels=True)
        self.confusion_image.setRect(QtCore.QRectF(-0.5, -0.5, n, n))
        self.scores.setText(scores_text(state.metrics, source_accuracy))

    def set_history(self, history: list[HistoryRow], source_accuracy: float) -> None:
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
        self.accuracy_plot.setXRange(0, max(1.0, steps.max() if steps.size else 1.0))

    def history_points(self) -> int:
        """How many full-set accuracy points the chart shows (for tests)."""
        x, _ = self.full_curve.getData()
        return 0 if x is None else len(x)


def scores_text(metrics: dict, source_accuracy: float) -> str:
    """One line of the headline numbers (missing ones are left out)."""
    parts = []

    def add(label: str, key: str, fmt: str) -> None:
        v = metrics.get(key)
        if v is not None and np.isfinite(v):
            parts.append(f"{label} {format(v, fmt)}")

    add("accuracy", "accuracy", ".1%")
    probe = metrics.get("probe_accuracy")
    if probe is not None and np.isfinite(probe) and "accuracy" not in metrics:
        size, population = int(metrics.get("probe_size", 0)), int(metrics.get("probe_population", 0))
        parts.append(f"probe accuracy {probe:.1%} (95% CI {metrics.get('probe_low', probe):.1%}"
                     f"–{metrics.get('probe_high', probe):.1%}; {size:,} of {population:,})")
    if np.isfinite(source_accuracy):
        parts.append(f"unadapted {source_accuracy:.1%}")
    add("center loss", "center_loss", ".3g")
    add("NMI", "nmi", ".3f")
    add("ARI", "ari", ".3f")
    return " · ".join(parts) if parts else "no numbers yet"
