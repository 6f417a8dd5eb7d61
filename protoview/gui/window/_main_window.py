"""MainWindow: the map in the middle, controls and numbers in docks, progress in the
status bar. All computing goes through the one :class:`~protoview.gui._qt.ComputeWorker`;
what is shown is one :class:`~protoview.present.Shown` (``window.shown``), which the
worker's results and the user's clicks change and every widget listens to."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.errors import ProtoviewError, UntrustedCodeError
from protoview.gui import _qt
from protoview.gui._qt import ComputeWorker, SingleKeyShortcuts
from protoview.gui.map import EmbeddingView
from protoview.gui.window._before_after import BeforeAfter
from protoview.gui.window._docks import ControlsDock, NumbersDock
from protoview.gui.window._files import FileActions
from protoview.gui.window._geometry_dock import GeometryDock
from protoview.gui.window._map_bar import ElidedLabel, MapBar
from protoview.gui.window._menus import WindowMenus
from protoview.gui.window._presentation import Presentation
from protoview.gui.window._replay import ReplayBar
from protoview.gui.window._timeline import TimelineActions
from protoview.gui.window._trust import TrustQuestion
from protoview.gui.window._view_actions import ViewActions
from protoview.present import ForgetRunsRequest, OpenRequest, ResetRequest, Shown, TimeLeft, derive
from protoview.present import compute as present_compute


class MainWindow(FileActions, ViewActions, QtWidgets.QMainWindow):
    """The protoview window.

    Parameters
    ----------
    settings: where geometry, docks, theme and recent files are kept (default: the user's).
    open_session, warm_up: injected into the worker (tests pass fakes).
    raise_errors: re-raise worker errors on the main thread after showing them (tests).
    """

    def __init__(self, settings: QtCore.QSettings | None = None,
                 open_session=present_compute.open_session, warm_up=present_compute.warm_up,
                 raise_errors: bool = False) -> None:
        super().__init__()
        self.settings = settings or QtCore.QSettings("protoview", "protoview")
        self.raise_errors = raise_errors
        self.shown = Shown()  # what the window shows: the one copy
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
        self.listen_to_shown()
        self.worker = ComputeWorker(open_session=open_session, warm_up=warm_up)
        self._connect_worker()
        self.timelines = TimelineActions(self)  # File → Open checkpoints…, the Movers tab
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
        bar.versus.chosen.connect(lambda number: self.shown.choose_versus(number))
        self.versus = bar.versus
        # the bar's widgets the window updates (and tests read)
        self.colour_combo, self.versus_combo = bar.colour_combo, bar.versus.combo
        self.box_button, self.lasso_button = bar.box_button, bar.lasso_button
        self.goto_edit, self.map_label = bar.goto_edit, bar.map_label
        self.refresh_button = bar.refresh_button
        self.selection_label, self.highlight_label = bar.selection_label, bar.highlight_label
        self.selection_label.setText(self.view.selection_summary())
        self.compare = BeforeAfter(self)
        # what runs, in large type over the map: a talk's banner (presentation mode)
        self.banner = ElidedLabel("")
        self.banner.setObjectName("RunBanner")
        self.banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.banner.setVisible(False)
        self.replay_bar = ReplayBar()
        self.replay_bar.hide()
        self.replay_bar.frame_changed.connect(self.show_frame)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar.rows)
        layout.addWidget(self.banner)
        layout.addWidget(self.compare.splitter, 1)
        layout.addWidget(self.replay_bar)
        self.setCentralWidget(central)
        # a selection or a mark made on the map is the window's (the "before" map's too:
        # BeforeAfter passes them on)
        self.view.selection_changed.connect(self.shown.select)
        self.view.focus_changed.connect(lambda i: self.shown.mark(i if i >= 0 else None))
        self.view.highlight_changed.connect(self.highlight_label.setText)

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
        self.geometry_dock = GeometryDock(self)  # Numbers → Geometry, a tab beside the numbers
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.geometry_dock)
        self.tabifyDockWidget(self.numbers_dock, self.geometry_dock)
        self.numbers_dock.raise_()
        self.geometry = self.geometry_dock.panel
        self.data_panel.preprocess_requested.connect(lambda text: self.open_files(preprocess=text))
        self.neighbors.sample_chosen.connect(lambda i: self.focus_sample(i, center=True))
        self.neighbors.settings_changed.connect(lambda: self.show_marked(self.shown.marked))
        self.adapt_panel.step_requested.connect(self.submit)
        self.adapt_panel.pause_requested.connect(self.cancel_job)
        self.adapt_panel.reset_requested.connect(lambda: self.submit(ResetRequest()))
        self.adapt_panel.forget_runs_requested.connect(lambda: self.submit(ForgetRunsRequest()))
        self.kmeans_panel.kmeans_requested.connect(self.submit)
        self.sinkhorn_panel.sinkhorn_requested.connect(self.submit)

    def _build_status(self) -> None:
        self.status_label = QtWidgets.QLabel("starting…")
        self.progress_bar = QtWidgets.QProgressBar()
        # a fixed width: its text changes with every phase, and a bar that resizes re-lays
        # out the status bar each time
        self.progress_bar.setFixedWidth(self.fontMetrics().horizontalAdvance("M") * 40)
        self.progress_bar.setTextVisible(True)
        # keep its room when hidden: showing/hiding it must not re-lay out (and repaint) the
        # whole window at the start and end of every job (measured: 100-180 ms stalls)
        policy = self.progress_bar.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress_bar.setSizePolicy(policy)
        self.progress_bar.setVisible(False)
        self.time_left = TimeLeft()  # the bar's "~12 s left"
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
        self.status_label.setText(derive.request_text(request))  # never the last job's line
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
            self.progress_bar.setFormat("")
            self.time_left.reset()

    def _on_progress(self, done: int, total: int, what: str = "") -> None:
        """The bar says how far and what is being done ("step 3: probe: 512 of 1,024
        samples"), and the time left once the pace is known; ``total`` 0: how far is not
        known (it moves, its text says what)."""
        self.progress_bar.setRange(0, max(total, 0))
        self.progress_bar.setValue(done)
        left = self.time_left.update(done, total, what)
        tail = "" if total <= 0 else " · ".join(p for p in ("%p%", left) if p)
        # one line: the phase is shortened to leave the percentage and the time left whole
        metrics = self.progress_bar.fontMetrics()
        room = self.progress_bar.width() - 12 - metrics.horizontalAdvance(
            tail.replace("%p%", "100%") + (" · " if tail and what else ""))
        short = metrics.elidedText(what, QtCore.Qt.TextElideMode.ElideRight, max(room, 0))
        self.progress_bar.setFormat(" · ".join(p for p in (short, tail) if p))
        self.progress_bar.setToolTip(" · ".join(p for p in (what, left) if p))

    def _on_result(self, update) -> None:
        """A worker's Update: a file job's answer, or what to show (``shown.apply``)."""
        if self._closing:
            return
        if update.state is None:
            self._on_call_result(update)
            return
        if update.job < self._job and update.kind != "open":
            return  # a newer request is on its way
        if update.kind == "open":
            self.opened_request = self._open_jobs.get(update.job, self.open_request)
            self._open_jobs = {j: r for j, r in self._open_jobs.items() if j >= update.job}
        self.animate = update.kind != "open"
        self.shown.apply(update)

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

    # ------------------------------------------------------------------ what is shown
    @property
    def state(self):
        """The map shown (``shown.state``)."""
        return self.shown.state

    @property
    def history(self) -> list:
        return self.shown.history

    @property
    def runs(self) -> list:
        return self.shown.runs

    @property
    def current_run(self) -> int:
        return self.shown.current_run

    @property
    def source_accuracy(self) -> float:
        return self.shown.source_accuracy

    @property
    def source_state(self):
        """The source model's map (the "before")."""
        return self.shown.source_state

    @property
    def snapshot(self):
        return self.shown.snapshot

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
        """Stop the worker and every timer (idempotent); results still on their way are
        not shown (a map drawn after closing would start its glide again)."""
        self._closing = True
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.single_keys)
        if self.worker.isRunning():
            self.worker.stop(timeout_ms=60000)  # warm-up cannot be interrupted
        for view in self.map_views():
            view.finish_animation()
            view.hover_card.hide()
        self.replay_bar.stop()
        self.error_box.hide()

    _closing = False

    @property
    def closing(self) -> bool:
        """The window is closing (results still on their way are not shown)."""
        return self._closing



