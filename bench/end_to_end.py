"""End to end: a step in the session until its map is drawn, on the demo, on larger digit
sets, and with ResNet-18 at 224 px over 500 / 2,000 / 8,000 images (issue 15)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import Context, Row, median_time
from bench.drawing import _app


def _digits_npz(path: Path, n: int) -> None:
    """``n`` shifted digits (noise, severity 3, several seeds) in the demo's format."""
    from protoview.core.demo import apply_shift, demo_arrays

    clean, labels = demo_arrays("test", "none")
    reps = -(-n // len(clean))
    images = np.concatenate([apply_shift(clean, "noise", 3, seed) for seed in range(reps)])[:n]
    np.savez(path, x=images, y=np.tile(labels, reps)[:n])


def _view():
    from protoview.gui.map import EmbeddingView

    view = EmbeddingView()
    view.resize(1000, 800)
    view.show()
    return view


def _draw(app, view, state) -> None:
    view.set_state(state, animate=False)
    view.grab()
    app.processEvents()


def step_to_pixels(ctx: Context) -> list[Row]:
    """The window's live step (its batch moves at once) on the demo CNN, against the step
    with an exact refresh of every sample (what each step cost before issue 15)."""
    from protoview.core.projection import warm_up
    from protoview.core.session import OpenRequest, Session, StepRequest

    app = _app()
    warm_up()
    rows = []
    n_big = 2000 if ctx.quick else 10_000
    sizes = [("demo", None, 1.0), (f"{n_big:,} shifted digits", n_big, 3.0)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, limit in sizes:
            if n is None:
                req = OpenRequest()
            else:
                path = Path(tmp) / f"digits{n}.npz"
                _digits_npz(path, n)
                req = OpenRequest(checkpoint="demo:cosine", data=str(path))
            session = Session.open(req)
            view = _view()
            _draw(app, view, session.state)

            def live() -> None:
                _draw(app, view, session.step(StepRequest(n_steps=1, live=True, probe_size=0)))

            def exact() -> None:
                _draw(app, view, session.step(StepRequest(n_steps=1, probe_size=0)))

            t_live = median_time(live, ctx.repeats)
            t_exact = median_time(exact, ctx.repeats)
            points = len(session.state.embedding)
            view.close()
            rows.append(Row(f"step -> pixels, {name} ({points:,} points)", t_live, "s", t_exact,
                            "step + exact refresh of all samples", t_live / t_exact,
                            f"<= {limit:g} s", t_live <= limit,
                            note="live TSD step (its batch moves) + map update + redraw"))
    return rows


def _resnet_checkpoint(path: Path) -> None:
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(0)
    torch.save(resnet18(weights=None, num_classes=10).state_dict(), path)


def _synthetic_npz(path: Path, n: int) -> None:
    """``n`` random 224 x 224 RGB images (uint8) in 10 classes, each class a tint."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    tint = rng.integers(0, 96, (10, 3, 1, 1), dtype=np.uint8)
    images = rng.integers(0, 160, (n, 3, 224, 224), dtype=np.uint8)
    images += tint[labels]
    np.savez(path, x=images, y=labels)


def step_to_pixels_resnet(ctx: Context) -> list[Row]:
    """ResNet-18 at 224 px (random init, synthetic images): step -> pixels against the
    adaptation step alone, at 500 / 2,000 / 8,000 images (quick: 500 / 2,000); the old
    path (step + exact refresh of every image) measured once at 500 and 2,000.

    The adaptation step (``AdaptRun.step``: its batch loaded and adapted on) is timed
    inside each live step, so the two times of a ratio come from the same call: on a
    shared machine another user's load then weighs on both alike."""
    import torch

    from protoview.core.adapt.run import AdaptRun
    from protoview.core.projection import warm_up
    from protoview.core.session import OpenRequest, Session, StepRequest

    app = _app()
    warm_up()
    sizes = (500, 2000) if ctx.quick else (500, 2000, 8000)
    rows: list[Row] = []
    totals, extras = {}, {}
    inner: list[float] = []
    real_step = AdaptRun.step

    def timed_step(self):
        t = time.perf_counter()
        out = real_step(self)
        inner.append(time.perf_counter() - t)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "resnet18.pth"
        _resnet_checkpoint(ckpt)
        for n in sizes:
            data = Path(tmp) / f"images{n}.npz"
            _synthetic_npz(data, n)
            t0 = time.perf_counter()
            session = Session.open(OpenRequest(checkpoint=str(ckpt), arch="resnet18",
                                               data=str(data), device="cpu"))
            opened = time.perf_counter() - t0
            data.unlink()
            view = _view()
            _draw(app, view, session.state)
            live_req = StepRequest(n_steps=1, batch_size=64, live=True, probe_size=0)
            _draw(app, view, session.step(live_req))  # warm: builds the run
            totals_n, steps_n = [], []
            AdaptRun.step = timed_step
            try:
                for _ in range(ctx.repeats):
                    inner.clear()
                    t = time.perf_counter()
                    _draw(app, view, session.step(live_req))
                    totals_n.append(time.perf_counter() - t)
                    steps_n.append(inner[0])
            finally:
                AdaptRun.step = real_step
            ratios = [a / b for a, b in zip(totals_n, steps_n, strict=True)]
            ratio = statistics.median(ratios)
            t_live, t_step = statistics.median(totals_n), statistics.median(steps_n)
            extra = statistics.median([a - b for a, b in zip(totals_n, steps_n, strict=True)])
            totals[n], extras[n] = t_live, extra
            note = (f"TSD (reference, lr 1e-4), batch 64, {torch.get_num_threads()} threads; "
                    f"medians of {ctx.repeats} live steps, the step timed inside each; map + "
                    f"redraw + bookkeeping {extra:.2f} s; open (extraction of {n:,} images + "
                    f"first map) {opened:.0f} s")
            if n in (500, 2000):
                t = time.perf_counter()
                _draw(app, view, session.step(StepRequest(n_steps=1, batch_size=64, probe_size=0)))
                note += f"; old path (step + exact refresh of all {n:,}) {time.perf_counter() - t:.1f} s"
            view.close()
            rows.append(Row(f"step -> pixels, resnet18 @ 224 px, {n:,} images", t_live, "s",
                            t_step, "the adaptation step alone", ratio,
                            "<= 2 x the step", ratio <= 2, note=note))
            del session
    first, last = min(totals), max(totals)
    growth = extras[last] - extras[first]
    rows.append(Row(f"step -> pixels beyond the step, {last:,} vs {first:,} images", growth, "s",
                    None, "", None, "flat in N (+<= 0.5 s)", growth <= 0.5,
                    note="map + redraw + bookkeeping: " + ", ".join(
                        f"{extras[n]:.2f} s at {n:,}" for n in sorted(extras))))
    return rows
