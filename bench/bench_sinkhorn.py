"""Sinkhorn-Knopp timings: ours vs POT ``ot.sinkhorn_log`` (numpy) vs SwAV's naive torch code.

Prints one table per iteration count with the median of several repeats after a warm-up,
and the ratio of each tool's time to ours. Not a test: run ``python bench/bench_sinkhorn.py``
(``--quick`` for small sizes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from ot.bregman import sinkhorn_log

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protoview.core.sinkhorn import _sinkhorn_log, sinkhorn_knopp  # noqa: E402
from tests.oracles.swav_sinkhorn import distributed_sinkhorn  # noqa: E402


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_scores(n: int, k: int, dim: int = 128, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    feats = torch.nn.functional.normalize(torch.randn(n, dim, generator=gen), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(k, dim, generator=gen), dim=1)
    return feats @ protos.T


def run(n: int, k: int, iters: int, eps: float, repeats: int) -> None:
    scores = make_scores(n, k)
    cost = (-scores.double().numpy().T).copy()
    a, b = np.full(k, 1.0 / k), np.full(n, 1.0 / n)
    r = torch.full((k,), 1.0 / k)

    def pot() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sinkhorn_log(a, b, cost, eps, numItermax=iters, stopThr=0.0)

    rows = {
        "ours (sinkhorn_knopp)": lambda: sinkhorn_knopp(scores, epsilon=eps, n_iters=iters),
        "ours, log-domain path": lambda: _sinkhorn_log(scores / eps, r, iters),
        "SwAV seed (torch)": lambda: distributed_sinkhorn(scores.clone(), eps, iters),
        "POT sinkhorn_log (numpy)": pot,
    }
    times = {name: median_seconds(fn, repeats) for name, fn in rows.items()}
    ours = times["ours (sinkhorn_knopp)"]
    print(
        f"\nN={n} x K={k}, eps={eps}, {iters} iterations, median of {repeats} (torch threads {torch.get_num_threads()})"
    )
    print(f"{'method':<28}{'ms':>10}{'time / ours':>14}")
    for name, seconds in times.items():
        print(f"{name:<28}{seconds * 1e3:>10.2f}{seconds / ours:>14.2f}")
    plan = sinkhorn_knopp(scores, epsilon=eps, n_iters=iters)
    seed = distributed_sinkhorn(scores.clone(), eps, iters)
    print(f"max |ours - seed| = {float((plan - seed).abs().max()):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    n, k = (2000, 50) if args.quick else (10_000, 100)
    repeats = args.repeats or (3 if args.quick else 5)
    for iters in (3, 50):
        run(n, k, iters, 0.05, repeats)


if __name__ == "__main__":
    main()
