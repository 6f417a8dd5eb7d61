"""MainWindow: the map in the middle, controls and numbers in docks, progress in the
status bar. All computing goes through the one :class:`~protoview.gui.worker.ComputeWorker`."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.core.session import OpenRequest, RefreshRequest
from protoview.errors import ProtoviewError, UntrustedCodeError
from protoview.gui import _menus, theme
from protoview.gui._window_files import FileActions
from protoview.gui.charts import NumbersPanel
from protoview.gui.map_view import COLOR_MODES, EmbeddingView, map_freshness
from protoview.gui.panels import AdaptPanel, KMeansPanel, SinkhornPanel
from protoview.gui.replay import ReplayBar, frame_state
from protoview.gui.worker import ComputeWorker, ResetRequest, default_open, default_warm_up


class MainWindow(FileActions, QtWidgets.QMainWindow):
    """The protoview window.

    Parameters
    ----------
    settings: where geometry, docks, theme and recent files are kept (default: the user's).
    open_session, warm_up: injected into the worker (tests pass fakes).
    raise_errors: re-raise worker errors on the main thread after showing them (tests).
    """

    def __init__(self, settings: QtCore.QSettings | None = None, open_session=default_open,
                 warm_up=default_warm_up, raise_errors: bool = False) -> None:
        super().__init__()
        self.settings = settings or QtCore.QSettings("protoview", "protoview")
        self.raise_errors = raise_errors
        self.state = None
        self.history: list = []
        self.source_accuracy = float("nan")
        self.snapshot = None
        self.snapshot_base = None
        self.open_request: OpenRequest | None = None  # the latest asked for
        self.opened_request: OpenRequest | None = None  # the one the open session came from
        self._open_jobs: dict[int, OpenRequest] = {}
        self.last_error: str = ""
        self.theme_name = "light"
        self._job = 0
        self.setWindowTitle("protoview")
        self.setWindowIcon(theme.icon())
        self.setAcceptDrops(True)
        self._build_central()
        self._build_docks()
        self._build_status()
        self.actions_ = _menus.build_menus(self)
        self.error_box = QtWidgets.QMessageBox(self)
        self.error_box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        self.error_box.setWindowTitle("protoview")
        self._build_trust_box()
        self.worker = ComputeWorker(open_session=open_session, warm_up=warm_up)
        self._connect_worker()
        self._restore_settings()
        self.worker.start()

    # ------------------------------------------------------------------ building
    def _build_trust_box(self) -> None:
        """The question asked when a checkpoint holds pickled code: never loaded silently,
        trusted only for this one open (nothing is remembered)."""
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setWindowTitle("protoview — run code from this checkpoint?")
        self.trust_button = box.addButton("Open and run its code",
                                          QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(self._on_trust_answer)
        self.trust_box = box
        self._untrusted_request: OpenRequest | None = None

    def _ask_trust(self, request: OpenRequest, error: UntrustedCodeError) -> None:
        self._untrusted_request = request
        self.trust_box.setText(
            f"{error.where}\n\nThis checkpoint {error.problem.split(';')[0]}.\n\n"
            "Loading it runs that code on this computer, with your permissions. Open it only "
            "if you trust where the file came from (the command line's --trust-checkpoint).")
        self.trust_box.show()

    def _on_trust_answer(self, button) -> None:
        request, self._untrusted_request = self._untrusted_request, None
        if button is self.trust_button and request is not None:
            from dataclasses import replace

            self.status_label.setText("opening the trusted checkpoint…")
            self.submit(replace(request, trust=True))

    def _build_central(self) -> None:
        self.view = EmbeddingView()
        self.colour_combo = QtWidgets.QComboBox()
        self.colour_combo.addItems(list(COLOR_MODES))
        self.colour_combo.setToolTip("colour samples by (L)")
        self.colour_combo.currentTextChanged.connect(self.set_color_mode)
        self.select_toggle = QtWidgets.QToolButton()
        self.select_toggle.setText("Box select")
        self.select_toggle.setCheckable(True)
        self.select_toggle.setToolTip("left-drag selects a box (right-drag always does)")
        self.select_toggle.toggled.connect(lambda on: setattr(self.view._vb, "select_mode", on))
        self.selection_label = QtWidgets.QLabel(self.view.selection_summary())
        self.selection_label.setObjectName("SelectionLabel")
        self.highlight_label = QtWidgets.QLabel("")
        self.map_label = QtWidgets.QLabel("")
        self.map_label.setObjectName("MapFreshness")
        # a fixed width: its text changes with every result, and a label that resizes
        # re-lays out (and repaints) the window each time
        self.map_label.setMinimumWidth(
            self.fontMetrics().horizontalAdvance("map of step 00000 — 100% refreshed") + 8)
        self.map_label.setToolTip("after a step its batch moves at once; the other samples "
                                  "are refreshed to the new model in the background")
        self.refresh_button = QtWidgets.QToolButton()
        self.refresh_button.setText("Refresh map")
        self.refresh_button.setToolTip("the exact map and full-set accuracy of the current "
                                       "model, now")
        self.refresh_button.setEnabled(False)
        self.refresh_button.clicked.connect(lambda: self.submit(RefreshRequest()))
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 0)
        bar.addWidget(QtWidgets.QLabel("Colour by"))
        bar.addWidget(self.colour_combo)
        bar.addWidget(self.select_toggle)
        bar.addWidget(self.selection_label, 1)
        bar.addWidget(self.highlight_label)
        bar.addWidget(self.map_label)
        bar.addWidget(self.refresh_button)
        self.replay_bar = ReplayBar()
        self.replay_bar.hide()
        self.replay_bar.frame_changed.connect(self.show_frame)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.replay_bar)
        self.setCentralWidget(central)
        self.view.selection_changed.connect(
            lambda _sel: self.selection_label.setText(self.view.selection_summary()))
        self.view.highlight_changed.connect(self.highlight_label.setText)

    def _build_docks(self) -> None:
        self.adapt_panel = AdaptPanel()
        self.kmeans_panel = KMeansPanel()
        self.sinkhorn_panel = SinkhornPanel()
        controls = QtWidgets.QWidget()
        controls.setObjectName("Controls")
        col = QtWidgets.QVBoxLayout(controls)
        for panel in (self.adapt_panel, self.kmeans_panel, self.sinkhorn_panel):
            col.addWidget(panel)
        col.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(controls)
        # never narrower than its form: a restored layout must not squash the controls
        scroll.setMinimumWidth(controls.sizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 4)
        self.controls_dock = QtWidgets.QDockWidget("Controls", self)
        self.controls_dock.setObjectName("ControlsDock")
        self.controls_dock.setWidget(scroll)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, self.controls_dock)
        self.numbers = NumbersPanel()
        self.numbers.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 22)
        self.numbers_dock = QtWidgets.QDockWidget("Numbers", self)
        self.numbers_dock.setObjectName("NumbersDock")
        self.numbers_dock.setWidget(self.numbers)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.numbers_dock)
        self.adapt_panel.step_requested.connect(self.submit)
        self.adapt_panel.pause_requested.connect(self.cancel_job)
        self.adapt_panel.reset_requested.connect(lambda: self.submit(ResetRequest()))
        self.kmeans_panel.kmeans_requested.connect(self.submit)
        self.sinkhorn_panel.sinkhorn_requested.connect(self.submit)

    def _build_status(self) -> None:
        self.status_label = QtWidgets.QLabel("starting…")
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setMaximumWidth(self.fontMetrics().horizontalAdvance("M") * 16)
        # keep its room when hidden: showing/hiding it must not re-lay out (and repaint) the
        # whole window at the start and end of every job (measured: 100-180 ms stalls)
        policy = self.progress_bar.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress_bar.setSizePolicy(policy)
        self.progress_bar.setVisible(False)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_job)
        status = self.statusBar()
        status.addWidget(self.status_label, 1)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)

    def _connect_worker(self) -> None:
        w = self.worker
        w.result.connect(self._on_result)
        w.progress.connect(self._on_progress)
        w.message.connect(self.status_label.setText)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(lambda _job: self.status_label.setText("cancelled"))
        w.busy.connect(self._on_busy)

    # ------------------------------------------------------------------ requests
    def submit(self, request) -> int:
        """Send a request to the worker (a newer one cancels the running one)."""
        if isinstance(request, OpenRequest):
            self.open_request = request
        self._job = self.worker.submit(request)
        if isinstance(request, OpenRequest):
            self._open_jobs[self._job] = request
        return self._job

    def open_demo(self) -> int:
        return self.submit(OpenRequest())

    def cancel_job(self) -> None:
        self.worker.cancel()
        self.status_label.setText("cancelling…")

    # ------------------------------------------------------------------ results
    def _on_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        if busy:
            self.progress_bar.setRange(0, 0)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)

    def _on_result(self, res) -> None:
        if res.state is None:
            self._on_call_result(res)
            return
        if res.job < self._job and res.kind != "open":
            return  # a newer request is on its way
        if res.kind == "refresh" and self.snapshot is not None:
            return  # a background refresh must not take a shown snapshot away
        self._leave_snapshot_mode()
        self.state, self.history = res.state, res.history
        self.source_accuracy = res.source_accuracy
        self.view.thumbnail = res.thumbnail
        self.view.set_state(res.state, res.class_names or None, animate=res.kind != "open")
        self.map_label.setText(map_freshness(res.state))
        self.refresh_button.setEnabled(res.state.metrics.get("refreshed", 1.0) < 1.0)
        # the charts redraw in a later turn of the event loop, so that no single turn
        # carries both the map and the charts (keeps the window's latency low)
        if not getattr(res, "followed", False):  # else the step's probe result draws them
            self._pending_numbers = (res.state, res.history, res.source_accuracy)
            QtCore.QTimer.singleShot(0, self._flush_numbers)
        if res.kind == "sinkhorn":
            self.set_color_mode("assignment")
            target = self.sinkhorn_panel.target.currentText()
            n = {"prototypes": len(res.state.prototypes), "proxies": len(res.state.center_labels),
                 "centers": len(res.state.centers)}[target]
            self.sinkhorn_panel.show_balance(res.state.assignment, n)
        if res.kind == "open":
            self.opened_request = self._open_jobs.get(res.job, self.open_request)
            self._open_jobs = {job: req for job, req in self._open_jobs.items() if job >= res.job}
            self.setWindowTitle(f"protoview — {res.state.attrs.get('dataset', '') or 'session'}")
            self.add_recent(self.open_request.checkpoint if self.open_request else "")
        step = res.history[-1].step if res.history else 0
        self.status_label.setText(
            f"{res.kind}: {res.state.summary()} · step {step} · {res.seconds:.2f} s")

    def _flush_numbers(self) -> None:
        pending, self._pending_numbers = self._pending_numbers, None
        if pending is not None:
            self.numbers.update_numbers(*pending)

    _pending_numbers = None

    def _on_failed(self, job: int, error: BaseException, tb: str) -> None:
        """The one error handler: status bar + a (non-blocking) dialog; re-raise in tests."""
        failed_open = self._open_jobs.pop(job, None)
        if failed_open is not None and failed_open is self.open_request:
            # the next open (say, a dropped dataset) starts from the session that is open,
            # not from the file that just failed
            self.open_request = self.opened_request
        if (isinstance(error, UntrustedCodeError) and failed_open is not None
                and not failed_open.trust):
            self.last_error = str(error)
            self.status_label.setText(f"not opened — {error.where} holds pickled code")
            self._ask_trust(failed_open, error)
            return
        if isinstance(error, ProtoviewError):
            text = str(error)
        else:
            text = f"internal error: {type(error).__name__}: {error}"
        self.last_error = text
        self.status_label.setText(f"error — {text}")
        self.error_box.setText(text)
        self.error_box.setDetailedText("" if isinstance(error, ProtoviewError) else tb)
        self.error_box.show()
        if self.raise_errors:
            raise error

    # ------------------------------------------------------------------ view
    def set_color_mode(self, mode: str) -> None:
        self.view.set_color_mode(mode)
        if self.colour_combo.currentText() != mode:
            self.colour_combo.setCurrentText(mode)
        act = self.actions_.get(f"colour_{mode}") if hasattr(self, "actions_") else None
        if act is not None:
            act.setChecked(True)

    def next_color_mode(self) -> str:
        i = COLOR_MODES.index(self.view.color_mode)
        mode = COLOR_MODES[(i + 1) % len(COLOR_MODES)]
        self.set_color_mode(mode)
        return mode

    def plots(self) -> list:
        n = self.numbers
        return [self.view, n.accuracy_plot, n.class_plot, n.confusion_plot, self.sinkhorn_panel.balance]

    def set_theme(self, name: str) -> None:
        self.theme_name = name
        theme.apply_theme(self, name, self.plots())
        act = self.actions_.get(f"theme_{name}")
        if act is not None:
            act.setChecked(True)

    def toggle_presentation(self, on: bool | None = None) -> bool:
        """Full screen, large fonts and glyphs, high-contrast theme (F11)."""
        on = not self.presenting if on is None or not isinstance(on, bool) else on
        if on == self.presenting:
            return on
        self.presenting = on
        self.actions_["presentation"].setChecked(on)
        font = self.font()
        if on:
            self._normal_font_size = font.pointSizeF()
            self._normal_theme = self.theme_name
            font.setPointSizeF(self._normal_font_size * 1.5)
            self.setFont(font)
            theme.apply_theme(self, "contrast", self.plots())
            self.view.set_glyph_scale(1.8)
            # the audience sees the map and the numbers; Step/Run/Reset stay on the keyboard
            self._controls_were_visible = self.controls_dock.isVisible()
            self.controls_dock.hide()
            self.showFullScreen()
        else:
            font.setPointSizeF(self._normal_font_size)
            self.setFont(font)
            self.view.set_glyph_scale(1.0)
            self.set_theme(self._normal_theme)
            self.controls_dock.setVisible(getattr(self, "_controls_were_visible", True))
            self.showNormal()
        return on

    presenting = False

    def show_frame(self, index: int) -> None:
        """Show frame ``index`` of the open snapshot's timeline."""
        if self.snapshot is None or not self.snapshot.timeline:
            return
        frame = self.snapshot.timeline[index]
        state = frame_state(self.snapshot_base, frame)
        self.view.set_state(state, animate=True)
        step = int(frame.get("step", index))
        self.numbers.update_numbers(state, [h for h in self.history if h.step <= step],
                                    self.source_accuracy)

    def show_shortcuts(self) -> QtWidgets.QMessageBox:
        box = QtWidgets.QMessageBox(self)
        box.setWindowTitle("Shortcuts")
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.setText(_menus.shortcuts_html())
        box.show()
        self.shortcuts_box = box
        return box

    def show_about(self) -> None:
        from protoview import __version__

        QtWidgets.QMessageBox.about(self, "About protoview", f"protoview {__version__}<br>"
                                    "Watch a classifier's representation move.")

    # ------------------------------------------------------------------ settings / close
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        dock_state = s.value("window_state")
        if dock_state is not None:
            self.restoreState(dock_state)
        self.set_theme(str(s.value("theme", "light")))
        self.refresh_recent_menu()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.presenting:
            self.toggle_presentation(False)
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("theme", self.theme_name)
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the worker and every timer (idempotent)."""
        self.view.finish_animation()
        self.replay_bar.stop()
        self.error_box.hide()
        if self.worker.isRunning():
            self.worker.stop(timeout_ms=60000)  # warm-up cannot be interrupted



