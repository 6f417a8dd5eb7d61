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
    from protoview.gui.map_view import EmbeddingView

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
    path (step + exact refresh of every image) measured once at 500 and 2,000."""
    import torch

    from protoview.core.projection import warm_up
    from protoview.core.session import OpenRequest, Session, StepRequest

    app = _app()
    warm_up()
    sizes = (500, 2000) if ctx.quick else (500, 2000, 8000)
    rows: list[Row] = []
    live_times = {}
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
            run = session._run

            def step_alone() -> None:
                run.step()

            def live() -> None:
                _draw(app, view, session.step(live_req))

            alone, pixels = [], []
            for _ in range(ctx.repeats):  # alternate, so a busy machine weighs on both
                for fn, out in ((step_alone, alone), (live, pixels)):
                    t = time.perf_counter()
                    fn()
                    out.append(time.perf_counter() - t)
            t_alone, t_live = statistics.median(alone), statistics.median(pixels)
            live_times[n] = t_live
            note = (f"TSD (reference, lr 1e-4), batch 64, {torch.get_num_threads()} threads; "
                    f"open (extraction of {n:,} images + first map) {opened:.0f} s; "
                    f"map + redraw {max(0.0, t_live - t_alone):.2f} s")
            if n in (500, 2000):
                t = time.perf_counter()
                _draw(app, view, session.step(StepRequest(n_steps=1, batch_size=64, probe_size=0)))
                note += f"; old path (step + exact refresh of all {n:,}) {time.perf_counter() - t:.1f} s"
            view.close()
            rows.append(Row(f"step -> pixels, resnet18 @ 224 px, {n:,} images", t_live, "s",
                            t_alone, "the adaptation step alone", t_live / t_alone,
                            "<= 2 x the step", t_live <= 2 * t_alone, note=note))
            del session, run
    first, last = min(live_times), max(live_times)
    growth = live_times[last] / live_times[first]
    rows.append(Row(f"step -> pixels, {last:,} vs {first:,} images", growth, "x", None, "", None,
                    "flat in N (<= 1.5 x)", growth <= 1.5,
                    note=f"{live_times[first]:.2f} s at {first:,}, {live_times[last]:.2f} s at {last:,}"))
    return rows
