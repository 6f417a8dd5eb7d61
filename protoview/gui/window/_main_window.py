"""MainWindow: the map in the middle, controls and numbers in docks, progress in the
status bar. All computing goes through the one :class:`~protoview.gui._qt.ComputeWorker`."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.core.session import ForgetRunsRequest, OpenRequest
from protoview.errors import ProtoviewError, UntrustedCodeError
from protoview.gui import _qt
from protoview.gui._qt import (
    ComputeWorker,
    ResetRequest,
    SingleKeyShortcuts,
    default_open,
    default_warm_up,
)
from protoview.gui.map import EmbeddingView, map_freshness
from protoview.gui.window._before_after import BeforeAfter
from protoview.gui.window._docks import ControlsDock, NumbersDock
from protoview.gui.window._export import caption_text
from protoview.gui.window._files import FileActions
from protoview.gui.window._map_bar import MapBar
from protoview.gui.window._menus import WindowMenus
from protoview.gui.window._presentation import Presentation
from protoview.gui.window._replay import ReplayBar
from protoview.gui.window._trust import TrustQuestion
from protoview.gui.window._view_actions import ViewActions


class MainWindow(FileActions, ViewActions, QtWidgets.QMainWindow):
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
        self.runs: list = []  # every run of the session (RunRecords), the current one too
        self.current_run = 0  # its number (0: none)
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
        self.setWindowIcon(_qt.icon())
        self.setAcceptDrops(True)
        self._build_central()
        self._build_docks()
        self._build_status()
        self.menus = WindowMenus(self)
        self.recent_menu = self.menus.recent_menu
        self.presentation = Presentation(self)
        self.error_box = QtWidgets.QMessageBox(self)
        self.error_box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        self.error_box.setWindowTitle("protoview")
        self.trust = TrustQuestion(self)
        self.trust_box, self.trust_button = self.trust.box, self.trust.button
        self.trust.trusted.connect(self._open_trusted)
        self.single_keys = SingleKeyShortcuts(self)
        QtWidgets.QApplication.instance().installEventFilter(self.single_keys)
        self.worker = ComputeWorker(open_session=open_session, warm_up=warm_up)
        self._connect_worker()
        self._restore_settings()
        self.worker.start()

    # ------------------------------------------------------------------ building
    def _open_trusted(self, request: OpenRequest) -> None:
        self.status_label.setText("opening the trusted checkpoint…")
        self.submit(request)

    def _build_central(self) -> None:
        self.view = EmbeddingView()
        bar = self.map_bar = MapBar(self)
        bar.colour_chosen.connect(self.set_color_mode)
        bar.select_mode_chosen.connect(self.set_select_mode)
        bar.go_to_requested.connect(self.go_to_typed_sample)
        bar.refresh_requested.connect(self.refresh_map)
        bar.versus.chosen.connect(self._show_versus)
        self.versus = bar.versus
        # the bar's widgets the window updates (and tests read)
        self.colour_combo, self.versus_combo = bar.colour_combo, bar.versus.combo
        self.box_button, self.lasso_button = bar.box_button, bar.lasso_button
        self.goto_edit, self.map_label = bar.goto_edit, bar.map_label
        self.refresh_button = bar.refresh_button
        self.selection_label, self.highlight_label = bar.selection_label, bar.highlight_label
        self.selection_label.setText(self.view.selection_summary())
        self.compare = BeforeAfter(self)
        self.replay_bar = ReplayBar()
        self.replay_bar.hide()
        self.replay_bar.frame_changed.connect(self.show_frame)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar.rows)
        layout.addWidget(self.compare.splitter, 1)
        layout.addWidget(self.replay_bar)
        self.setCentralWidget(central)
        self.view.selection_changed.connect(
            lambda _sel: self.selection_label.setText(self.view.selection_summary()))
        self.view.highlight_changed.connect(self.highlight_label.setText)
        self.view.focus_changed.connect(self._on_focus)
        self.source_state = None  # the source model's state (the "before" of the compare)

    def _build_docks(self) -> None:
        self.controls_dock = ControlsDock(self)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, self.controls_dock)
        self.numbers_dock = NumbersDock(self)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.numbers_dock)
        # the panels the window feeds and listens to (tests read them too)
        dock = self.controls_dock
        self.data_panel, self.adapt_panel = dock.data_panel, dock.adapt_panel
        self.kmeans_panel, self.sinkhorn_panel = dock.kmeans_panel, dock.sinkhorn_panel
        self.numbers, self.neighbors = self.numbers_dock.numbers, self.numbers_dock.neighbors
        self.data_panel.preprocess_requested.connect(lambda text: self.open_files(preprocess=text))
        self.neighbors.sample_chosen.connect(lambda i: self.focus_sample(i, center=True))
        self.neighbors.settings_changed.connect(
            lambda: self._on_focus(-1 if self.view.focus_index is None else self.view.focus_index))
        self.adapt_panel.step_requested.connect(self.submit)
        self.adapt_panel.pause_requested.connect(self.cancel_job)
        self.adapt_panel.reset_requested.connect(lambda: self.submit(ResetRequest()))
        self.adapt_panel.forget_runs_requested.connect(lambda: self.submit(ForgetRunsRequest()))
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
        if self.presenting:  # an idle Cancel must not be the brightest thing on screen
            self.cancel_button.setVisible(busy)
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
        if res.kind in ("open", "reset"):
            self.view.focus_sample(None)  # a new start: nothing marked
            self.view.set_selection([])
        self.state, self.history = res.state, res.history
        self.runs, self.current_run = list(res.runs), res.current_run
        self.source_accuracy = res.source_accuracy
        self.view.thumbnail = res.thumbnail
        if res.kind == "sinkhorn":
            target = self.sinkhorn_panel.target.currentText()
            self.view.set_assignment_target("prototypes" if target == "prototypes" else "classes")
        elif res.kind == "kmeans":
            self.view.set_assignment_target("prototypes")
        self.view.set_state(res.state, res.class_names or None, animate=res.kind != "open")
        self.fit_colour_modes(res.state)
        self.numbers.set_class_names(self.view.class_names)
        if res.kind in ("open", "reset"):
            self.source_state = res.state
            self.numbers.set_baseline(res.state)
            self.compare.set_source(res.state, caption_text(res.state))
        if res.kind == "open":
            self.adapt_panel.stream.set_domains(res.domain_names)
        self.versus.update_choices(
            self.runs, self.current_run,
            None if self.source_state is None else self.source_state.predictions)
        self.compare.set_after_title(caption_text(res.state, res.source_accuracy))
        self.compare.sync_style()
        if self.view.focus_index is not None:  # the features moved: new neighbours
            self._on_focus(self.view.focus_index)
        self.map_label.setText(map_freshness(res.state))
        self.refresh_button.setEnabled(res.state.metrics.get("refreshed", 1.0) < 1.0)
        # the charts redraw in a later turn of the event loop, so that no single turn
        # carries both the map and the charts (keeps the window's latency low)
        if not getattr(res, "followed", False):  # else the step's probe result draws them
            self._pending_numbers = (res.state, res.history, res.source_accuracy, self.runs,
                                     self.current_run)
            QtCore.QTimer.singleShot(0, self._flush_numbers)
        if res.kind == "sinkhorn":
            self.set_color_mode("assignment")
            target = self.sinkhorn_panel.target.currentText()
            n = {"prototypes": len(res.state.prototypes), "proxies": len(res.state.center_labels),
                 "centers": len(res.state.centers)}[target]
            self.numbers.show_balance(res.state.assignment, n, target)
            self.numbers.tabs.setCurrentWidget(self.numbers.balance_tab)
        if res.kind == "open":
            self.opened_request = self._open_jobs.get(res.job, self.open_request)
            self._open_jobs = {job: req for job, req in self._open_jobs.items() if job >= res.job}
            self.setWindowTitle(f"protoview — {res.state.attrs.get('dataset', '') or 'session'}")
            self.data_panel.show_data(
                str(res.state.attrs.get("dataset", "")), res.preprocess, res.preprocess_source,
                self.opened_request.preprocess if self.opened_request else None, res.preview,
                len(res.state.labels))
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
            self.trust.ask(failed_open, error)
            return
        needs = tuple(getattr(error, "needs", ()) or ())
        if failed_open is not None and needs and isinstance(error, ProtoviewError):
            # a question, not only an error: ask for the options that can fix it
            self.last_error = str(error)
            self.status_label.setText(f"not opened — {error}")
            self.choose_open(str(error), needs, base=failed_open)
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
        if self.compare.on:
            self.toggle_compare(False)
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("theme", self.theme_name)
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the worker and every timer (idempotent)."""
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.single_keys)
        for view in self.map_views():
            view.finish_animation()
            view.hover_card.hide()
        self.replay_bar.stop()
        self.error_box.hide()
        if self.worker.isRunning():
            self.worker.stop(timeout_ms=60000)  # warm-up cannot be interrupted



