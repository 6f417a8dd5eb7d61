"""Adaptation steps: TSD against the authors' code, and memory over a long run."""

from __future__ import annotations

import gc
import os

import numpy as np

from bench._common import Context, Row, alternating


def tsd_step(ctx: Context) -> list[Row]:
    import copy

    import torch

    from protoview.core.adapt.tsd import TSDAdapter, TSDConfig
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles.tsd_reference import TSD as OracleTSD

    base = load_checkpoint(demo_checkpoint_path("linear"))
    data = open_dataset("demo:noise:3")
    x, _ = data.get_batch(np.arange(64))
    steps = 20

    def fresh_pair():
        m1, m2 = copy.deepcopy(base), copy.deepcopy(base)
        ours = TSDAdapter(m1, TSDConfig(lr=1e-4, filter_K=100, lam=0.0, variant="reference"))
        m2.train()
        oracle = OracleTSD(m2, torch.optim.Adam(m2.parameters(), lr=1e-4), lam=0.0,
                           filter_K=100, classifier_weight=m2.classifier.weight)
        return ours, oracle

    ours, oracle = fresh_pair()
    ours.step(x), oracle(x)  # warm-up (optimizer state, first autograd graph)

    def run_ours() -> None:
        for _ in range(steps):
            ours.step(x)

    def run_oracle() -> None:
        for _ in range(steps):
            oracle(x)

    t_ours, t_ref = alternating(run_ours, run_oracle, repeats=max(ctx.repeats, 5))
    t_ours, t_ref = t_ours / steps, t_ref / steps
    return [Row("TSD step, demo model, batch 64", t_ours, "s", t_ref,
                "reference port (tests/oracles)", t_ours / t_ref, "<= 1.1 x reference",
                t_ours <= 1.1 * t_ref, note=f"per step, median of {max(ctx.repeats, 5)} x {steps} steps, run alternately")]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(ctx: Context) -> list[Row]:
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path

    steps = 300 if ctx.quick else 1000
    model = load_checkpoint(demo_checkpoint_path("cosine"))
    run = AdaptRun(make_adapter("tsd", model), open_dataset("demo:noise:3"), batch_size=64, seed=0)
    rss10 = None
    for i in range(1, steps + 1):
        run.step()
        if i == 10:
            gc.collect()
            rss10 = _rss_bytes()
    gc.collect()
    rss = _rss_bytes()
    growth = (rss - rss10) / rss10
    supports = int(run.adapter.supports.shape[0]) if hasattr(run.adapter, "supports") else -1
    return [Row(f"memory, {steps} TSD steps on the demo", 100 * growth, "%", None, "", None,
                "RSS growth <= 5% after step 10", growth <= 0.05,
                note=f"RSS {rss10 / 2**20:.0f} MiB at step 10, {rss / 2**20:.0f} MiB at step "
                     f"{steps}; supports kept: {supports} (bounded by filter_K x classes)")]
