"""k-means prototypes (faiss) against scikit-learn's KMeans, by size (issue 24, item 4).

The anchor is scikit-learn's ``KMeans(n_clusters=k, max_iter=20, n_init=1,
random_state=0)``: its defaults (greedy k-means++ seeding on every point, Lloyd, tol 1e-4)
but ``max_iter`` = our ``niter`` (20) and ``n_init=1`` (scikit-learn's "auto" for k-means++,
one run) against our one run (``nredo=1``). Both run in the same process on the same data,
alternately, medians of ``--repeats``.
"""

from __future__ import annotations

import os
import time
from functools import partial

from bench._common import Context, Row, alternating, blobs

#: (N, D, k) of the size rows; the 1,000,000 row runs once (no warm-up, 1 repeat).
SIZES = ((1_000, 64, 50), (10_000, 64, 50), (100_000, 64, 50), (1_000, 256, 100),
         (10_000, 256, 100), (100_000, 256, 100), (1_000_000, 64, 50))
QUICK_SIZES = ((1_000, 64, 50), (10_000, 64, 50))


def _anchor(x, k: int, out: dict) -> None:
    from sklearn.cluster import KMeans

    out["sk"] = float(KMeans(n_clusters=k, max_iter=20, n_init=1, random_state=0).fit(x).inertia_)


def _ours(x, k: int, init: str, out: dict, notes: dict) -> None:
    from protoview.core.cluster import kmeans_prototypes

    r = kmeans_prototypes(x, k, niter=20, nredo=1, seed=0, use_gpu=False, init=init)
    out[init], notes[init] = r.inertia, r.notes


def kmeans(ctx: Context) -> list[Row]:
    """At one size (``--n-kmeans``, default 10,000 x 64 quick, 50,000 x 256 full): the
    three seedings against scikit-learn, separated and overlapping clusters."""
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
        fns = [partial(_ours, x, k, init, out, {}) for init in ("auto", "pcl", "kmeans++")]
        *times, t_sk = alternating(*fns, partial(_anchor, x, k, out), repeats=ctx.repeats)
        for init, t in zip(("auto", "pcl", "kmeans++"), times, strict=True):
            ratio_inertia = out[init] / out["sk"]
            rows.append(Row(
                f"k-means {n:,} x {d}, k={k}, 20 it., {kind} clusters, init={init}", t, "s",
                t_sk, "sklearn KMeans n_init=1", t / t_sk, "ratio <= 0.3, inertia within 1%",
                t / t_sk <= 0.3 and ratio_inertia <= 1.01,
                note=f"inertia ours/sklearn {ratio_inertia:.4f}",
                extra={"inertia_ratio": ratio_inertia}))
    rows[0].note += f"; first call (faiss/OpenMP start) {first:.2f} s"
    return rows


def kmeans_sizes(ctx: Context) -> list[Row]:
    """Issue 24: the default (``init="auto"``) and PCL's seeding against scikit-learn from
    1,000 to 1,000,000 points (``PROTOVIEW_KMEANS_SIZES="1000x64x50,..."`` picks sizes)."""
    chosen = os.environ.get("PROTOVIEW_KMEANS_SIZES")
    sizes = (tuple(tuple(int(v) for v in s.split("x")) for s in chosen.split(","))
             if chosen else QUICK_SIZES if ctx.quick else SIZES)
    load = os.getloadavg()[0]
    rows = []
    for n, d, k in sizes:
        once = n >= 1_000_000
        for spread, kind in ((2.0, "separated"), (0.5, "overlapping")):
            x, _ = blobs(n, d, k, spread=spread)
            out, notes = {}, {}
            t_auto, t_pcl, t_sk = alternating(
                partial(_ours, x, k, "auto", out, notes), partial(_ours, x, k, "pcl", out, notes),
                partial(_anchor, x, k, out), repeats=1 if once else ctx.repeats, warm=not once)
            for init, t in (("auto", t_auto), ("pcl", t_pcl)):
                ratio = out[init] / out["sk"]
                rows.append(Row(
                    f"k-means by size: {n:,} x {d}, k={k}, {kind}, init={init}", t, "s",
                    t_sk, "sklearn KMeans (k-means++, max_iter 20, n_init 1)", t / t_sk,
                    "time <= 0.3 x, inertia <= 1.01 x", t / t_sk <= 0.3 and ratio <= 1.01,
                    note=f"inertia ours/sklearn {ratio:.4f}; {notes[init]}"
                         + ("; run once" if once else ""),
                    extra={"inertia_ratio": ratio, "load_1min": load, "n": n, "d": d, "k": k}))
    rows[0].note += f"; load average at the start {load:.2f} on {os.cpu_count()} cores"
    return rows
