"""k-means timings: ours (faiss, PCL settings) vs scikit-learn ``KMeans``.

50k x 256 features, k=100, 20 iterations, one run each (``n_init=1`` / ``nredo=1``); our
PCL default ``nredo=5`` is shown too. Prints time and inertia ratios against sklearn,
measured in the same run. Not a test: ``python bench/bench_kmeans.py`` (``--quick`` for
small sizes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protoview.core.cluster import kmeans_prototypes  # noqa: E402


def clustered_features(
    n: int, dim: int, centers: int, separation: float, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centers, dim)).astype(np.float32) * separation
    labels = rng.integers(0, centers, n)
    return (means[labels] + rng.standard_normal((n, dim)).astype(np.float32)).astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median seconds over ``repeats`` runs and the inertia of the last one."""
    times, inertia = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        inertia = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), inertia


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--separation",
        type=float,
        default=2.0,
        help="scale of the cluster means against unit noise (2: well separated, 0.3: overlapping)",
    )
    args = parser.parse_args()
    n, dim, k = (5000, 64, 20) if args.quick else (50_000, 256, 100)
    repeats = args.repeats or (1 if args.quick else 3)
    x = clustered_features(n, dim, k, args.separation)

    def sklearn_run() -> float:
        model = KMeans(n_clusters=k, max_iter=20, n_init=1, random_state=0).fit(x)
        return float(model.inertia_)

    def ours(nredo: int):
        return lambda: kmeans_prototypes(x, k, niter=20, nredo=nredo, seed=0, use_gpu=False).inertia

    kmeans_prototypes(x[: 20 * k], k, niter=2, nredo=1)  # warm-up (faiss/OpenMP start)
    rows = {
        "sklearn KMeans (n_init=1)": timed(sklearn_run, repeats),
        "ours faiss (nredo=1)": timed(ours(1), repeats),
        "ours faiss (nredo=5, PCL)": timed(ours(5), repeats),
    }
    ref_t, ref_inertia = rows["sklearn KMeans (n_init=1)"]
    print(
        f"N={n} x D={dim}, k={k}, separation {args.separation}, 20 iterations, median of {repeats}"
    )
    print(f"{'method':<28}{'seconds':>10}{'time / sklearn':>16}{'inertia / sklearn':>19}")
    for name, (seconds, inertia) in rows.items():
        print(f"{name:<28}{seconds:>10.3f}{seconds / ref_t:>16.3f}{inertia / ref_inertia:>19.4f}")


if __name__ == "__main__":
    main()
