"""Seconds per TSD step, k-means, Sinkhorn and map update, and the map's layout drift.

    python bench/science_timings.py

Two sizes: the built-in demo (539 test images, 64-d features, cosine head 10 x 3) and
10k x 512 random features (10 Gaussian classes) with a small MLP featurizer + BatchNorm
and a Linear head for the TSD step. The drift figure: the map is updated with features
that did not change, and the mean displacement is reported as a share of the map's
diagonal (0 would be a perfectly still map): without (drift) and with (anchored) the
previous features given to ``update_map``, as the session does.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


def _time(fn, repeat: int = 3) -> float:
    fn()  # warm
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _blobs(n: int, d: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    means = rng.normal(size=(c, d)).astype(np.float32)
    x = (means[labels] * 2 + rng.normal(size=(n, d))).astype(np.float32)
    return x, labels.astype(np.int64)


def main() -> None:
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.cluster import kmeans_prototypes
    from protoview.core.model import SplitModel
    from protoview.core.projection import fit_map, layout_drift, update_map, warm_up
    from protoview.core.session import OpenRequest, Session, StepRequest
    from protoview.core.sinkhorn import sinkhorn_assign

    torch.manual_seed(0)
    warm_up()
    rows = []

    demo = Session.open(OpenRequest())
    run_step = lambda: demo.step(StepRequest(n_steps=1))  # noqa: E731
    step_s = _time(run_step)
    feats = demo.state.features
    rows.append(("demo 539 x 64", feats, step_s))

    x, y = _blobs(10_000, 512, 10)
    model = SplitModel(
        nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU()), nn.Linear(512, 10)
    )
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    run = AdaptRun(make_adapter("tsd", model), dataset, batch_size=64, seed=0)
    rows.append(("random 10k x 512", x, _time(run.step, repeat=10)))

    print(f"{'data':<18} {'TSD step':>9} {'k-means k=10':>13} {'Sinkhorn':>9} {'map fit':>8} "
          f"{'map update':>11} {'drift':>7} {'anchored':>9}")
    for name, f, step_s in rows:
        km = _time(lambda f=f: kmeans_prototypes(f, 10, seed=0), repeat=1)
        protos = kmeans_prototypes(f, 10, seed=0).centroids
        sk = _time(lambda f=f: sinkhorn_assign(f, protos, epsilon=0.05, n_iters=3))
        t0 = time.perf_counter()
        first = fit_map(f, seed=0).embedding
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = update_map(first, f, seed=0).embedding
        upd_s = time.perf_counter() - t0
        drift = layout_drift(first, again)
        held = layout_drift(first, update_map(first, f, seed=0, anchor_vectors=f).embedding)
        print(f"{name:<18} {step_s:>8.3f}s {km:>12.3f}s {sk * 1000:>7.1f}ms {fit_s:>7.2f}s "
              f"{upd_s:>10.2f}s {drift:>6.2%} {held:>8.2%}")
    print("TSD step on the demo includes the refresh: features of all 539 images + map update.")


if __name__ == "__main__":
    main()
