"""Drawing a step in the window's map against naive pyqtgraph."""

from __future__ import annotations

import time

from bench._common import Context, Row, median_time


def _app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])


def drawing(ctx: Context) -> list[Row]:
    from dataclasses import replace

    import pyqtgraph as pg

    from protoview.gui.map import EmbeddingView, class_colors
    from tests.gui.fakes import random_state

    app = _app()
    rows = []
    sizes = (10_000, 50_000) if ctx.quick else (10_000, 50_000, 200_000)
    for n in sizes:
        a = random_state(n=n, c=10, p=3, seed=0)
        b = replace(a, embedding=random_state(n=n, c=10, p=3, seed=1).embedding)
        view = EmbeddingView()
        view.resize(1000, 800)
        view.show()
        view.set_state(a, animate=False)
        view.grab()
        app.processEvents()
        flip = {"i": 0}

        def ours() -> None:
            flip["i"] ^= 1
            view.set_state(b if flip["i"] else a, animate=False)
            view.grab()

        t_ours = median_time(ours, ctx.repeats)
        view.set_state(a, animate=True)
        frames, t0 = 0, time.perf_counter()
        while view.is_animating():
            view._animation_frame()
            view.grab()
            frames += 1
        t_frame = (time.perf_counter() - t0) / max(frames, 1)
        view.close()

        naive = pg.PlotWidget()
        naive.resize(1000, 800)
        naive.show()
        colors = class_colors(10)
        # naive use: a list with one brush (and pen) per point, handed to setData each
        # step (the objects are built once per class: PySide6 crashes on building 10^5
        # QBrush objects in a loop, a refcount bug of its own)
        brushes = [pg.mkBrush(c) for c in colors]
        pens = [pg.mkPen(c) for c in colors]
        item = pg.ScatterPlotItem()
        naive.addItem(item)

        def anchor() -> None:
            flip["i"] ^= 1
            s = b if flip["i"] else a
            item.setData(x=s.embedding[:, 0], y=s.embedding[:, 1], size=5,
                         brush=[brushes[c] for c in s.labels], pen=[pens[c] for c in s.labels])
            naive.grab()

        t_naive = median_time(anchor, ctx.repeats)
        naive.close()
        app.processEvents()
        frame_ok = t_frame <= 0.033 if n == 50_000 else True
        rows.append(Row(f"drawing a step, {n:,} points (set_state + repaint)", t_ours, "s",
                        t_naive, "naive pyqtgraph, per-point brushes", t_ours / t_naive,
                        "<= 0.5 x naive" + ("; frame <= 33 ms" if n == 50_000 else ""),
                        t_ours <= 0.5 * t_naive and frame_ok,
                        note=f"one animation frame (positions only + repaint) {t_frame * 1e3:.1f} ms",
                        extra={"frame_s": t_frame}))
    return rows
