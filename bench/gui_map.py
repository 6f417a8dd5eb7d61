"""Map drawing cost at 0.5k / 10k / 50k points, offscreen: ``python bench/gui_map.py``.

Prints, per size: set_state (a step: new positions, same colours, no animation) then one full repaint
of the window; one animation frame (positions only) + repaint; panning frames per second
(translate the view + repaint); and the core's UMAP update for the same number of points
(what a step adds on the worker). Repaints are forced with ``grab()`` (offscreen Qt).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
    from PySide6 import QtWidgets

    from protoview.core.projection import fit_map, update_map, warm_up
    from protoview.gui.map import EmbeddingView
    from tests.gui.fakes import random_state

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    warm_up()
    print(f"{'points':>7} {'set_state+paint':>16} {'anim frame+paint':>17} {'pan fps':>8} {'umap update':>12}")
    for n in (539, 10_000, 50_000):
        view = EmbeddingView()
        view.resize(1000, 800)
        view.show()
        a = random_state(n=n, c=10, p=3, seed=0)
        # a step: the points move, the colours (true labels) stay
        b = replace(a, embedding=random_state(n=n, c=10, p=3, seed=1).embedding)
        view.set_state(a, animate=False)
        view.grab()
        app.processEvents()
        t0 = time.perf_counter()
        view.set_state(b, animate=False)
        view.grab()
        set_s = time.perf_counter() - t0
        view.set_state(a, animate=True)
        t0 = time.perf_counter()
        frames = 0
        while view.is_animating():
            view._animation_frame()
            view.grab()
            frames += 1
        anim_s = (time.perf_counter() - t0) / max(frames, 1)
        vb = view.getViewBox()
        t0 = time.perf_counter()
        for _ in range(20):
            vb.translateBy(x=0.05, y=0.0)
            view.grab()
        fps = 20 / (time.perf_counter() - t0)
        feats = a.features
        prev = fit_map(feats, n_epochs=50).embedding
        t0 = time.perf_counter()
        update_map(prev, feats + 0.01 * np.random.default_rng(0).normal(size=feats.shape).astype(np.float32))
        upd = time.perf_counter() - t0
        print(f"{n:>7} {set_s:>15.3f}s {anim_s:>16.3f}s {fps:>8.1f} {upd:>11.2f}s")
        view.close()


if __name__ == "__main__":
    main()
