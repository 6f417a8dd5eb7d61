"""BN-alpha, BN-EMA, RPL and RDumb steps against the toolkit's code (mariodoebler 8b2ed63)."""

from __future__ import annotations

import numpy as np

from bench._common import Context, Row, alternating

#: method -> (protoview's parameters, the toolkit class, its config overrides)
_SETTINGS = {
    "bn_alpha": ({}, "BNAlpha", {}),
    "bn_ema": ({}, "BNEMA", {}),
    "rpl": ({}, "RPL", {}),
    "rdumb": (
        {}, "EATA",
        {"EATA.FISHER_ALPHA": 0.0, "MODEL.RESET_AFTER_NUM_UPDATES": 1000, "OPTIM.METHOD": "SGD",
         "OPTIM.LR": 0.00025, "OPTIM.NESTEROV": False},
    ),
}  # fmt: skip


def toolkit_basic_steps(ctx: Context) -> list[Row]:
    import copy

    import torch

    from protoview.core.adapt import make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles import toolkit_basic_reference as toolkit

    base = load_checkpoint(demo_checkpoint_path("linear"))
    data = open_dataset("demo:noise:3")
    x, _ = data.get_batch(np.arange(64))
    x = torch.as_tensor(x)
    classes = int(base(x[:2]).shape[1])
    steps, repeats = (10 if ctx.quick else 20), max(ctx.repeats, 5)
    rows = []
    for method, (params, cls, cfg) in _SETTINGS.items():
        ours = make_adapter(method, copy.deepcopy(base), **params)
        oracle = getattr(toolkit, cls)(toolkit.make_cfg(cfg), copy.deepcopy(base), classes)

        def run_ours(ours=ours) -> None:
            for _ in range(steps):
                ours.step(x)

        def run_oracle(oracle=oracle) -> None:
            for _ in range(steps):
                oracle(x)

        t_ours, t_ref = alternating(run_ours, run_oracle, repeats=repeats)
        t_ours, t_ref = t_ours / steps, t_ref / steps
        rows.append(Row(
            f"{method} step, demo model, batch 64", t_ours, "s", t_ref,
            "the toolkit's code (tests/oracles)", t_ours / t_ref, "<= 1.1 x reference",
            t_ours <= 1.1 * t_ref,
            note=f"per step, median of {repeats} x {steps} steps, run alternately",
        ))  # fmt: skip
    return rows
