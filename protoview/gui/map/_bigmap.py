"""The samples of a large map, drawn for the view's range (private to
:mod:`protoview.gui.map`).

Above the view's ``density_threshold`` the samples are never one scatter of every point.
Each time the view's range or size changes (throttled: at most one redraw per
:data:`REDRAW_MS`, none while the view stays inside what was drawn at the same zoom):

- more than :data:`~protoview.gui.map._density.VISIBLE_POINTS` samples in view: an image at
  the screen's resolution of the view and a margin around it
  (:func:`protoview.gui.map._density.render`);
- fewer: a scatter of just the samples in view and its margin, the same dots as a small
  map, with the colour mode's palette and the highlight's dimming.

Hover, the lasso and a click find single samples through a :class:`GridIndex` built once
per layout (on the first use after a step), at any zoom.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from protoview.gui.map import _density as density
from protoview.gui.map._spatial import GridIndex, finite_bounds

#: a redraw while the range changes waits at most this long (the image or dots of the
#: last redraw move and scale with the view meanwhile)
REDRAW_MS = 60
#: what is drawn covers the view and this share of its width / height on each side
MARGIN = 0.25


class BigSamples:
    """The samples of ``layers.view`` when it is ``dense``: the ``samples`` scatter (just
    the samples around the view) or the ``density`` image, never both."""

    def __init__(self, layers) -> None:
        self.layers = layers
        self.view = layers.view
        self.xy: np.ndarray | None = None
        self.bounds: tuple | None = None  # (x0, y0, x1, y1) of the finite samples
        self.codes: np.ndarray | None = None
        self.colors: np.ndarray | None = None
        self.dim: np.ndarray | None = None
        self.shown = np.zeros(0, np.int64)  # the samples in the scatter, by its index
        self.rendered: density.Rendered | None = None
        self._index: GridIndex | None = None
        self._drawn: tuple | None = None  # (mode, rect, pixel size) of what is on screen
        self._timer = QtCore.QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.redraw)

    # ---------------------------------------------------------------- data
    def set_samples(self, xy: np.ndarray, codes: np.ndarray, colors: np.ndarray,
                    dim: np.ndarray | None) -> None:
        """New positions, colour codes, colours ((K + 1, 4) uint8) or dimming: redraw now."""
        if self.xy is None or not (self.xy is xy or np.array_equal(self.xy, xy)):
            self._index = None
            self.xy = xy
            box = finite_bounds([xy])
            self.bounds = None if box is None else tuple(float(v) for v in box)
        self.codes, self.colors, self.dim = codes, colors, dim
        self._drawn = None
        self.redraw()

    def clear(self) -> None:
        """The map is no longer dense: forget the samples, hide the image."""
        self._timer.stop()
        self.xy = self.codes = self.colors = self.dim = self.bounds = None
        self._index, self._drawn, self.rendered = None, None, None
        self.shown = np.zeros(0, np.int64)
        self.layers.items["density"].setVisible(False)
        self.layers.items["density"].clear()

    @property
    def index(self) -> GridIndex:
        """The grid index of the samples' positions (built on first use per layout)."""
        if self._index is None:
            self._index = GridIndex(self.xy)
        return self._index

    def sample_of(self, spot: int) -> int:
        """The sample shown as point ``spot`` of the samples scatter."""
        return int(self.shown[spot]) if 0 <= spot < len(self.shown) else -1

    # ---------------------------------------------------------------- drawing
    def range_changed(self) -> None:
        """The view's range or size changed: redraw soon if what is drawn no longer covers
        the view at its zoom."""
        if self.xy is None or self._timer.isActive():
            return
        if self._stale():
            self._timer.start(REDRAW_MS)

    def settle(self) -> None:
        """Redraw now if a redraw is pending (an export draws the view at once)."""
        if self._timer.isActive():
            self._timer.stop()
            self.redraw()

    def _view_box(self) -> tuple[tuple[float, float, float, float], tuple[float, float]]:
        vb = self.view.getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        rect = vb.boundingRect()
        ratio = self.view.devicePixelRatioF() if hasattr(self.view, "devicePixelRatioF") else 1.0
        w, h = max(rect.width() * ratio, 1.0), max(rect.height() * ratio, 1.0)
        return (x0, y0, x1, y1), ((x1 - x0) / w, (y1 - y0) / h)

    def _stale(self) -> bool:
        if self._drawn is None:
            return True
        (x0, y0, x1, y1), px = self._view_box()
        _mode, (a0, b0, a1, b1), drawn_px = self._drawn
        zoom = px[0] / drawn_px[0], px[1] / drawn_px[1]
        if not all(0.9 < z < 1.1 for z in zoom):
            return True  # zoomed: the pixels (or the number of samples in view) changed
        return not (x0 >= a0 and y0 >= b0 and x1 <= a1 and y1 <= b1)

    def redraw(self) -> None:
        """Draw the samples around the view's range now: dots or the image."""
        self._timer.stop()
        if self.xy is None:
            return
        items = self.layers.items
        visible = items["samples"].isVisible() or items["density"].isVisible()
        (x0, y0, x1, y1), px = self._view_box()
        # a margin of whole pixels: the image's pixels fall on the screen's
        mx = round(MARGIN * (x1 - x0) / px[0]) * px[0]
        my = round(MARGIN * (y1 - y0) / px[1]) * px[1]
        rect = covered = (x0 - mx, y0 - my, x1 + mx, y1 + my)
        if self.bounds is not None:  # no pixels beyond the samples (whole pixels kept)
            bx0, by0, bx1, by1 = self.bounds
            rect = (rect[0] + max(np.floor((bx0 - rect[0]) / px[0]), 0) * px[0],
                    rect[1] + max(np.floor((by0 - rect[1]) / px[1]), 0) * px[1],
                    rect[2] - max(np.floor((rect[2] - bx1) / px[0]) - 1, 0) * px[0],
                    rect[3] - max(np.floor((rect[3] - by1) / px[1]) - 1, 0) * px[1])
        xy = self.xy
        with np.errstate(invalid="ignore"):
            near = ((xy[:, 0] >= rect[0]) & (xy[:, 0] < rect[2])
                    & (xy[:, 1] >= rect[1]) & (xy[:, 1] < rect[3]))
        n_near = int(np.count_nonzero(near))
        if n_near <= density.VISIBLE_POINTS:
            self._draw_dots(np.flatnonzero(near))
            items["density"].setVisible(False)
            self.rendered = None
            mode = "dots"
        else:
            width = max(round((rect[2] - rect[0]) / px[0]), 1)
            height = max(round((rect[3] - rect[1]) / px[1]), 1)
            # exactly the screen's pixel size (the samples beyond were outside the bounds)
            rect = (rect[0], rect[1], rect[0] + width * px[0], rect[1] + height * px[1])
            self.rendered = density.render(xy, self.codes, self.colors, rect, width, height,
                                           dot_px=self.layers.sample_dot_size())
            density.show(items["density"], self.rendered)
            items["density"].setVisible(visible)
            self._draw_dots(np.zeros(0, np.int64))
            mode = "image"
        self._drawn = (mode, covered, px)  # beyond the samples' bounds: nothing to draw
        self.layers.samples_redrawn()

    def _draw_dots(self, idx: np.ndarray) -> None:
        samples = self.layers.items["samples"]
        if np.array_equal(idx, self.shown) and self._drawn is not None \
                and self._drawn[0] == "dots" and len(samples.data) == len(idx):
            return
        self.shown = idx
        if idx.size == 0:
            if len(samples.data):
                samples.setData(x=np.zeros(0), y=np.zeros(0))
            return
        pal = self.layers.mode_palette()
        dim = None if self.dim is None else self.dim[idx]
        brushes = pal.brushes_for(self.codes[idx], dim)
        xy = self.xy[idx]
        samples.setData(xy[:, 0], xy[:, 1], brush=brushes,
                        size=self.layers.sample_dot_size(), pen=None)

