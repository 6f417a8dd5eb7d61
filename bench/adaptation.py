"""Adaptation steps: TSD and RoTTA against the authors' code, and memory over a long run."""

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



def roid_cmf_step(ctx: Context) -> list[Row]:
    """ROID's and CMF's step against the toolkit's (tests/oracles/roid_cmf_reference.py) on
    the same batch of the demo (64 grey 8x8 digits, BatchNorm CNN), the same seeded
    augmentations on both sides, so both adapt along the same numbers. One torch thread;
    the two steps interleaved one by one (a busy machine weighs on both alike)."""
    import copy
    import statistics
    import time

    import torch

    from protoview.core.adapt import make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles import roid_cmf_reference as toolkit

    base = load_checkpoint(demo_checkpoint_path("linear"))
    x, _ = open_dataset("demo:noise:3").get_batch(np.arange(64))
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the toolkit's choice
    base, x = base.to(device), torch.as_tensor(x).to(device)
    classes = int(base.eval()(x[:2]).shape[1])
    steps = 20 if ctx.quick else 60
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for name in ("roid", "cmf"):
            ours = make_adapter(name, copy.deepcopy(base))
            oracle = toolkit.build(name, copy.deepcopy(base), int(x.shape[-1]), classes,
                                   batch_size=64)
            times: dict[str, list[float]] = {"ours": [], "toolkit": []}
            for i in range(-1, steps):  # step -1: warm-up (optimizer state, first graph)
                pair = [("ours", ours.step), ("toolkit", oracle)]
                for side, fn in pair if i % 2 == 0 else pair[::-1]:
                    torch.manual_seed(i)
                    t0 = time.perf_counter()
                    fn(x)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    if i >= 0:
                        times[side].append(time.perf_counter() - t0)
            t_ours = statistics.median(times["ours"])
            t_ref = statistics.median(times["toolkit"])
            rows.append(Row(f"{name.upper()} step, demo model, batch 64", t_ours, "s", t_ref,
                            "toolkit port (tests/oracles)", t_ours / t_ref,
                            "<= 1.1 x reference", t_ours <= 1.1 * t_ref,
                            note=f"per step, median of {steps} steps interleaved with the "
                                 "toolkit's, one torch thread"))
    finally:
        torch.set_num_threads(threads)
    return rows
def rotta_step(ctx: Context) -> list[Row]:
    """RoTTA's step against the authors' (tests/oracles/rotta_reference.py) on the same batch:
    the demo model, batch 64, the authors' defaults (an update at every step: 64 samples)."""
    import copy

    from protoview.core.adapt.rotta import RoTTA
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles import rotta_reference as authors

    base = load_checkpoint(demo_checkpoint_path("linear"))
    data = open_dataset("demo:noise:3")
    x, _ = data.get_batch(np.arange(64))
    steps = 20
    ours = RoTTA(copy.deepcopy(base))
    oracle = authors.build(copy.deepcopy(base), 10, img_size=tuple(x.shape[-2:]))
    ours.step(x), oracle(x)  # warm-up (optimizer state, TorchScript's profiling run)

    def run_ours() -> None:
        for _ in range(steps):
            ours.step(x)

    def run_oracle() -> None:
        for _ in range(steps):
            oracle(x)

    repeats = max(ctx.repeats, 5)
    t_ours, t_ref = alternating(run_ours, run_oracle, repeats=repeats)
    t_ours, t_ref = t_ours / steps, t_ref / steps
    return [Row("RoTTA step, demo model, batch 64", t_ours, "s", t_ref,
                "authors' code (tests/oracles)", t_ours / t_ref, "<= 1.1 x reference",
                t_ours <= 1.1 * t_ref,
                note=f"per step (each with an update), median of {repeats} x {steps} steps, "
                     "run alternately; ours also goes to pixels and back")]


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


def probe_accuracy(ctx: Context) -> list[Row]:
    """Issue 15, item 3: the probe's estimate of the full-set accuracy against the exact
    one at every step of a TSD pass (batch 64), on the demo (539 digits) and on 2,000
    shifted digits, with the default probe (1,000 samples) and a smaller one (250).

    Two cases: "idle" - the window refreshed the map between steps, so each estimate
    starts from the step before's exact numbers; "no idle" - steps back to back (Run N,
    One pass): every estimate starts from the source model's numbers at the open."""
    import tempfile
    from pathlib import Path

    from bench.end_to_end import _digits_npz
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.adapt.refresh import ProgressiveRefresh
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from protoview.core.features import extract_features

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits2000.npz"
        _digits_npz(path, 2000)
        for name, spec in (("demo", "demo:noise:3"), ("2,000 shifted digits", str(path))):
            for probe_size, idle in ((1000, True), (1000, False), (250, False)):
                model = load_checkpoint(demo_checkpoint_path("cosine"))
                data = open_dataset(spec, model.info.transform)
                source = extract_features(model, data, device="cpu")
                run = AdaptRun(make_adapter("tsd", model), data, batch_size=64, seed=0)
                live = ProgressiveRefresh(run, source.features, source.logits, source.labels,
                                          probe_size=probe_size)
                errors, raw, widths, covered = [], [], [], 0
                for _ in range(run.steps_per_pass):
                    live.on_step(run.step())
                    live.advance(until="probe")
                    probe = live.probe()
                    if idle:
                        live.advance()  # the exact numbers of this step anchor the next
                        exact = live.exact_accuracy()
                    else:
                        exact = run.evaluate()  # leaves the refresh (and its anchor) alone
                    errors.append(abs(probe.accuracy - exact) * 100)
                    raw.append(abs(probe.probe_accuracy - exact) * 100)
                    widths.append((probe.high - probe.low) * 50)
                    covered += probe.low <= exact <= probe.high
                worst = max(errors)
                steps = len(errors)
                rows.append(Row(
                    f"probe accuracy vs exact, {name}, probe {probe_size:,} ({probe.size:,} of "
                    f"{probe.population:,}), {'idle between steps' if idle else 'no idle'}",
                    worst, "points", None, "", None,
                    "<= 1.5 points at every step", worst <= 1.5,
                    note=f"max |estimate - exact| over the {steps} steps of a pass (mean "
                         f"{np.mean(errors):.2f}); exact inside the 95% interval at "
                         f"{covered} of {steps} steps (mean half-width {np.mean(widths):.2f} "
                         f"points); the probe's own accuracy was off by up to {max(raw):.2f}"))
    return rows


def _cotta_rows(name: str, model, x, steps: int, repeats: int, toolkit_too: bool) -> list[Row]:
    """CoTTA ``reference`` against the authors' code (and ``corrected`` against the
    toolkit's port when asked) on the same batch, per step, run alternately."""
    import contextlib
    import copy
    import io

    import torch

    from protoview.core.adapt import make_adapter
    from tests.oracles import cotta_reference as authors
    from tests.oracles import cotta_toolkit as toolkit

    shape = (x.shape[2], x.shape[3], x.shape[1])
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    with contextlib.redirect_stdout(io.StringIO()):  # the authors' collect_params prints
        pairs = [("reference", make_adapter("cotta", copy.deepcopy(model)),
                  authors.build(copy.deepcopy(model), img_shape=shape), "the authors' code")]
        if toolkit_too:
            pairs.append(("corrected",
                          make_adapter("cotta", copy.deepcopy(model), variant="corrected"),
                          toolkit.build(copy.deepcopy(model), img_size=shape[:2]),
                          "the toolkit's"))
    rows = []
    for variant, ours, oracle, anchor in pairs:
        def run(fn) -> None:
            for _ in range(steps):
                fn(x)
            sync()

        t_ours, t_ref = alternating(lambda fn=ours.step: run(fn), lambda fn=oracle: run(fn),
                                    repeats=repeats)
        t_ours, t_ref = t_ours / steps, t_ref / steps
        ratio = t_ours / t_ref
        rows.append(Row(f"CoTTA {variant} step, {name}", t_ours, "s", t_ref,
                        f"{anchor} (tests/oracles)", ratio, "<= 1.1 x reference",
                        ratio <= 1.1, note=f"per step, median of {repeats} x {steps} steps, "
                        f"run alternately; teacher averaged: {ours.last_augmented}"))
    return rows


def cotta_step(ctx: Context) -> list[Row]:
    """CoTTA's step against its oracles on the same batch: the demo model (batch 64, 8 x 8)
    on the CPU; on CUDA also a ResNet-50 (random init, batch 64 at 224 px, the authors'
    ImageNet batch) with the toolkit's port beside."""
    import torch

    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path

    x, _ = open_dataset("demo:noise:3").get_batch(np.arange(64))
    repeats = max(ctx.repeats, 3)
    rows = _cotta_rows("demo model, batch 64", load_checkpoint(demo_checkpoint_path("linear")),
                       x, steps=3, repeats=repeats, toolkit_too=False)
    if torch.cuda.is_available():
        import torchvision
        from torch import nn

        from protoview.core.model import SplitModel

        torch.manual_seed(0)
        net = torchvision.models.resnet50()
        model = SplitModel(nn.Sequential(*list(net.children())[:-1], nn.Flatten()), net.fc)
        model = model.cuda().eval()
        x = torch.rand(64, 3, 224, 224, device="cuda")
        rows += _cotta_rows("ResNet-50 on CUDA, batch 64 x 224 px", model, x, steps=3,
                            repeats=3, toolkit_too=True)
    return rows
