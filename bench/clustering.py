"""k-means prototypes (faiss, PCL settings) against scikit-learn, at equal inertia."""

from __future__ import annotations

import time

from bench._common import Context, Row, alternating, blobs


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
