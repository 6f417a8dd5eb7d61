"""The Geometry view (Numbers → Geometry): the feature space's geometry measured on the
worker (a :class:`~protoview.present.GeometryRequest`) and shown from ``shown.geometry``:
neural collapse NC1-NC4, the head's accuracy beside k-NN and nearest-center accuracy, k-means
NMI / ARI, CKA against the source model, the proxy-to-center cosine per class, the k-means
groups with the most errors (a click selects a group on the map) and NC1 / k-NN accuracy
along the run (one point per measurement)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.panels._numbers import ChartTabs
from protoview.gui.panels._plots import (
    ChartLegend,
    LegendEntry,
    hover_text,
    make_plot,
    scale_chart_text,
)
from protoview.present import GeometryRequest
from protoview.present import geometry as texts

BAR_COLOR = "#4c72b0"
NC1_COLOR, KNN_COLOR = "#8172b2", "#2ca02c"
#: each plot's curve colours, in the order of ``present.geometry.CURVES``
CURVE_COLORS = ((NC1_COLOR,), (KNN_COLOR, "#dd8452", "#4c72b0"), ("#c44e52", "#937860", "#8172b2"))
NOW_COLOR = "#7f7f7f"
ERROR_COLUMNS = ("group", "size", "errors", "error rate", "true classes")


class WrappedLabel(QtWidgets.QLabel):
    """A word-wrapped label of a fixed number of lines with no height-for-width: a wrapped
    label's height-for-width made the scroll area around the panel take the panel's
    preferred height (it grew past the dock) instead of giving the tables and charts the
    room (QLabel turns it back on with every new text, so it is answered here)."""

    def __init__(self, text: str, lines: int) -> None:
        super().__init__(text)
        self.lines = lines
        self.setWordWrap(True)
        self._fit()

    def _fit(self) -> None:
        self.setMinimumHeight(self.lines * self.fontMetrics().lineSpacing() + 2)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """A talk's larger font (or the style sheet that says it) keeps every line."""
        super().changeEvent(event)
        if event.type() in (QtCore.QEvent.Type.FontChange, QtCore.QEvent.Type.StyleChange):
            self._fit()

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return False


def _read_only_table(columns: tuple[str, ...]) -> QtWidgets.QTableWidget:
    table = QtWidgets.QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
    table.setWordWrap(False)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    return table


class GeometryPanel(QtWidgets.QWidget):
    """See the module docstring. Signals: ``measure_requested(GeometryRequest)`` (Measure,
    and after each step job while ``follow`` is ticked: the window decides when),
    ``group_chosen(members (K,) int64)`` (a row of the error table clicked).

    Feed it with :meth:`show_measured` (the shown model: its ``geometry``, ``state``,
    ``class_names``...) whenever one of those changes."""

    measure_requested = QtCore.Signal(object)
    group_chosen = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.class_names: list[str] = []
        self.shown_rows: list = []  # the error rows shown (their members)
        self.shown_cosines = (np.zeros(0, np.int64), np.zeros(0))
        self.header = WrappedLabel("Nothing is open.", 3)
        self.header.setObjectName("GeometryHeader")
        self._build_controls()
        self.numbers = _read_only_table(("measure", "value"))
        self.numbers.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.numbers.horizontalHeader().setSectionResizeMode(
            0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.tabs = ChartTabs()
        self.tabs.addTab(self._build_errors(), "Error clusters")
        self.tabs.addTab(self._build_cosines(), "Proxy ↔ center")
        self.tabs.addTab(self._build_along(), "Along the run")
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.numbers)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addLayout(self.controls)
        layout.addWidget(split, 1)

    # ---------------------------------------------------------------- building
    def _build_controls(self) -> None:
        self.measure_button = QtWidgets.QPushButton("Measure")
        self.measure_button.setToolTip("Measure the current model's feature space on the "
                                       "worker (the map is refreshed first)")
        self.measure_button.clicked.connect(lambda: self.measure_requested.emit(self.request()))
        self.follow = QtWidgets.QCheckBox("after each step")
        self.follow.setToolTip("Measure again when a Step / Run N ends (each measurement "
                               "refreshes every sample to the adapted model first)")
        self.knn_k = QtWidgets.QSpinBox()
        self.knn_k.setRange(1, 1000)
        self.knn_k.setValue(20)
        self.knn_k.setPrefix("k-NN k ")
        self.knn_k.setToolTip("neighbours of the weighted k-NN vote (20: DINO's)")
        self.groups = QtWidgets.QSpinBox()
        self.groups.setRange(0, 10_000)
        self.groups.setSpecialValueText("groups: classes")
        self.groups.setPrefix("groups ")
        self.groups.setToolTip("k-means groups of the error table (0: the head's classes)")
        # two rows: the dock stays as narrow as the numbers' (a talk narrows them)
        grid = QtWidgets.QGridLayout()
        grid.addWidget(self.measure_button, 0, 0)
        grid.addWidget(self.follow, 0, 1)
        grid.addWidget(self.knn_k, 1, 0)
        grid.addWidget(self.groups, 1, 1)
        grid.setColumnStretch(2, 1)
        self.controls = grid

    def _build_errors(self) -> QtWidgets.QWidget:
        self.errors_note = WrappedLabel("", 2)
        self.errors = _read_only_table(ERROR_COLUMNS)
        header = self.errors.horizontalHeader()
        for col in range(4):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.errors.cellClicked.connect(lambda row, _col: self.choose_group(row))
        page = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(page)
        col.setContentsMargins(0, 2, 0, 0)
        col.addWidget(self.errors_note)
        col.addWidget(self.errors, 1)
        return page

    def _build_cosines(self) -> QtWidgets.QWidget:
        self.cosine_plot = make_plot("Proxy-to-center cosine", "cosine", "class", class_x=True)
        self.cosine_plot.setMouseEnabled(False, False)
        self.cosine_bars = pg.BarGraphItem(x=[], height=[], width=0.76, brush=BAR_COLOR)
        self.cosine_plot.addItem(self.cosine_bars)
        hover_text(self.cosine_plot, self.cosine_text)
        return self.cosine_plot

    def _build_along(self) -> QtWidgets.QWidget:
        titles = (("NC1", "NC1"), ("k-NN accuracy, NC4, linear CKA", "share"),
                  ("NC2 and NC3", "value"))
        self.along_plots: list[pg.PlotWidget] = []
        self.along_curves: list[list[tuple[str, pg.PlotDataItem]]] = []
        self.along_legends: list[ChartLegend] = []
        self.now_lines: list[pg.InfiniteLine] = []
        for (title, left), curves, colors in zip(titles, texts.CURVES, CURVE_COLORS, strict=True):
            plot = make_plot(title, left, "step")
            plot.setMouseEnabled(False, False)
            plot.getAxis("left").enableAutoSIPrefix(False)
            items, entries = [], []
            for (key, name), color in zip(curves, colors, strict=True):
                pen = pg.mkPen(color, width=2)
                items.append((key, plot.plot([], [], pen=pen, symbol="o", symbolSize=6,
                                             symbolBrush=color, symbolPen=None,
                                             connect="finite")))
                entries.append(LegendEntry(name, pen, "o", color))
            legend = ChartLegend(plot)
            legend.set_entries(entries if len(entries) > 1 else [])
            now = pg.InfiniteLine(angle=90, pen=pg.mkPen(
                NOW_COLOR, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
            now.setVisible(False)
            plot.addItem(now)
            self.along_plots.append(plot)
            self.along_curves.append(items)
            self.along_legends.append(legend)
            self.now_lines.append(now)
        self.along_plots[1].setYRange(0, 1.02, padding=0)
        self._size_along(1.0)
        self.nc1_plot, self.knn_plot = self.along_plots[0], self.along_plots[1]
        self.nc1_curve = self.along_curves[0][0][1]
        self.knn_curve = self.along_curves[1][0][1]
        note = WrappedLabel("", 3)
        self.along_note = note
        page = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(page)
        col.setContentsMargins(0, 2, 0, 0)
        col.addWidget(note)
        for plot in self.along_plots:
            col.addWidget(plot, 1)
        return page

    def plots(self) -> list[pg.PlotWidget]:
        return [self.cosine_plot, *self.along_plots]

    def legends(self) -> list[ChartLegend]:
        return list(self.along_legends)

    def set_text_scale(self, scale: float) -> None:
        """Talk-size text (the window's presentation mode) on the charts and legends."""
        self.text_scale = float(scale)
        scale_chart_text(self.plots(), self.legends(), scale, self.font())
        self._size_along(scale)

    def _size_along(self, scale: float) -> None:
        """Room for each curve under its title, axis and legend (the panel scrolls in its
        dock rather than squash three plots to their titles)."""
        line = QtGui.QFontMetricsF(self.font()).height() * scale
        for plot, legend in zip(self.along_plots, self.along_legends, strict=True):
            rows = len(legend.entries)
            plot.setMinimumHeight(int((9 + 1.3 * rows) * line))

    # ---------------------------------------------------------------- requests
    def request(self) -> GeometryRequest:
        """The request of the panel's settings (the rest are ``protoview geometry``'s)."""
        return GeometryRequest(knn_k=self.knn_k.value(), kmeans_k=self.groups.value() or None)

    def choose_group(self, row: int) -> None:
        """Select error group ``row``'s samples (``group_chosen``)."""
        if 0 <= row < len(self.shown_rows):
            self.group_chosen.emit(self.shown_rows[row].members)

    # ---------------------------------------------------------------- showing
    def show_measured(self, shown) -> None:
        """Show what ``shown`` (a :class:`~protoview.present.Shown`) holds of the geometry:
        the measurement of the map shown (or the latest, said to be older)."""
        self.class_names = list(shown.class_names)
        self.header.setText(texts.header_text(shown))
        self.measure_button.setEnabled(shown.snapshot is None and shown.state is not None)
        g, _current = texts.for_shown(shown)
        self._show_numbers([] if g is None else texts.number_rows(g))
        self._show_errors(g)
        self._show_cosines(g)
        self._show_along(texts.along(shown))

    def _show_along(self, along: texts.Along) -> None:
        """The curves along the run (or the timeline's checkpoints), the step shown dashed."""
        self.shown_along = along
        self.along_note.setText(along.note)
        steps = along.steps
        start = float(steps.min()) if steps.size else 0.0
        end = max(start + 1.0, float(steps.max()) if steps.size else 1.0)
        pad = 0.04 * (end - start)
        for plot, items, now in zip(self.along_plots, self.along_curves, self.now_lines,
                                    strict=True):
            for key, item in items:
                values = along.values[key]
                ok = np.isfinite(values)
                item.setData(steps[ok], values[ok])
            plot.setLabel("bottom", along.label)
            plot.setXRange(start - pad, end + pad, padding=0)  # room for the end markers
            now.setVisible(along.now is not None and steps.size > 0)
            if along.now is not None:
                now.setValue(along.now)
            if steps.size and steps.size <= 12:  # whole steps only (a timeline's checkpoints)
                plot.getAxis("bottom").setTicks([[(float(v), str(int(v))) for v in steps]])
            else:
                plot.getAxis("bottom").setTicks(None)
        self.along_legends[1].set_entries([
            LegendEntry(f"linear CKA vs {along.versus}" if key == "linear_cka" else name,
                        pg.mkPen(color, width=2), "o", color)
            for (key, name), color in zip(texts.CURVES[1], CURVE_COLORS[1], strict=True)])

    def _show_numbers(self, rows: list[tuple[str, str, str]]) -> None:
        table = self.numbers
        table.setRowCount(len(rows))
        for i, (name, value, meaning) in enumerate(rows):
            for j, text in enumerate((name, value)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(meaning)
                if j == 1:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                          | QtCore.Qt.AlignmentFlag.AlignVCenter)
                table.setItem(i, j, item)
        # every number on screen without scrolling (the tabs below take the rest)
        rows_height = table.verticalHeader().defaultSectionSize() * max(len(rows), 4)
        table.setMinimumHeight(rows_height + table.horizontalHeader().sizeHint().height()
                               + 2 * table.frameWidth() + 2)

    def _show_errors(self, g) -> None:
        rows = [] if g is None else texts.error_rows(g, self.class_names)
        self.shown_rows = rows
        table = self.errors
        table.clearSelection()
        table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row.texts):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(f"group {row.texts[0]}: click to select its {row.texts[1]} "
                                f"samples on the map · {row.texts[4]}")
                if j < 4:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                          | QtCore.Qt.AlignmentFlag.AlignVCenter)
                table.setItem(i, j, item)
        if g is None:
            note = ""
        elif not g.report.labelled:
            note = f"Clusters with the most errors: {texts.NO_LABELS} (errors need labels)."
        else:
            note = (f"k-means (k = {g.report.kmeans_k}) groups, the highest error rate first: "
                    "click one to select its samples on the map.")
        self.errors_note.setText(note)
        self.errors_note.setVisible(bool(note))

    def _show_cosines(self, g) -> None:
        classes, cos = (np.zeros(0, np.int64), np.zeros(0)) if g is None else texts.cosine_bars(g)
        self.shown_cosines = (classes, cos)
        n = int(classes.max()) + 1 if classes.size else 0
        self.cosine_bars.setOpts(x=classes.astype(np.float64), height=cos, width=0.76)
        self.cosine_plot.getAxis("bottom").set_classes(n, self.class_names)
        self.cosine_plot.setXRange(-0.6, max(n, 1) - 0.4, padding=0)
        low = min(0.0, float(cos.min())) if cos.size else 0.0
        self.cosine_plot.setYRange(low, 1.0, padding=0.02)

    def cosine_text(self, x: float, _y: float) -> str:
        """What the cosine chart says of the class under the mouse."""
        classes, cos = self.shown_cosines
        hit = np.flatnonzero(classes == int(round(x)))
        if not hit.size:
            return ""
        name = self.cosine_plot.getAxis("bottom").name(int(classes[hit[0]]))
        return f"{name}: cosine {cos[hit[0]]:.3f} between its head row and its class mean"
