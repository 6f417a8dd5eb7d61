"""Before / after (private): the source model's map beside the adapted model's, in two
linked views (View → Before / after, key B).

Both views use the same colours (the same palettes, colour mode and class names) and the
same frame (the adapted map is updated from the source layout, so positions compare);
they pan and zoom together; hovering a sample in one rings it in the other; a selection
or a focused sample in one is the same in the other.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from protoview.gui.map import EmbeddingView
from protoview.gui.window._map_bar import ElidedLabel


def _titled(view: EmbeddingView, title: QtWidgets.QLabel) -> QtWidgets.QWidget:
    box = QtWidgets.QWidget()
    col = QtWidgets.QVBoxLayout(box)
    col.setContentsMargins(0, 0, 0, 0)
    col.setSpacing(0)
    title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    title.setObjectName("MapTitle")
    title.setVisible(False)
    col.addWidget(title)
    col.addWidget(view, 1)
    return box


class BeforeAfter(QtCore.QObject):
    """Owns the "before" view and links it to the window's map (``window.view``)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.view = EmbeddingView()
        self.view.setObjectName("SourceView")
        self.before_title = ElidedLabel("")  # a long title never widens its half
        self.after_title = ElidedLabel("")
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.before_box = _titled(self.view, self.before_title)
        self.before_box.setVisible(False)
        self.splitter.addWidget(self.before_box)
        self.splitter.addWidget(_titled(window.view, self.after_title))
        self.state = None  # the source model's state (open / reset)
        self.title = ""
        self.on = False
        main = window.view
        main.hovered.connect(self.view.set_peer)
        self.view.hovered.connect(main.set_peer)
        self._syncing = False
        self._drawing = False
        main.getViewBox().sigRangeChanged.connect(lambda *_: self._same_range(main, self.view))
        self.view.getViewBox().sigRangeChanged.connect(
            lambda *_: self._same_range(self.view, main))
        self.view.selection_changed.connect(self._selected_here)
        self.view.focus_changed.connect(lambda i: window.focus_sample(i if i >= 0 else None))

    def _same_range(self, source: EmbeddingView, target: EmbeddingView) -> None:
        """Pan and zoom together: the same data range in both (pyqtgraph's own axis link
        aligns views by their screen position, which shifts side-by-side views)."""
        if not self.on or self._syncing:
            return
        self._syncing = True
        try:
            (x0, x1), (y0, y1) = source.getViewBox().viewRange()
            target.getViewBox().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)
            target.follow = source.follow
        finally:
            self._syncing = False
        self._drawing = False

    def _selected_here(self, selection) -> None:
        """A selection drawn in the "before" map is the window's (not the one a new state
        clears while it is being drawn)."""
        if self.on and not self._drawing:
            self.window.shown.select(selection)

    def set_source(self, state, title: str) -> None:
        """The state shown as "before" (the source model's map)."""
        self.state, self.title = state, title
        if self.on:
            self._draw()

    def toggle(self, on: bool | None = None) -> bool:
        on = (not self.on) if on is None else bool(on)
        self.on = on
        main = self.window.view
        self.before_box.setVisible(on)
        self.before_title.setVisible(on)
        self.after_title.setVisible(on)
        if on:
            self._draw()
            self._halves()
            QtCore.QTimer.singleShot(0, self._halves)  # once the layout took the new box
            QtCore.QTimer.singleShot(120, self._halves)  # and once the views have resized
        else:
            main.set_peer(-1)
            QtCore.QTimer.singleShot(0, main.fit_view)
        return on

    def _halves(self) -> None:
        """Two equal halves, the map fitted again (each half is narrower) and shared."""
        if not self.on:
            return
        half = max(self.splitter.width() // 2, 1)
        self.splitter.setSizes([half, half])
        main = self.window.view
        main.fit_view()
        self._same_range(main, self.view)

    def _draw(self) -> None:
        main = self.window.view
        if self.state is None:
            self.before_title.setText("before: nothing to compare yet")
            return
        # its look (colour mode, layers, names, sizes, thumbnails) is set on every map view
        # by the window (map_views), as the main map's
        self.view.legend.setVisible(False)  # same colours as the legend beside it
        self._drawing = True  # a first state clears the view's selection: not the main one
        try:
            self.view.set_state(self.state, list(main.class_names), animate=False)
        finally:
            self._drawing = False
        self.view.set_selection(self.window.shown.selection, emit=False)
        self.view.show_focus(main.focus_index)
        self.view.set_neighbors(main.neighbor_indices)
        self.before_title.setText(f"before: {self.title}")

    def set_after_title(self, text: str) -> None:
        self.after_title.setText(f"after: {text}")
