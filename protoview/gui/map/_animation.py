"""The map's points gliding from one layout to the next (private to
:mod:`protoview.gui.map`): ``ANIMATION_FRAMES`` frames in ``ANIMATION_MS``, eased out."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore

from protoview.gui.map._layers import interpolate, same_shapes

ANIMATION_FRAMES = 8
ANIMATION_MS = 250


class Glide(QtCore.QObject):
    """Owns the frame timer and the frames left; hands each frame's positions (a dict of
    (M, 2) arrays by layer) to ``draw``. ``shown``: the positions drawn last."""

    def __init__(self, parent: QtCore.QObject, draw: Callable[[dict], None]) -> None:
        super().__init__(parent)
        self._draw = draw
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(ANIMATION_MS // ANIMATION_FRAMES)
        self._timer.timeout.connect(self._next_frame)
        self._frames: list[dict] = []
        self.shown: dict | None = None

    def start(self, starts: dict, targets: dict) -> None:
        """Glide from ``starts`` to ``targets`` (same shapes), the first frame at once."""
        self._frames = interpolate(starts, targets, ANIMATION_FRAMES)
        self.show(self._frames.pop(0))
        self._timer.start()

    def jump(self, targets: dict) -> None:
        """Stop gliding and show ``targets``."""
        self._timer.stop()
        self._frames = []
        self.show(targets)

    def finish(self) -> None:
        """Show the last frame now."""
        if self._frames:
            self.show(self._frames[-1])
        self._frames = []
        self._timer.stop()

    def is_active(self) -> bool:
        return self._timer.isActive()

    def show(self, pos: dict) -> None:
        self._draw(pos)
        self.shown = pos

    def current(self, targets: dict | None) -> dict | None:
        """Where the points are drawn now: the frame shown when it has the shapes of
        ``targets`` (mid-glide), else ``targets``."""
        shown = self.shown
        if shown is not None and targets is not None and same_shapes(shown, targets):
            return shown
        return targets

    def _next_frame(self) -> None:
        if not self._frames:
            self._timer.stop()
            return
        self.show(self._frames.pop(0))
        if not self._frames:
            self._timer.stop()
