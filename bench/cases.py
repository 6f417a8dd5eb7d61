"""The benchmarks of ``python -m bench``: each returns rows of protoview vs its anchor.

Every timing is the median of ``ctx.repeats`` runs after one warm-up run of the same
call; protoview and the anchor run in the same process on the same inputs.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Row:
    what: str
    value: float | None
    unit: str
    anchor: float | None = None
    anchor_name: str = ""
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    case: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    quick: bool = False
    repeats: int = 3
    n_map: int | None = None
    n_kmeans: int | None = None
    device: str | None = None
    cache: dict = field(default_factory=dict)


def median_time(fn: Callable[[], object], repeats: int, warm: bool = True) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternating(*fns: Callable[[], object], repeats: int, warm: bool = True) -> tuple[float, ...]:
    """Median times of ``fns`` run in turn (a, b, a, b, ...) after one warm-up call of
    each, so that a busy or throttling machine weighs on all of them alike."""
    if warm:
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return tuple(statistics.median(t) for t in times)


def blobs(n: int, d: int, c: int, seed: int = 0, spread: float = 2.0):
    """``c`` Gaussian classes in ``d`` dimensions: features (float32) and labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    means = rng.normal(size=(c, d)).astype(np.float32)
    x = (means[labels] * spread + rng.normal(size=(n, d))).astype(np.float32)
    return x, labels.astype(np.int64)


def _first_use_seconds(code: str) -> float:
    """Wall time of ``code`` in a fresh Python process (numba's cache as configured)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - t0


# --- maps ---------------------------------------------------------------------------

def _map_data(ctx: Context):
    if "map" not in ctx.cache:
        n = ctx.n_map or (2000 if ctx.quick else 10_000)
        d = 128 if ctx.quick else 512
        ctx.cache["map"] = (n, d, *blobs(n, d, 10))
    return ctx.cache["map"]


def map_first(ctx: Context) -> list[Row]:
    import umap
    from sklearn.manifold import trustworthiness

    from protoview.core.projection import fit_map, warm_up

    n, d, x, _ = _map_data(ctx)
    rows = []
    ours_first = _first_use_seconds("from protoview.core.projection import warm_up; warm_up()")
    umap_first = _first_use_seconds(
        "import numpy as np, umap; umap.UMAP(n_epochs=5).fit(np.random.rand(300, 8))")
    rows.append(Row("map engine first use, fresh process (import + numba)", ours_first, "s",
                    umap_first, "umap-learn import + first fit", ours_first / umap_first,
                    note="numba's on-disk cache is warm (NUMBA_CACHE_DIR); the window pays "
                         "this once, on its worker, before the first map"))
    warm_up()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP().fit(x[:500])  # compile / load umap-learn's numba code
        results = {}

        def ours() -> None:
            results["ours"] = fit_map(x, seed=0)

        def anchor() -> None:
            results["umap"] = umap.UMAP().fit(x).embedding_

        t_ours, t_umap = alternating(ours, anchor, repeats=ctx.repeats, warm=False)
    tw_ours = trustworthiness(x, results["ours"].embedding, n_neighbors=10)
    tw_umap = trustworthiness(x, results["umap"], n_neighbors=10)
    ctx.cache["map_fit"] = (t_ours, results["ours"])
    rows.append(Row(f"first map, {n:,} x {d} (10 classes)", t_ours, "s", t_umap,
                    "umap.UMAP().fit", t_ours / t_umap, "ratio <= 0.5",
                    t_ours / t_umap <= 0.5 and tw_ours >= tw_umap - 0.02,
                    note=f"trustworthiness (k=10) {tw_ours:.4f} vs umap-learn {tw_umap:.4f} "
                         "(target: within 0.02)",
                    extra={"trust_ours": tw_ours, "trust_umap": tw_umap}))
    return rows


def map_update(ctx: Context) -> list[Row]:
    from protoview.core.projection import fit_map, layout_drift, update_map

    n, d, x, labels = _map_data(ctx)
    if "map_fit" not in ctx.cache:
        fit_map(x[:500], seed=0)
        out = {}

        def fit() -> None:
            out["r"] = fit_map(x, seed=0)

        t_fit = median_time(fit, ctx.repeats, warm=False)
        ctx.cache["map_fit"] = (t_fit, out["r"])
    t_fit, fitted = ctx.cache["map_fit"]
    first = fitted.embedding
    knn = (fitted.knn_indices, fitted.knn_dists)
    # a step: every feature moves a little, 10% of the samples move a lot (towards the
    # mean of another class), as when adaptation changes some predictions
    rng = np.random.default_rng(1)
    moved = rng.random(n) < 0.10
    means = np.stack([x[labels == c].mean(0) for c in range(10)])
    x2 = x + 0.01 * rng.normal(size=x.shape).astype(np.float32)
    x2[moved] = 0.5 * x2[moved] + 0.5 * means[(labels[moved] + 1) % 10]
    out = {}

    def upd() -> None:
        out["r"] = update_map(first, x2, seed=0, anchor_vectors=x, previous_knn=knn)

    def upd_full_graph() -> None:
        update_map(first, x2, seed=0, anchor_vectors=x)

    t_upd, t_full_graph = alternating(upd, upd_full_graph, repeats=ctx.repeats)
    res = out["r"]
    plain = update_map(first, x2, seed=0).embedding
    still = ~moved
    drift_anchored = layout_drift(first, res.embedding, still)
    drift_plain = layout_drift(first, plain, still)
    limit = 2.0 if n <= 10_000 else None
    ok = t_upd <= 0.1 * t_fit and (limit is None or t_upd <= limit)
    return [Row(f"map update after a step, {n:,} points", t_upd, "s", t_fit,
                "full refit (our first map)", t_upd / t_fit,
                "<= 0.1 x refit, <= 2 s at 10k", ok,
                note=f"drift of the 90% points that hardly moved: {drift_anchored:.2%} of the "
                     f"map diagonal anchored ({drift_plain:.2%} plain warm start); "
                     f"{int(res.held.sum()):,} points held in place; the update with a "
                     f"fresh k-NN search of all points (no reuse): {t_full_graph:.2f} s",
                extra={"drift_anchored": drift_anchored, "drift_plain": drift_plain})]


# --- k-means ------------------------------------------------------------------------

def kmeans(ctx: Context) -> list[Row]:
    from sklearn.cluster import KMeans

    from protoview.core.cluster import kmeans_prototypes

    n = ctx.n_kmeans or (10_000 if ctx.quick else 50_000)
    d, k = (64, 50) if ctx.quick else (256, 100)
    rows = []
    t0 = time.perf_counter()
    kmeans_prototypes(blobs(40 * k, d, k)[0], k, niter=2, nredo=1, use_gpu=False)
    first = time.perf_counter() - t0
    for spread, kind in ((2.0, "separated"), (0.5, "overlapping")):
        x, _ = blobs(n, d, k, spread=spread)
        out = {}

        def ours() -> None:
            out["random"] = kmeans_prototypes(x, k, niter=20, nredo=1, seed=0, use_gpu=False).inertia

        def ours_pp() -> None:
            out["kmeans++"] = kmeans_prototypes(x, k, niter=20, nredo=1, seed=0, use_gpu=False,
                                                init="kmeans++").inertia

        def anchor() -> None:
            out["sk"] = float(KMeans(n_clusters=k, max_iter=20, n_init=1, random_state=0).fit(x).inertia_)

        t_ours, t_pp, t_sk = alternating(ours, ours_pp, anchor, repeats=ctx.repeats)
        for init, t in (("random", t_ours), ("kmeans++", t_pp)):
            ratio_inertia = out[init] / out["sk"]
            rows.append(Row(
                f"k-means {n:,} x {d}, k={k}, 20 it., {kind} clusters, init={init}", t, "s",
                t_sk, "sklearn KMeans n_init=1", t / t_sk, "ratio <= 0.3, inertia within 1%",
                t / t_sk <= 0.3 and ratio_inertia <= 1.01,
                note=f"inertia ours/sklearn {ratio_inertia:.4f} (random: faiss's seeding, as "
                     f"PCL; kmeans++: greedy k-means++ on a subsample of 50 points per centroid; sklearn: "
                     f"greedy k-means++ on all points)",
                extra={"inertia_ratio": ratio_inertia}))
    rows[0].note += f"; first call (faiss/OpenMP start) {first:.2f} s"
    return rows


# --- Sinkhorn -----------------------------------------------------------------------

def sinkhorn(ctx: Context) -> list[Row]:
    import torch
    from ot.bregman import sinkhorn_log

    from protoview.core.sinkhorn import sinkhorn_knopp
    from tests.oracles.swav_sinkhorn import distributed_sinkhorn

    n, k = (2000, 50) if ctx.quick else (10_000, 100)
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(n, 128, generator=g), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(k, 128, generator=g), dim=1)
    scores = feats @ protos.T
    cost = (-scores.double().numpy().T).copy()
    a, b = np.full(k, 1.0 / k), np.full(n, 1.0 / n)
    rows = []
    for iters in (3, 50):
        eps = 0.05

        def ours() -> None:
            sinkhorn_knopp(scores, epsilon=eps, n_iters=iters)

        def pot() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sinkhorn_log(a, b, cost, eps, numItermax=iters, stopThr=0.0)

        def naive() -> None:
            distributed_sinkhorn(scores.clone(), eps, iters)

        t_ours, t_pot, t_naive = alternating(ours, pot, naive, repeats=max(ctx.repeats, 5))
        rows.append(Row(f"Sinkhorn {n:,} x {k}, {iters} iterations", t_ours, "s", t_pot,
                        "POT sinkhorn_log", t_ours / t_pot, "<= 1.0 x POT", t_ours <= t_pot))
        rows.append(Row(f"Sinkhorn {n:,} x {k}, {iters} iterations", t_ours, "s", t_naive,
                        "seed's naive torch", t_ours / t_naive, "<= 2.0 x naive",
                        t_ours <= 2.0 * t_naive))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = sinkhorn_knopp(scores, epsilon=1e-3, n_iters=3)
        seed_plan = distributed_sinkhorn(scores.clone(), 1e-3, 3)
    ours_ok = bool(torch.isfinite(plan).all())
    naive_bad = not bool(torch.isfinite(seed_plan).all())
    rows.append(Row("Sinkhorn at eps = 1e-3: finite plan", float(ours_ok), "", float(not naive_bad),
                    "seed's naive torch", None, "ours finite where naive is not",
                    ours_ok and naive_bad,
                    note=f"ours finite: {ours_ok}; seed's code gives NaN/Inf: {naive_bad}"))
    return rows


# --- feature extraction -------------------------------------------------------------

def extraction(ctx: Context) -> list[Row]:
    import torch

    from bench.extract_throughput import bare_loop, demo_model, ours, resnet18_model
    from protoview.core.data import open_dataset
    from protoview.core.device import pick_device
    from protoview.core.model import TransformSpec

    device = pick_device(ctx.device)
    rows = []

    def compare(bare, mine) -> tuple[float, float]:
        bare(), mine()
        runs = [(bare(), mine()) for _ in range(ctx.repeats)]  # alternate: fair on a busy machine
        return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))

    model = demo_model()
    dataset = open_dataset("demo")
    inputs, _ = dataset.get_batch(np.arange(len(dataset)))
    b, o = compare(bare_loop(model, inputs, 256, device), ours(model, dataset, 256, str(device)))
    rows.append(Row(f"extraction, demo CNN, {len(dataset)} images ({device})", o, "img/s", b,
                    "bare inference_mode loop", o / b, ">= 0.9 x throughput", o / b >= 0.9))
    images, batch = (16, 16) if ctx.quick else (256, 64)
    pixels = np.random.default_rng(0).integers(0, 256, (images, 3, 224, 224), dtype=np.uint8)
    net = resnet18_model()
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "images.npz", x=pixels, y=np.arange(images) % 4)
        data = open_dataset(Path(tmp) / "images.npz", TransformSpec())
        inputs, _ = data.get_batch(np.arange(images))
        b, o = compare(bare_loop(net, inputs, batch, device), ours(net, data, batch, str(device)))
    rows.append(Row(f"extraction, resnet18 @ 224 px, {images} images, batch {batch} ({device})", o, "img/s", b,
                    "bare inference_mode loop", o / b, ">= 0.9 x throughput", o / b >= 0.9,
                    note=f"torch {torch.__version__}, {torch.get_num_threads()} threads"))
    return rows


# --- TSD ----------------------------------------------------------------------------

def tsd_step(ctx: Context) -> list[Row]:
    import copy

    import torch

    from protoview.core.adapt.tsd import TSDAdapter, TSDConfig
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.demo import demo_checkpoint_path
    from protoview.core.data import open_dataset
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


# --- drawing ------------------------------------------------------------------------

def _app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])


def drawing(ctx: Context) -> list[Row]:
    from dataclasses import replace

    import pyqtgraph as pg

    from protoview.gui.map_view import EmbeddingView
    from protoview.gui.palette import class_colors
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


# --- step to pixels -----------------------------------------------------------------

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


# --- memory -------------------------------------------------------------------------

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


CASES: dict[str, Callable[[Context], list[Row]]] = {
    "map_first": map_first,
    "map_update": map_update,
    "kmeans": kmeans,
    "sinkhorn": sinkhorn,
    "extraction": extraction,
    "tsd_step": tsd_step,
    "drawing": drawing,
    "step_to_pixels": step_to_pixels,
    "memory": memory,
}
