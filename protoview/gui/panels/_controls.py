"""Control panels: adaptation (TSD and baselines, the test stream), k-means, Sinkhorn.

Each panel turns its widgets into one frozen request from :mod:`protoview.present`
and emits it; it never runs anything itself.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.gui.panels._method_form import MethodParamsForm
from protoview.present import KMeansRequest, SinkhornRequest, StepRequest
from protoview.present.methods import DEFAULT_METHOD, method_names, needs_source


def _spin(lo: int, hi: int, value: int, tip: str) -> QtWidgets.QSpinBox:
    w = QtWidgets.QSpinBox()
    w.setRange(lo, hi)
    w.setValue(value)
    w.setToolTip(tip)
    return w


def _dspin(lo: float, hi: float, value: float, decimals: int, step: float, tip: str):
    w = QtWidgets.QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setDecimals(decimals)
    w.setSingleStep(step)
    w.setValue(value)
    w.setToolTip(tip)
    return w


def _combo(items: tuple[str, ...], tip: str) -> QtWidgets.QComboBox:
    w = QtWidgets.QComboBox()
    w.addItems(list(items))
    w.setToolTip(tip)
    return w


def _row(*widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    """Widgets side by side in one form row."""
    box = QtWidgets.QWidget()
    row = QtWidgets.QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        row.addWidget(w, 1)
    return box


#: The label-order choices of the stream controls and their ``--stream`` words.
LABEL_ORDERS = {"i.i.d. labels": "", "sorted by class": "sorted", "Dirichlet": "dirichlet"}


#: The reset choices of the stream controls and their ``--stream`` words.
RESETS = {"online": "", "episodic": "episodic", "reset each shift": "reset_each_shift"}
#: The domain-order choices and their ``--stream`` words.
DOMAIN_ORDERS = {"mixed": "", "continual": "continual", "gradual": "gradual"}


def _enable_item(combo: QtWidgets.QComboBox, text: str, enabled: bool, tip: str) -> None:
    """Offer a combo's entry or grey it out (with why in its tooltip); a chosen entry that
    goes is replaced by the first."""
    item = combo.model().item(combo.findText(text))
    item.setEnabled(enabled)
    item.setToolTip("" if enabled else tip)
    if not enabled and combo.currentText() == text:
        combo.setCurrentIndex(0)


#: the batch order of a run: drawn shuffled with the seed, or the data's file order
ORDERS = ("shuffled", "file order")
_ORDER_TIP = ("the batch order: shuffled with the seed, or the data's file order (chosen "
              "when data open: file order for CIFAR-10-C, as RobustBench's and tent's scripts)")


class StreamControls(QtCore.QObject):
    """The test stream: reset (online / episodic / reset each shift: only for data of
    several domains), domains (mixed / continual: only for data of several domains;
    gradual: only for corrupted data opened at the five severities of each corruption),
    label order (i.i.d., sorted by class, Dirichlet with its concentration alpha), samples
    per domain (0: all).
    :meth:`text` is the ``--stream`` text of the choice."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.reset = _combo(tuple(RESETS), "online: the model carries over from batch to "
                            "batch; episodic: back to the source model before every batch; "
                            "reset each shift: back to the source model where the corruption "
                            "or domain changes (the toolkit's reset_each_shift)")
        self.domains = _combo(tuple(DOMAIN_ORDERS), "data of several shifts or domains: "
                              "mixed = all shuffled together; continual = one after another, "
                              "without reset (the chart marks where the shift changes); "
                              "gradual = each corruption through severities 1-5-1")
        self.labels = _combo(tuple(LABEL_ORDERS), "the order of the classes in the stream: "
                             "shuffled, class by class, or a Dirichlet label shift (RoTTA's)")
        self.alpha = QtWidgets.QDoubleSpinBox()
        self.alpha.setRange(0.001, 1000.0)
        self.alpha.setDecimals(3)
        self.alpha.setSingleStep(0.1)
        self.alpha.setValue(0.1)
        self.alpha.setPrefix("α ")
        self.alpha.setToolTip("Dirichlet concentration: the smaller, the longer the runs of "
                              "one class (RoTTA uses 0.1)")
        self.samples = QtWidgets.QSpinBox()
        self.samples.setRange(0, 100_000_000)
        self.samples.setSingleStep(500)
        self.samples.setSpecialValueText("all samples")
        self.samples.setSuffix(" per domain")
        self.samples.setToolTip("at most this many samples of each domain (the toolkit's "
                                "NUM_EX); all: every sample")
        self.labels.currentTextChanged.connect(self._enable)
        self.reset.currentTextChanged.connect(self._reset_chosen)
        self.domains.currentTextChanged.connect(self._domains_chosen)
        self.set_domains(())
        self._enable()

    def set_domains(self, names, shifts=(), severities=()) -> None:
        """The open data's domains: ``continual`` and ``reset each shift`` are offered only
        for several, ``gradual`` only when each corruption (``shifts``) is open at the five
        severities (``severities``, one per domain: ``cifar10c:ROOT:fog,snow:1-5``)."""
        names = list(names or ())
        several = len(names) > 1
        self.domains.setEnabled(several)
        self.domains.setToolTip(
            ("domains " + " → ".join(names) + ": mixed = shuffled together, continual = one "
             "after another without reset, gradual = each corruption through severities "
             "1-5-1") if several
            else "one domain: open several (demo:noise,blur,contrast) for continual streams")
        shifts, severities = list(shifts or ()), [int(s) for s in severities or ()]
        gradual = several and len(shifts) == len(severities) == len(names) and all(
            {s for t, s in zip(shifts, severities, strict=True) if t == shift} >= {1, 2, 3, 4, 5}
            for shift in shifts)
        _enable_item(self.domains, "gradual", gradual, "gradual needs each corruption at the "
                     "five severities: open e.g. cifar10c:ROOT:fog,snow:1-5 or demo:noise,blur:1-5")
        _enable_item(self.reset, "reset each shift", several,
                     "one domain: reset each shift needs data of several shifts or domains")
        if not several:
            self.domains.setCurrentText("mixed")

    def _reset_chosen(self, text: str) -> None:
        """Reset each shift needs the shifts in sequence: mixed becomes continual."""
        if RESETS.get(text) == "reset_each_shift" and self.domains.currentText() == "mixed":
            self.domains.setCurrentText("continual")

    def _domains_chosen(self, text: str) -> None:
        """A mixed stream has no shift to reset at: reset each shift becomes online."""
        if text == "mixed" and RESETS.get(self.reset.currentText()) == "reset_each_shift":
            self.reset.setCurrentText("online")

    def _enable(self, *_args) -> None:
        self.alpha.setEnabled(self.labels.currentText() == "Dirichlet")

    def text(self) -> str:
        reset = RESETS[self.reset.currentText()]
        words = [reset] if reset else []
        order = DOMAIN_ORDERS[self.domains.currentText()] if self.domains.isEnabled() else ""
        if order:
            words.append(order)
        label = LABEL_ORDERS[self.labels.currentText()]
        if label == "dirichlet":
            words.append(f"dirichlet={self.alpha.value():g}")
        elif label:
            words.append(label)
        if self.samples.value():
            words.append(f"samples={self.samples.value()}")
        return ",".join(words) or "online"


def _param_control(name: str) -> property:
    return property(lambda self: self.params_form.widget(name),
                    doc=f"The shown method's {name} control (None when it has none).")


class AdaptPanel(QtWidgets.QGroupBox):
    """Test-time adaptation controls. Emits ``step_requested(StepRequest)``,
    ``pause_requested()``, ``reset_requested()`` and ``forget_runs_requested()``. A new method, parameter or stream
    starts a new run; the earlier runs stay on the accuracy chart. The method list and each
    method's parameter controls come from the method registry (:class:`MethodParamsForm`)."""

    step_requested = QtCore.Signal(object)
    pause_requested = QtCore.Signal()
    reset_requested = QtCore.Signal()
    forget_runs_requested = QtCore.Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("Test-time adaptation", parent)
        self.method = _combo(method_names(), "the adaptation method (protoview methods lists "
                             "each one with its paper and parameters)")
        self.params_form = MethodParamsForm(method_names())
        self.batch_size = _spin(1, 100000, 64, "samples per step")
        self.seed = _spin(0, 2**31 - 1, 0, "seed of the batch order (and of a Dirichlet "
                          "label order or a sample of each domain)")
        self.seed.setPrefix("seed ")
        self.order = _combo(ORDERS, _ORDER_TIP)
        self.n_steps = _spin(1, 100000, 10, "steps for Run N")
        self.probe_size = _spin(0, 10_000_000, 1000, "samples of the stratified probe whose "
                                "accuracy estimates the full-set accuracy after every step "
                                "(0 = none; each step then costs that many more forward passes)")
        self.stream = StreamControls(self)
        form = QtWidgets.QFormLayout()
        form.addRow("method", self.method)
        form.addRow(self.params_form)
        for label, w in (("batch size", self.batch_size), ("order", _row(self.order, self.seed)),
                         ("stream", _row(self.stream.reset, self.stream.domains)),
                         ("labels", _row(self.stream.labels, self.stream.alpha)),
                         ("samples", self.stream.samples),
                         ("N", self.n_steps), ("probe", self.probe_size)):
            form.addRow(label, w)
        self.source_data = QtWidgets.QLineEdit()
        self.source_data.setPlaceholderText("e.g. demo:source, cifar10:ROOT:train")
        self.source_data.setToolTip(
            "labelled source data (the data the model was trained on, any dataset spelling), "
            "for a method that needs them: RMT's source prototypes, warm-up and replay; "
            "prepared as the test data")
        form.addRow("source data", self.source_data)
        self._form = form
        self.source_note = QtWidgets.QLabel("")
        self.source_note.setObjectName("SourceNote")
        self.source_note.setWordWrap(True)
        self.source_note.setVisible(False)
        form.addRow(self.source_note)
        self.adapt_note = QtWidgets.QLabel("")  # why the open model cannot be adapted
        self.adapt_note.setObjectName("AdaptNote")
        self.adapt_note.setWordWrap(True)
        self.adapt_note.setVisible(False)
        form.addRow(self.adapt_note)
        self.probe_note = QtWidgets.QLabel("")  # what the probe costs, when it is the most
        self.probe_note.setObjectName("ProbeNote")
        self.probe_note.setWordWrap(True)
        self.probe_note.setVisible(False)
        form.addRow(self.probe_note)
        self.params_form.align_labels(form)
        self.step_button = QtWidgets.QPushButton("Step")
        self.run_button = QtWidgets.QPushButton("Run N")
        self.pass_button = QtWidgets.QPushButton("One pass")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.reset_button = QtWidgets.QPushButton("Reset")
        self.forget_button = QtWidgets.QPushButton("Clear runs")
        self.forget_button.setToolTip("forget the earlier runs (their curves leave the chart)")
        self.step_button.setToolTip("one batch (Space)")
        self.run_button.setToolTip("N batches (R)")
        self.reset_button.setToolTip("back to the source model (Ctrl+R)")
        grid = QtWidgets.QGridLayout()
        for i, b in enumerate((self.step_button, self.run_button, self.pass_button,
                               self.pause_button, self.reset_button, self.forget_button)):
            grid.addWidget(b, i // 3, i % 3)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(grid)
        self.step_button.clicked.connect(lambda: self._send(1))
        self.run_button.clicked.connect(lambda: self._send(self.n_steps.value()))
        self.pass_button.clicked.connect(lambda: self._send(0))
        self.pause_button.clicked.connect(self.pause_requested.emit)
        self.reset_button.clicked.connect(self.reset_requested.emit)
        self.forget_button.clicked.connect(self.forget_runs_requested.emit)
        self.method.currentTextChanged.connect(self.params_form.set_method)
        self.method.currentTextChanged.connect(self._show_source_row)
        self.method.setCurrentText(DEFAULT_METHOD)
        self.params_form.set_method(self.method.currentText())
        self._show_source_row(self.method.currentText())

    def set_order(self, shuffled: bool, note: str = "", fixed: bool = False) -> None:
        """The open data's own batch order (chosen when data open): shuffled with the seed,
        or the file order (``note`` says whose scripts keep it; ``fixed``: the data allow
        no other, CCC)."""
        self.order.setCurrentText("shuffled" if shuffled else "file order")
        self.order.setEnabled(not fixed)
        self.order.setToolTip(_ORDER_TIP + (f". These data: {note}" if note else ""))

    def set_adaptable(self, why_not: str = "") -> None:
        """Offer adaptation, or say why the open model cannot be adapted (an encoder without
        a head, a task checkpoint's partial head): the step buttons are off and the reason
        is said above them."""
        for button in (self.step_button, self.run_button, self.pass_button):
            button.setEnabled(not why_not)
        self.adapt_note.setText(f"No adaptation: {why_not}" if why_not else "")
        self.adapt_note.setVisible(bool(why_not))

    def _show_source_row(self, method: str) -> None:
        """The source data row only for a method that needs source data."""
        self._form.setRowVisible(self.source_data, bool(needs_source(method)))
        self.source_note.setVisible(False)

    def _send(self, n_steps: int) -> None:
        """Emit the request, unless the method needs source data and none is given: then
        say so under the field (nothing is sent)."""
        needs = needs_source(self.method.currentText())
        if needs and not self.source_data.text().strip():
            self.source_note.setText(f"{self.method.currentText()} needs {needs}: name them "
                                     "above (demo: demo:source)")
            self.source_note.setVisible(True)
            self.source_data.setFocus()
            return
        self.source_note.setVisible(False)
        self.step_requested.emit(self.request(n_steps))

    #: below this many seconds a probe is not worth a word, whatever the step took
    PROBE_NOTE_SECONDS = 1.0

    def show_costs(self, step_seconds: float, probe_seconds: float) -> None:
        """Say so beside the probe when the last step's probe took longer than the step
        itself and more than a second (each step then waits mostly for the probe); nothing
        otherwise (the text and visibility change only when the verdict does)."""
        import math

        costly = (math.isfinite(probe_seconds) and probe_seconds > self.PROBE_NOTE_SECONDS
                  and probe_seconds > step_seconds > 0)
        if not costly and not self.probe_note.isVisibleTo(self):
            return
        self.probe_note.setText(
            f"the probe took {probe_seconds:.1f} s, the step {step_seconds:.1f} s: a smaller "
            "probe makes each step faster (0 = off; Refresh map gives the exact numbers)"
            if costly else "")
        self.probe_note.setVisible(costly)

    # the shown method's controls the scripts and tests read by name (None when it has
    # none; the others: params_form.widget(name)). Not "update": QWidget.update repaints
    lr = _param_control("lr")
    variant = _param_control("variant")

    def request(self, n_steps: int) -> StepRequest:
        """The StepRequest for the current settings (n_steps <= 0: one pass)."""
        return StepRequest(method=self.method.currentText(), n_steps=int(n_steps),
                           batch_size=int(self.batch_size.value()),
                           seed=int(self.seed.value()), params=self.params_form.values(),
                           shuffle=self.order.currentText() == "shuffled",
                           probe_size=int(self.probe_size.value()),
                           stream=self.stream.text(), live=True,
                           source_data=self.source_data.text().strip()
                           if needs_source(self.method.currentText()) else "")


class KMeansPanel(QtWidgets.QGroupBox):
    """k-means prototypes (faiss, PCL density). Emits ``kmeans_requested(KMeansRequest)``."""

    kmeans_requested = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__("k-means prototypes", parent)
        self.k = _spin(1, 100000, 10, "number of prototypes")
        self.niter = _spin(1, 1000, 20, "iterations")
        self.nredo = _spin(1, 100, 5, "restarts, the best kept (auto: k-means++ draws, at least 3)")
        self.seed = _spin(0, 2**31 - 1, 0, "seed")
        self.init = QtWidgets.QComboBox()
        self.init.addItems(["auto", "pcl", "kmeans++"])
        self.init.setToolTip("seeding: auto (by size: greedy k-means++ on a sample, then faiss's "
                             "Lloyd; scikit-learn's quality at a fraction of its time), pcl (PCL's run_kmeans: "
                             "faiss's random sample) or k-means++ (greedy, with PCL's settings)")
        self.run_button = QtWidgets.QPushButton("Run k-means")
        form = QtWidgets.QFormLayout(self)
        for label, w in (("k", self.k), ("iterations", self.niter), ("redo", self.nredo),
                         ("seed", self.seed), ("seeding", self.init)):
            form.addRow(label, w)
        form.addRow(self.run_button)
        self.run_button.clicked.connect(lambda: self.kmeans_requested.emit(self.request()))

    def request(self) -> KMeansRequest:
        return KMeansRequest(k=int(self.k.value()), niter=int(self.niter.value()),
                             nredo=int(self.nredo.value()), seed=int(self.seed.value()),
                             init=self.init.currentText())


class SinkhornPanel(QtWidgets.QGroupBox):
    """Sinkhorn-Knopp balanced assignment. Emits ``sinkhorn_requested(SinkhornRequest)``.
    The balance chart (samples per target) is in the Numbers panel's Balance tab, where it
    is never below the fold of the controls."""

    sinkhorn_requested = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__("Sinkhorn assignment", parent)
        self.target = _combo(("prototypes", "proxies", "centers"), "assign samples to these")
        self.epsilon = _dspin(1e-4, 10.0, 0.05, 4, 0.01, "entropic regularisation")
        self.n_iters = _spin(1, 1000, 3, "Sinkhorn iterations")
        self.run_button = QtWidgets.QPushButton("Run Sinkhorn")
        self.balance_label = QtWidgets.QLabel("The balance of the groups shows in Numbers → Balance.")
        self.balance_label.setWordWrap(True)
        form = QtWidgets.QFormLayout(self)
        form.addRow("target", self.target)
        form.addRow("epsilon", self.epsilon)
        form.addRow("iterations", self.n_iters)
        form.addRow(self.run_button)
        form.addRow(self.balance_label)
        self.run_button.clicked.connect(lambda: self.sinkhorn_requested.emit(self.request()))

    def request(self) -> SinkhornRequest:
        return SinkhornRequest(target=self.target.currentText(),
                               epsilon=float(self.epsilon.value()),
                               n_iters=int(self.n_iters.value()))
