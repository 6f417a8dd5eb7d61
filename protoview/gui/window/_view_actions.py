"""What the window does to its map(s) (private to :mod:`protoview.gui.window`, mixed into
the MainWindow): colour modes, selection mode, names, before / after, the marked sample
and its neighbours, themes, presentation mode, the replay's frames."""

from __future__ import annotations

import numpy as np

from protoview.core.session import RefreshRequest
from protoview.gui._qt import apply_theme
from protoview.gui.map import COLOR_MODES, EmbeddingView
from protoview.gui.window._export import caption_text
from protoview.gui.window._replay import frame_state

#: Colour modes that need known labels (unlabelled data falls back to prediction).
LABEL_COLOUR_MODES = ("label", "correctness", "fixed/broken")


class ViewActions:
    """Mixed into MainWindow (uses its views, map bar, menus, numbers, neighbours, status
    label and presentation)."""

    _colour_modes_offered = COLOR_MODES  # what the colour box offers now

    def map_views(self) -> list[EmbeddingView]:
        return [self.view, self.compare.view]

    def set_color_mode(self, mode: str) -> None:
        self.versus.show_for_mode(mode)
        self.view.set_color_mode(mode)
        self.compare.sync_style()
        if self.colour_combo.currentText() != mode:
            self.colour_combo.setCurrentText(mode)
        self.menus.check(f"colour_{mode}")
        if mode == "assignment" and self.state is not None and self.state.assignment is None:
            self.status_label.setText("no assignment yet: run k-means or Sinkhorn to colour "
                                      "the samples by group")

    def next_color_mode(self) -> str:
        modes = [m for m in COLOR_MODES if m in self.available_colour_modes()]
        i = modes.index(self.view.color_mode) if self.view.color_mode in modes else -1
        mode = modes[(i + 1) % len(modes)]
        self.set_color_mode(mode)
        return mode

    def available_colour_modes(self) -> tuple[str, ...]:
        """Colour modes that mean something for the state shown (label and correctness
        need labels: unlabelled data offers prediction, assignment and entropy)."""
        state = self.view.state
        if state is None or np.any(np.asarray(state.labels) >= 0):
            return COLOR_MODES
        return tuple(m for m in COLOR_MODES if m not in LABEL_COLOUR_MODES)

    def fit_colour_modes(self, state) -> None:
        """Offer only the colour modes ``state`` supports; fall back to prediction."""
        available = self.available_colour_modes()
        if available == self._colour_modes_offered and self.view.color_mode in available:
            return  # nothing changed (the common case: every result of a session)
        self._colour_modes_offered = available
        model = self.colour_combo.model()
        for row, mode in enumerate(COLOR_MODES):
            model.item(row).setEnabled(mode in available)
            self.menus.enable(f"colour_{mode}", mode in available)
        if self.view.color_mode not in available:
            self.set_color_mode("prediction")

    def refresh_map(self) -> None:
        """The exact map and full-set accuracy of the current model, now (Refresh map)."""
        self.submit(RefreshRequest())

    def set_select_mode(self, mode: str | None) -> None:
        """Left-drag on the map: ``box``, ``lasso`` or None (pan)."""
        for view in self.map_views():
            view.set_select_mode(mode)
        self.map_bar.show_select_mode(mode)

    def _show_versus(self, predictions, name: str) -> None:
        """The run the fixed/broken mode compares with, on every map."""
        for view in self.map_views():
            view.set_versus(predictions, name)

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
    def focus_sample(self, index: int | None, center: bool = False) -> None:
        """Mark sample ``index`` on the map(s) and list its nearest neighbours in feature
        space (None: clear)."""
        self.view.focus_sample(index, center=center)

    def go_to_typed_sample(self) -> None:
        index = self.map_bar.typed_sample()
        if index is None or self.state is None:
            return
        n = len(self.state.embedding)
        if not 0 <= index < n:
            self.status_label.setText(f"go to #: sample #{index} does not exist (0 to {n - 1})")
            return
        self.focus_sample(index, center=True)

    def ask_go_to(self) -> None:
        self.map_bar.ask_go_to()

    def _on_focus(self, index: int) -> None:
        views = [v for v in self.map_views() if v.state is not None]
        if index < 0 or self.view.state is None:
            for v in views:
                v.show_focus(None)
            self.neighbors.clear()
            if self.numbers.tabs.currentWidget() is self.neighbors:
                self.numbers.tabs.setCurrentIndex(0)  # no empty list left on screen
            return
        nb = self.neighbors.show_neighbors(self.view.state, index, self.view.class_names,
                                           self.view.thumbnail)
        indices = nb.indices if nb is not None else []
        for v in views:
            if v.focus_index != index:
                v.show_focus(index)
            v.set_neighbors(indices)
        self.numbers.tabs.setCurrentWidget(self.neighbors)
        self.status_label.setText(self.view.hover_text(index).replace("<br>", " · ")
                                  .replace("<b>", "").replace("</b>", ""))

    def plots(self) -> list:
        return [*self.map_views(), *self.numbers.plots()]

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
        self.compare.sync_style()
        return on

    @property
    def presenting(self) -> bool:
        """Whether presentation mode is on."""
        return self.presentation.on

    def show_frame(self, index: int) -> None:
        """Show frame ``index`` of the open snapshot's timeline."""
        if self.snapshot is None or not self.snapshot.timeline:
            return
        frame = self.snapshot.timeline[index]
        state = frame_state(self.snapshot_base, frame)
        self.view.set_state(state, animate=True)
        step = int(frame.get("step", index))
        self.numbers.update_numbers(state, [h for h in self.history if h.step <= step],
                                    self.source_accuracy, self.runs, self.current_run)
        self.compare.set_after_title(caption_text(state, self.source_accuracy))
