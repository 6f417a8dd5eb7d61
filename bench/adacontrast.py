"""AdaContrast's step against the authors' ``train_epoch`` on the same batch and views."""

from __future__ import annotations

import numpy as np

from bench._common import Context, Row, alternating


def adacontrast_step(ctx: Context) -> list[Row]:
    """The demo model, batch 64, the bank filled from the whole demo set (the authors' set-up).

    The update is timed given the views on both sides (the authors make them in their data
    loader's workers); making the views is timed on its own.
    """
    import copy

    import torch

    from protoview.core.adapt.adacontrast import AdaContrast
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles import adacontrast_reference as authors

    base = load_checkpoint(demo_checkpoint_path("linear"))
    data = open_dataset("demo:noise:3")
    everything = [data.get_batch(np.arange(i, min(i + 64, len(data))))[0]
                  for i in range(0, len(data), 64)]  # fmt: skip
    x = everything[0]
    steps = 10 if ctx.quick else 20

    ours = AdaContrast(copy.deepcopy(base))
    ours.input_transform = data.transform
    torch.manual_seed(0)
    ours.fill_banks(everything)
    student, momentum = copy.deepcopy(base), copy.deepcopy(base)
    z = ours.features(x)[0]
    args = authors.make_args(queue_size=len(data))
    oracle, optimizer = authors.build(student, momentum, int(ours.predict(x).shape[1]),
                                      int(z.shape[1]), args)  # fmt: skip
    banks = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in ours.banks.items()}
    views = ours.views(x)
    pixel_views = tuple(ours.pixels.to_pixels(v) for v in views)
    make_views = ours._views
    ours._views = lambda pixels: pixel_views  # the same views each step, as the oracle's
    batch = [(list(views), None, torch.arange(len(x)))]

    def run_ours() -> None:
        for _ in range(steps):
            ours.step(x)

    def run_oracle() -> None:
        for _ in range(steps):
            authors.train_epoch(batch, oracle, banks, optimizer, 0, args)
            oracle.eval()
            with torch.no_grad():
                oracle(x, cls_only=True)

    def run_views() -> None:
        for _ in range(steps):
            make_views(ours.pixels.to_pixels(x))

    repeats = max(ctx.repeats, 5)
    t_ours, t_ref, t_views = alternating(run_ours, run_oracle, run_views, repeats=repeats)
    t_ours, t_ref, t_views = t_ours / steps, t_ref / steps, t_views / steps
    note = f"per step, median of {repeats} x {steps} steps, run alternately"
    return [
        Row("AdaContrast step given its views, demo model, batch 64", t_ours, "s", t_ref,
            "the authors' train_epoch (tests/oracles)", t_ours / t_ref, "<= 1.1 x reference",
            t_ours <= 1.1 * t_ref, note=note),
        Row("AdaContrast views (weak + 2 strong), demo batch 64", t_views, "s", t_ref,
            "the authors' step", t_views / t_ref, "", None,
            note=note + "; the authors make them in the data loader's workers"),
    ]  # fmt: skip
