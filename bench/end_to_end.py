"""End to end: a step in the session until its map is ready, on the demo and on larger image sets."""

from __future__ import annotations

import tempfile
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


def step_to_pixels(ctx: Context) -> list[Row]:
    from protoview.core.projection import warm_up
    from protoview.core.session import OpenRequest, Session, StepRequest
    from protoview.gui.map_view import EmbeddingView

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
            view = EmbeddingView()
            view.resize(1000, 800)
            view.show()
            view.set_state(session.state, animate=False)
            view.grab()

            def one() -> None:
                state = session.step(StepRequest(n_steps=1))
                view.set_state(state, animate=False)
                view.grab()
                app.processEvents()

            t = median_time(one, ctx.repeats)
            points = len(session.state.embedding)
            view.close()
            rows.append(Row(f"step -> pixels, {name} ({points:,} points)", t, "s", None, "", None,
                            f"<= {limit:g} s", t <= limit,
                            note="TSD step + features of all samples + map update + redraw"))
    return rows
