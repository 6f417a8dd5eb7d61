"""RMT's, SANTA's and GTTA's step against their released code (the toolkit 8b2ed63, ported in
tests/oracles/rmt_reference.py, santa_reference.py and gtta_reference.py) on the same demo
batch, after the same source prototypes (the demo's clean digits as source data; RMT without
warm-up here, its warm-up being a loop of the same kind of step; GTTA mixes a source batch
into each step)."""

from __future__ import annotations

import numpy as np

from bench._common import Context, Row, alternating


def source_steps(ctx: Context) -> list[Row]:
    import copy

    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from protoview.core.adapt import make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles import gtta_reference, rmt_reference, santa_reference

    base = load_checkpoint(demo_checkpoint_path("linear"))
    test = open_dataset("demo:noise:3")
    source = open_dataset("demo:source")
    x, _ = test.get_batch(np.arange(64))
    xs, ys = source.get_batch(np.arange(256))
    pairs = TensorDataset(torch.as_tensor(xs), torch.as_tensor(ys))
    classes = int(base.eval()(torch.as_tensor(x[:2])).shape[1])
    size = tuple(int(s) for s in x.shape[-2:])
    steps, repeats = 10, max(ctx.repeats, 5)
    rows = []
    for name in ("rmt", "santa", "gtta"):
        params = {"warmup_samples": 0} if name == "rmt" else {}
        torch.manual_seed(0)
        ours = make_adapter(name, copy.deepcopy(base), **params)
        ours.use_source(DataLoader(pairs, 64, shuffle=True))
        torch.manual_seed(0)
        if name == "rmt":
            oracle = rmt_reference.RMT(copy.deepcopy(base), classes,
                                       DataLoader(pairs, 64, shuffle=True), size,
                                       num_samples_warm_up=0)
        elif name == "santa":
            oracle = santa_reference.SANTA(copy.deepcopy(base), classes,
                                           DataLoader(pairs, 64, shuffle=True), size)
        else:
            oracle = gtta_reference.GTTA(copy.deepcopy(base), classes,
                                         DataLoader(pairs, 64, shuffle=True))
        batch = torch.as_tensor(x)

        def run_ours(adapter=ours, batch=batch) -> None:
            for _ in range(steps):
                adapter.step(batch)

        def run_oracle(reference=oracle, batch=batch) -> None:
            for _ in range(steps):
                reference(batch)

        t_ours, t_ref = alternating(run_ours, run_oracle, repeats=repeats)
        t_ours, t_ref = t_ours / steps, t_ref / steps
        rows.append(Row(f"{name.upper()} step, demo model, batch 64", t_ours, "s", t_ref,
                        "the released code (tests/oracles)", t_ours / t_ref,
                        "<= 1.1 x reference", t_ours <= 1.1 * t_ref,
                        note=f"per step, median of {repeats} x {steps} steps, run alternately"))
    return rows
