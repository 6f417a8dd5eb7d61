"""What the window shows and does to its map(s) (private to :mod:`protoview.gui.window`,
mixed into the MainWindow): it listens to the window's :class:`~protoview.present.Shown`
and draws each change (the map, the colour mode, the selection, the marked sample and its
neighbours, the before / after, the numbers), and turns the user's choices into changes
of ``shown``. Also themes, presentation mode and the replay's frames."""

from __future__ import annotations

from PySide6 import QtCore

from protoview.gui._qt import apply_theme
from protoview.gui.map import COLOR_MODES, EmbeddingView
from protoview.present import RefreshRequest, derive

#: The kinds of result whose map is drawn anew (it holds no Sinkhorn plan any more).
_NEW_MAP = ("open", "reset", "step", "refresh", "kmeans")


class ViewActions:
    """Mixed into MainWindow (uses its shown model, views, map bar, menus, numbers,
    neighbours, status label and presentation)."""

    _colour_modes_offered = COLOR_MODES  # what the colour box offers now
    animate = True  # whether the next map glides from the one shown (not after an open)
    _numbers_pending = False
    _last_status = ""  # the last result's line (it comes back when a mark is cleared)

    def map_views(self) -> list[EmbeddingView]:
        return [self.view, self.compare.view]

    # ------------------------------------------------------------------ listening
    def listen_to_shown(self) -> None:
        """Draw every change of ``self.shown`` (each field has its event)."""
        events = self.shown.events
        events.class_names.connect(self.numbers.set_class_names)
        events.thumbnail.connect(self._show_thumbnail)
        events.source_state.connect(lambda _s: self._show_source())
        events.source_predictions.connect(lambda _p: self._show_source())
        for name in ("runs", "current_run", "source_predictions", "versus"):
            getattr(events, name).connect(lambda _v: self._show_versus())
        events.snapshot.connect(self._show_snapshot_mode)
        events.state.connect(self._draw_state)
        events.colour_mode.connect(self._show_colour_mode)
        events.selection.connect(self._show_selection)
        events.marked.connect(self.show_marked)
        events.history.connect(self._show_costs)
        events.updated.connect(self._after_update)

    def _show_costs(self, history) -> None:
        """The last step's probe against the step, beside the probe control."""
        row = history[-1] if history else None
        self.adapt_panel.show_costs(row.seconds if row else 0.0,
                                    row.probe_seconds if row else float("nan"))

    def _show_thumbnail(self, thumbnail) -> None:
        for view in self.map_views():
            view.thumbnail = thumbnail

    def _draw_state(self, state) -> None:
        if state is None:
            return
        shown = self.shown
        self.view.set_state(state, list(shown.class_names), animate=self.animate)
        self._fit_colour_modes()
        # the "before" title has the unadapted accuracy: the "after" one need not repeat it
        self.compare.set_after_title(derive.caption_text(state))
        self.banner.setText(derive.run_title(state))
        self.map_label.setText(shown.freshness())
        self.refresh_button.setEnabled(shown.refresh_possible())
        self.selection_label.setText(self.view.selection_summary())
        if shown.marked is not None:  # the features moved: new neighbours, listed in
            self.show_marked(shown.marked, front=False)  # place (the tab in front stays)

    def _show_source(self) -> None:
        shown = self.shown
        self.numbers.set_baseline(shown.baseline_state())
        source = shown.source_state
        if source is None:
            self.compare.set_source(None, "")
        elif derive.checkpoint_label(source):  # a timeline: the checkpoint it is
            self.compare.set_source(source, derive.caption_text(source))
        elif shown.snapshot is not None:
            self.compare.set_source(source, f"first recorded frame, {derive.caption_text(source)}")
        else:
            self.compare.set_source(source, derive.caption_text(source))

    def _show_versus(self) -> None:
        """The runs fixed/broken can compare with, the one chosen, on every map."""
        shown = self.shown
        self.versus.show_choices(shown.versus_choices(), shown.versus)
        predictions_name = shown.versus_predictions()
        for view in self.map_views():
            view.set_versus(predictions_name[1], predictions_name[0])

    def _show_snapshot_mode(self, snapshot) -> None:
        """A snapshot shown: its replay slider, the live controls off (and back on)."""
        live = snapshot is None
        for panel in (self.adapt_panel, self.kmeans_panel, self.sinkhorn_panel):
            panel.setEnabled(live)
        if live:
            self.data_panel.setEnabled(True)
            self.replay_bar.stop()
            self.replay_bar.hide()
        else:
            self.replay_bar.set_frames(self.shown.frame_steps(), self.shown.frame_names())
            self.numbers_now()  # a live result's charts must not come after these

    def _after_update(self, update) -> None:
        """What depends on the kind of a worker's result (its request says what it was)."""
        if update.kind == "open":
            self._show_opened(update)
        if update.kind == "sinkhorn":  # the target of the job, not of the combo box now
            self.shown.set_colour_mode("assignment")
            self.show_balance(update.request.target)
            self.numbers.tabs.setCurrentWidget(self.numbers.balance_tab)
        elif update.kind in _NEW_MAP:  # a new map holds no Sinkhorn plan: none is shown
            self.show_balance(None)
        # the charts redraw in a later turn of the event loop, so that no single turn
        # carries both the map and the charts (keeps the window's latency low); a result
        # followed by its step's next one leaves them to that one
        if not update.followed:
            self._numbers_pending = True
            QtCore.QTimer.singleShot(0, self._flush_numbers)
        self._last_status = self.shown.status(update.kind, update.seconds)
        self.status_label.setText(self._last_status)

    def show_balance(self, target: str | None) -> None:
        """The balance chart of the map's Sinkhorn assignment to ``target`` (None: the map
        holds none, the chart says so)."""
        state = self.shown.state
        if target is None or state is None or state.assignment is None:
            self.numbers.show_balance(None, 0)
            return
        n = {"prototypes": len(state.prototypes), "proxies": len(state.center_labels),
             "centers": len(state.centers)}[target]
        self.numbers.show_balance(state.assignment, n, target)

    def _show_opened(self, update) -> None:
        data = update.data
        self.setWindowTitle(f"protoview — {data.description or 'session'}")
        self.adapt_panel.stream.set_domains(data.domain_names, data.domain_shifts,
                                            data.domain_severities)
        self.adapt_panel.set_order(data.shuffled, data.order_note, data.order_fixed)
        self.adapt_panel.set_adaptable(data.not_adaptable)
        self.data_panel.show_data(
            data.description, data.preprocess, data.preprocess_source,
            self.opened_request.preprocess if self.opened_request else None, data.preview,
            self.shown.state.num_samples)
        self.add_recent(self.open_request.checkpoint if self.open_request else "")

    @property
    def numbers_pending(self) -> bool:
        """The charts wait for a later turn of the event loop to show the latest result."""
        return self._numbers_pending

    def _flush_numbers(self) -> None:
        if self._numbers_pending:
            self.numbers_now()

    def numbers_now(self) -> None:
        """Draw the charts and the numbers line of what is shown, now."""
        self._numbers_pending = False
        shown = self.shown
        self.numbers.update_numbers(shown.state, shown.history, shown.source_accuracy,
                                    shown.runs, shown.current_run)

    # ------------------------------------------------------------------ colour modes
    def set_color_mode(self, mode: str) -> None:
        self.shown.set_colour_mode(mode)

    def _show_colour_mode(self, mode: str) -> None:
        self.versus.show_for_mode(mode)
        for view in self.map_views():
            view.set_color_mode(mode)
        if self.colour_combo.currentText() != mode:
            self.colour_combo.setCurrentText(mode)
        self.menus.check(f"colour_{mode}")
        state = self.shown.state
        if mode == "assignment" and state is not None and state.assignment is None:
            self.status_label.setText("no assignment yet: run k-means or Sinkhorn to colour "
                                      "the samples by group")

    def next_color_mode(self) -> str:
        modes = list(self.available_colour_modes())  # in COLOR_MODES' order
        i = modes.index(self.shown.colour_mode) if self.shown.colour_mode in modes else -1
        mode = modes[(i + 1) % len(modes)]
        self.set_color_mode(mode)
        return mode

    def available_colour_modes(self) -> tuple[str, ...]:
        """Colour modes that mean something for the state shown (label and correctness
        need labels: unlabelled data offers prediction, assignment and entropy)."""
        return derive.available_colour_modes(self.shown.state)

    def _fit_colour_modes(self) -> None:
        """Offer only the colour modes the state supports."""
        available = self.available_colour_modes()
        if available == self._colour_modes_offered:
            return  # nothing changed (the common case: every result of a session)
        self._colour_modes_offered = available
        model = self.colour_combo.model()
        for row, mode in enumerate(COLOR_MODES):
            model.item(row).setEnabled(mode in available)
            self.menus.enable(f"colour_{mode}", mode in available)

    # ------------------------------------------------------------------ the map's tools
    def refresh_map(self) -> None:
        """The exact map and full-set accuracy of the current model, now (Refresh map)."""
        self.submit(RefreshRequest())

    def set_select_mode(self, mode: str | None) -> None:
        """Left-drag on the map: ``box``, ``lasso`` or None (pan)."""
        for view in self.map_views():
            view.set_select_mode(mode)
        self.map_bar.show_select_mode(mode)

    def set_layer_visible(self, name: str, on: bool) -> None:
        """Show or hide a layer (samples, centers, proxies, prototypes) on every map."""
        for view in self.map_views():
            view.set_layer_visible(name, on)

    def set_show_names(self, on: bool) -> None:
        for view in self.map_views():
            view.set_show_names(on)
        self.menus.check("names", on)

    def toggle_compare(self, on: bool | None = None) -> bool:
        """Before / after: the source model's map beside the adapted one (B)."""
        on = self.compare.toggle(None if not isinstance(on, bool) else on)
        self.menus.check("compare", on)
        return on

    # ------------------------------------------------------------------ samples
    def _show_selection(self, selection) -> None:
        for view in self.map_views():
            if view.state is not None:
                view.set_selection(selection, emit=False)
        self.selection_label.setText(self.view.selection_summary())

    def focus_sample(self, index: int | None, center: bool = False) -> None:
        """Mark sample ``index`` on the map(s) and list its nearest neighbours in feature
        space (None: clear); ``center`` pans the map to it."""
        if self.shown.mark(index) and center and index is not None:
            self.view.center_on(int(index))

    def go_to_typed_sample(self) -> None:
        index = self.map_bar.typed_sample()
        if index is None or self.shown.state is None:
            return
        n = self.shown.state.num_samples
        if not 0 <= index < n:
            self.status_label.setText(f"go to #: sample #{index} does not exist (0 to {n - 1})")
            return
        self.focus_sample(index, center=True)

    def ask_go_to(self) -> None:
        self.map_bar.ask_go_to()

    def show_marked(self, index: int | None, front: bool = True) -> None:
        """The marked sample on every map, its neighbours listed and drawn (None: none);
        ``front``: the Neighbours tab is brought to the front."""
        views = [v for v in self.map_views() if v.state is not None]
        if index is None or self.shown.state is None:
            for v in views:
                v.show_focus(None)
            self.neighbors.clear()
            if self.numbers.tabs.currentWidget() is self.neighbors:
                self.numbers.tabs.setCurrentIndex(0)  # no empty list left on screen
            self.map_bar.goto_edit.clear()  # nothing marked: no old number, no old card
            if self._last_status:
                self.status_label.setText(self._last_status)
            return
        nb = self.neighbors.show_neighbors(self.shown.state, index, list(self.shown.class_names),
                                           self.shown.thumbnail)
        indices = nb.indices if nb is not None else []
        for v in views:
            if v.focus_index != index:
                v.show_focus(index)
            v.set_neighbors(indices)
        if front:
            self.numbers.tabs.setCurrentWidget(self.neighbors)
        self.status_label.setText(self.view.hover_text(index).replace("<br>", " · ")
                                  .replace("<b>", "").replace("</b>", ""))

    # ------------------------------------------------------------------ looks
    def plots(self) -> list:
        tasks = self.timelines.tasks.plots() if hasattr(self, "timelines") else []
        return [*self.map_views(), *self.numbers.plots(), *self.geometry.plots(), *tasks]

    def set_theme(self, name: str) -> None:
        self.theme_name = name
        self.apply_theme(name)
        self.menus.check(f"theme_{name}")

    def apply_theme(self, name: str) -> None:
        apply_theme(self, name, self.plots())

    def toggle_presentation(self, on: bool | None = None) -> bool:
        """Full screen for a talk: large text, glyphs and names, high contrast, the menu
        bar and the controls hidden, the numbers narrow (F11)."""
        on = not self.presenting if on is None or not isinstance(on, bool) else on
        if on == self.presenting:
            return on
        self.menus.check("presentation", on)
        if on:
            self.presentation.enter()
        else:
            self.presentation.leave()
        return on

    def show_banner(self, on: bool) -> None:
        """The banner over the map naming what runs (large in presentation mode: its size
        is in the presentation's style sheet)."""
        self.banner.setVisible(on)

    @property
    def presenting(self) -> bool:
        """Whether presentation mode is on."""
        return self.presentation.on

    def show_frame(self, index: int) -> None:
        """Show frame ``index`` of the open snapshot's timeline, with its step's numbers."""
        self.animate = True
        self.shown.show_frame(index)
        self.numbers_now()
