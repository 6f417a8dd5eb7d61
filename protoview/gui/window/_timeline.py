"""A timeline of checkpoints in the window (private to :mod:`protoview.gui.window`): File →
Open checkpoints… builds one on the worker (progress per checkpoint, Cancel; the open
session is left as it was on cancel or error) and shows it as the replay; the Movers tab
lists the samples that moved most between two checkpoints, rings them on the map and puts
one checkpoint beside the other (Before / after); the Tasks tab shows a class-incremental
timeline's tasks (accuracy per task, forgetting, weight norms) at the checkpoint shown."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from protoview.gui.panels import MoversPanel, TasksPanel
from protoview.gui.window._timeline_dialog import TimelineDialog
from protoview.present import timeline as present_timeline
from protoview.present.timeline import TimelineRequest


class TimelineActions(QtCore.QObject):
    """Owns the Movers panel (a tab of the numbers), the Open checkpoints dialog and the
    timeline job of ``win`` (a MainWindow; built after its worker). ``request``: the last
    timeline asked for (the dialog starts from it)."""

    def __init__(self, win) -> None:
        super().__init__(win)
        self.win = win
        self.request: TimelineRequest | None = None
        self.job = 0
        self.dialog: TimelineDialog | None = None
        self.panel = MoversPanel()
        tabs = win.numbers.tabs
        tabs.addTab(self.panel, "Movers")
        tabs.setTabVisible(tabs.indexOf(self.panel), False)
        self.tasks = TasksPanel()
        tabs.addTab(self.tasks, "Tasks")
        tabs.setTabVisible(tabs.indexOf(self.tasks), False)
        win.worker.result.connect(self._on_result)
        events = win.shown.events
        events.snapshot.connect(lambda _snap: QtCore.QTimer.singleShot(0, self._show_snapshot))
        events.thumbnail.connect(self.panel.set_thumbnail)
        events.class_names.connect(self.panel.set_class_names)
        events.frame.connect(self._frame_shown)
        self.panel.sample_chosen.connect(self.focus)
        self.panel.movers_changed.connect(win.shown.select)
        self.panel.compare_requested.connect(self.compare)

    # ------------------------------------------------------------ building
    def base_request(self) -> TimelineRequest:
        """What the dialog starts from: the last timeline, else the open session's data
        and options."""
        if self.request is not None:
            return self.request
        opened = self.win.open_request
        if opened is None:
            return TimelineRequest()
        return TimelineRequest(data=opened.data, arch=opened.arch,
                               preprocess=opened.preprocess, nb_proxy=opened.nb_proxy,
                               split=opened.split, device=opened.device)

    def choose(self) -> TimelineDialog:
        """File → Open checkpoints…: the dialog (not modal); Ok builds the timeline."""
        dialog = TimelineDialog(self.win, self.base_request())
        dialog.accepted.connect(lambda: self.build(dialog.request()))
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()
        return dialog

    def build(self, request: TimelineRequest) -> int:
        """Build the timeline of ``request`` on the worker; shown when done."""
        self.request = request
        self.win.status_label.setText(f"building {request.describe()}…")
        self.job = self.win.worker.submit_call(
            "timeline", lambda _session, detail, cancel: present_timeline.build(
                request, detail, cancel), reports=True)
        return self.job

    def _on_result(self, update) -> None:
        if update.kind != "timeline" or update.job != self.job or self.win.closing:
            return
        built = update.payload
        names = built.names
        self.win.show_snapshot(
            built.snapshot, title=f"protoview — timeline of {len(names)} checkpoints",
            class_names=built.class_names, thumbnail=built.thumbnail)
        state = self.win.shown.state
        data, panel = built.data, self.win.data_panel
        if data is not None:  # its images can be previewed (not opened again from here)
            panel.show_data(data.description, data.preprocess, data.preprocess_source,
                            built.request.preprocess, data.preview, state.num_samples)
            panel.preprocess.setEnabled(False)
            panel.apply_button.setEnabled(False)
        note = f" · {built.notes[0]}" if built.notes else ""
        self.win.status_label.setText(
            f"timeline of {len(names)} checkpoints ({names[0]} … {names[-1]}) over "
            f"{built.request.data}: {state.summary()}{note}")

    # ------------------------------------------------------------ showing
    def _show_snapshot(self) -> None:
        """A snapshot (or the live session) is shown: the Movers tab for a timeline."""
        shown, tabs = self.win.shown, self.win.numbers.tabs
        timeline = present_timeline.is_timeline(shown.snapshot)
        tabs.setTabVisible(tabs.indexOf(self.panel), timeline)
        # a timeline's checkpoints hold no Sinkhorn plan: its Balance tab would stay empty
        # and crowd the Movers and Tasks tabs behind the tab bar's arrows
        balance = tabs.indexOf(self.win.numbers.balance_tab)
        tabs.setTabVisible(balance, not timeline)
        if timeline and tabs.currentIndex() == balance:
            tabs.setCurrentIndex(0)
        if shown.snapshot is not self.tasks.snapshot:
            has_tasks = self.tasks.set_timeline(shown.snapshot if timeline else None,
                                                shown.class_names)
            tabs.setTabVisible(tabs.indexOf(self.tasks), has_tasks)
            if not has_tasks and tabs.currentWidget() is self.tasks:
                tabs.setCurrentIndex(0)
        if not timeline:
            if tabs.currentWidget() is self.panel:
                tabs.setCurrentIndex(0)
            for widget in (self.win.data_panel.preprocess, self.win.data_panel.apply_button):
                widget.setEnabled(True)  # as a timeline built here left them
        if timeline is (self.panel.snapshot is not None) and shown.snapshot is self.panel.snapshot:
            return
        if (not timeline and self.panel.ring.isChecked()
                and np.array_equal(shown.selection, np.sort(self.panel.indices()))):
            shown.select([])  # the movers' rings go with their timeline
        self.panel.set_timeline(shown.snapshot if timeline else None, shown.class_names,
                                shown.thumbnail)
        if timeline:  # a timeline opens on its movers
            tabs.setCurrentWidget(self.panel)

    def _frame_shown(self, frame) -> None:
        snap = self.win.shown.snapshot
        if snap is not None and snap is self.tasks.snapshot:
            self.tasks.show_frame(frame)
        if snap is None or snap is not self.panel.snapshot:
            return
        self.panel.show_frame(len(snap.timeline) - 1 if frame is None else int(frame))

    def focus(self, index: int) -> None:
        """A mover clicked: marked and centred on the map (its neighbours drawn), the list
        kept in front for the next one."""
        self.win.focus_sample(index, center=True)
        self.win.numbers.tabs.setCurrentWidget(self.panel)

    def compare(self, a: int, b: int) -> None:
        """Before / after between checkpoints ``a`` and ``b`` (frame indices): B on the
        replay and the map, A's map beside it."""
        win = self.win
        if win.shown.snapshot is None:
            return
        self.panel.follow.setChecked(False)  # a fixed pair: the replay must not move A
        self.panel.choose(a, b)
        win.replay_bar.stop()
        if win.replay_bar.slider.value() != b:
            win.replay_bar.slider.setValue(b)  # shows frame b
        elif win.shown.frame != b:
            win.show_frame(b)
        win.shown.show_before_frame(a)
        win.toggle_compare(True)
