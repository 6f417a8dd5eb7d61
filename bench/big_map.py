"""Issue 24 item 1: the map at 50,000 / 200,000 / 1,000,000 samples against today's
pyqtgraph path (one ScatterPlotItem of every sample, moved in place by a step), in the same
run, alternating: pan repaints/s, a step's redraw, a colour change, hover and lasso.

``python -m bench big_map`` (offscreen), or under X for the OpenGL viewport's row:
``DISPLAY=:77 QT_QPA_PLATFORM=xcb python -m bench big_map``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from bench._common import Context, Row


def big_state(n: int, c: int = 10, seed: int = 0):
    """A state of ``n`` samples in ``c`` blobs, without features (the map draws no more)."""
    from tests.gui.fakes import random_state

    s = random_state(2000, c=c, p=1, k=20, seed=seed)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    return replace(
        s, labels=labels, predictions=np.where(rng.random(n) < 0.9, labels, (labels + 1) % c),
        confidence=np.ones(n, np.float32), entropy=rng.random(n).astype(np.float32),
        features=np.zeros((n, 1), np.float32), logits=None,
        embedding=(s.centers_embedding[labels] + rng.normal(size=(n, 2))).astype(np.float32))


def _pan_rate(widget, app, frames: int = 30, step: float = 0.01) -> float:
    """Repaints per second while the view pans by ``step`` of its width a frame (events
    processed each frame, so a pending redraw of the samples runs when it is due)."""
    vb = widget.getViewBox() if hasattr(widget, "getViewBox") else widget.getPlotItem().vb
    (x0, x1), _ = vb.viewRange()
    t0 = time.perf_counter()
    for _ in range(frames):
        vb.translateBy(x=step * (x1 - x0))
        app.processEvents()
        widget.grab()
    return frames / (time.perf_counter() - t0)


def _today(n, a, b, app, gl: bool = False):
    """Today's path below its density threshold: one scatter of every sample with shared
    brushes, a step moves the points in place (``move_points``) and repaints."""
    import pyqtgraph as pg

    from protoview.gui.map import Palette, class_colors
    from protoview.gui.map._items import move_points

    w = pg.PlotWidget()
    if gl:
        w.useOpenGL(True)
    w.resize(1000, 800)
    w.show()
    item = pg.ScatterPlotItem(pxMode=True, pen=None, symbol="o", size=6, useCache=True)
    w.addItem(item)
    pal = Palette(class_colors(10))
    t0 = time.perf_counter()
    item.setData(a.embedding[:, 0], a.embedding[:, 1], brush=pal.brushes_for(a.labels),
                 size=6, pen=None)
    w.grab()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    move_points(item, b.embedding[:, 0], b.embedding[:, 1])
    w.grab()
    step = time.perf_counter() - t0
    t0 = time.perf_counter()
    item.setBrush(pal.brushes_for(b.predictions))
    w.grab()
    colour = time.perf_counter() - t0
    pan = _pan_rate(w, app, frames=10 if n >= 1_000_000 else 30)
    w.close()
    app.processEvents()
    return {"first": first, "step": step, "colour": colour, "pan": pan}


def _ours(n, a, b, app):
    from protoview.gui.map import EmbeddingView

    v = EmbeddingView()
    v.resize(1000, 800)
    v.show()
    app.processEvents()
    t0 = time.perf_counter()
    v.set_state(a)
    v.grab()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    v.set_state(b, animate=False)
    v.grab()
    step = time.perf_counter() - t0
    t0 = time.perf_counter()
    v.set_color_mode("prediction")
    v.grab()
    colour = time.perf_counter() - t0
    pan = _pan_rate(v, app)
    v.fit_view()
    v.settle()
    x, y = map(float, b.embedding[11])
    t0 = time.perf_counter()
    hit = v.nearest_sample(x, y)
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(20):
        v.nearest_sample(x, y)
    hover = (time.perf_counter() - t0) / 20
    theta = np.linspace(0, 2 * np.pi, 120)
    c = b.centers_embedding[0].astype(np.float64)
    t0 = time.perf_counter()
    lasso = v.select_polygon(np.c_[c[0] + 3 * np.cos(theta), c[1] + 3 * np.sin(theta)])
    lasso_s = time.perf_counter() - t0
    v.set_selection([])
    vb = v.getViewBox()
    half = 0.5 * np.sqrt(50_000 / n)  # ~5,000 samples in view and its margin: dots
    vb.setRange(xRange=(x - half, x + half), yRange=(y - 0.8 * half, y + 0.8 * half),
                padding=0.0)
    v.settle()
    dots = len(v.layers.big.shown) if v.dense else n
    zoomed = _pan_rate(v, app)
    v.close()
    app.processEvents()
    return {"first": first, "step": step, "colour": colour, "pan": pan, "index": index_s,
            "hover": hover, "hit": hit, "lasso": lasso_s, "lasso_n": int(lasso.size),
            "zoomed_pan": zoomed, "dots": dots}


def big_map(ctx: Context) -> list[Row]:
    from bench.drawing import _app
    from protoview.gui.map import DENSITY_THRESHOLD

    app = _app()
    rows: list[Row] = []
    load = os.getloadavg()[0]
    sizes = (50_000, 200_000) if ctx.quick else (50_000, 200_000, 1_000_000)
    for n in sizes:
        a = big_state(n)
        b = replace(a, embedding=a.embedding + np.float32(0.02),
                    predictions=np.roll(a.predictions, 1))
        today = _today(n, a, b, app)  # alternating: today's path, ours, today's again
        ours = _ours(n, a, b, app)
        again = _today(n, a, b, app)
        t = {k: (today[k] + again[k]) / 2 for k in today}
        label = f"{n:,} samples"
        # at or below the threshold the map is today's scatter: compared, not targeted
        dense = n > DENSITY_THRESHOLD
        rows.append(Row(f"map pan, {label} (repaints/s, zoomed out)", ours["pan"], "/s",
                        t["pan"], "today's pyqtgraph scatter of every sample",
                        ours["pan"] / t["pan"], ">= 30 /s" if dense else "— (today's path)",
                        ours["pan"] >= 30 if dense else None,
                        note=f"zoomed in to {ours['dots']:,} dots: {ours['zoomed_pan']:.0f} /s"))
        rows.append(Row(f"map step redraw, {label} (set_state + repaint)", ours["step"], "s",
                        t["step"], "today's path: move_points + repaint", ours["step"] / t["step"],
                        "<= 100 ms" if dense else "— (today's path)",
                        ours["step"] <= 0.1 if dense else None))
        rows.append(Row(f"map colour change, {label} (+ repaint)", ours["colour"], "s",
                        t["colour"], "today's path: setBrush + repaint",
                        ours["colour"] / t["colour"], "< 0.3 s" if dense else "— (today's path)",
                        ours["colour"] < 0.3 if dense else None,
                        note=f"first show {ours['first']:.2f} s (today's {t['first']:.2f} s)"))
        rows.append(Row(f"map hover, {label} (grid index)", ours["hover"], "s", None, "", None,
                        "single samples at any zoom", ours["hit"] is not None,
                        note=f"index built on first hover {ours['index']:.2f} s; lasso of "
                             f"{ours['lasso_n']:,} samples {ours['lasso']:.2f} s"))
    if os.environ.get("QT_QPA_PLATFORM") == "xcb":
        for n in sizes[:2]:
            a = big_state(n)
            b = replace(a, embedding=a.embedding + np.float32(0.02))
            try:
                gl = _today(n, a, b, app, gl=True)
                rows.append(Row(f"map pan, {n:,} samples, pyqtgraph's OpenGL viewport "
                                "(scatter of every sample)", gl["pan"], "/s", None, "", None,
                                "measured for the choice", None,
                                note=f"step {gl['step'] * 1e3:.0f} ms, first {gl['first']:.2f} s"))
            except Exception as exc:  # noqa: BLE001 - a missing GL stack is a finding
                rows.append(Row(f"pyqtgraph's OpenGL viewport, {n:,} samples", None, "", None,
                                "", None, "measured for the choice", None,
                                note=f"failed: {exc}"))
    for r in rows:
        r.note = (r.note + "; " if r.note else "") + f"load {load:.1f}"
    return rows
