"""Sinkhorn-Knopp assignment against POT and the seed's naive code (speed, and finiteness at small eps)."""

from __future__ import annotations

import warnings

import numpy as np

from bench._common import Context, Row, alternating


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
