"""A feature space's geometry measured (``protoview geometry``) against plain NumPy of the same
formulas and the reference code: neural collapse NC1-NC4 at 50,000 x 512 with 100 classes
(target: under a second), DINO's k-NN and the authors' linear CKA at that size."""

from __future__ import annotations

import numpy as np

from bench._common import Context, Row, alternating, blobs


def numpy_collapse(x: np.ndarray, y: np.ndarray, w: np.ndarray, preds: np.ndarray, k: int) -> dict:
    """NC1-NC4 as one writes them in plain NumPy from the papers' formulas (float64): class
    means by a one-hot product, Sigma_W and Sigma_B as D x D matrices, ``pinv``, the
    nearest class mean from the full distance matrix."""
    x64 = x.astype(np.float64)
    n = len(y)
    onehot = np.zeros((k, n))
    onehot[y, np.arange(n)] = 1.0
    means = onehot @ x64 / onehot.sum(1, keepdims=True)
    centred = means - means.mean(0)
    diff = x64 - means[y]
    sigma_w = diff.T @ diff / n
    sigma_b = centred.T @ centred / k
    nc1 = np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / k
    norms = np.linalg.norm(centred, axis=1)
    unit = centred / norms[:, None]
    cos = unit @ unit.T
    etf = (np.eye(k) - 1 / k) / np.sqrt(k - 1)
    gram = cos * norms[:, None] * norms[None]
    wu = w / np.linalg.norm(w, axis=1, keepdims=True)
    dist = (x64**2).sum(1)[:, None] + (means**2).sum(1)[None] - 2 * x64 @ means.T
    return {"nc1": nc1, "equinorm": norms.std(ddof=1) / norms.mean(),
            "equiangularity": cos[np.triu_indices(k, 1)].std(),
            "etf": np.linalg.norm(gram / np.linalg.norm(gram) - etf),
            "nc3": np.linalg.norm(wu - unit, axis=1).mean(),
            "nc4": np.mean(dist.argmin(1) == preds)}


def geometry(ctx: Context) -> list[Row]:
    import torch

    from protoview.core.cka import linear_cka
    from protoview.core.collapse import neural_collapse
    from protoview.core.knn import weighted_knn
    from tests.oracles.cka_reference import feature_space_linear_cka
    from tests.oracles.dino_knn import knn_classifier

    n, d, k = (10_000, 256, 50) if ctx.quick else (50_000, 512, 100)
    x, y = blobs(n, d, k)
    w = np.random.default_rng(1).normal(size=(k, d)).astype(np.float32)
    preds = (x @ w.T).argmax(1)
    out = {}

    def ours() -> None:
        out["ours"] = neural_collapse(x, y, head_rows=w, head_predictions=preds)

    def plain() -> None:
        out["numpy"] = numpy_collapse(x, y, w, preds, k)

    t_ours, t_np = alternating(ours, plain, repeats=ctx.repeats)
    c, ref = out["ours"], out["numpy"]
    agree = max(abs(c.nc1 / ref["nc1"] - 1), abs(c.equinorm / ref["equinorm"] - 1),
                abs(c.etf_error / ref["etf"] - 1), abs(c.nc3 / ref["nc3"] - 1))
    rows = [Row(f"neural collapse NC1-NC4 + NCC, {n:,} x {d}, {k} classes", t_ours, "s", t_np,
                "plain NumPy, same formulas", t_ours / t_np, "< 1 s, <= 1.0 x NumPy",
                t_ours < 1.0 and t_ours <= t_np,
                note=f"largest relative difference to NumPy's numbers {agree:.1e}; NC4 "
                     f"{c.nc4:.4f} vs {ref['nc4']:.4f}")]

    queries = 2_000 if ctx.quick else 10_000
    xt = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    yt = torch.from_numpy(y)
    q = slice(0, queries)

    def ours_knn() -> None:
        weighted_knn(x, y, x[q], num_classes=k, exclude=np.arange(queries))

    def dino() -> None:
        knn_classifier(xt, yt, xt[q], yt[q], 20, 0.07, num_classes=k)

    t_knn, t_dino = alternating(ours_knn, dino, repeats=max(1, ctx.repeats - 2))
    rows.append(Row(f"weighted 20-NN, {queries:,} queries x {n:,} x {d}", t_knn, "s", t_dino,
                    "DINO knn_classifier", t_knn / t_dino, "<= 1.2 x DINO", t_knn <= 1.2 * t_dino,
                    note="ours leaves each query's own row out (one dataset as bank and queries)"))
    y2 = (x @ np.random.default_rng(2).normal(size=(d, d)).astype(np.float32)).astype(np.float32)
    x64, y64 = x.astype(np.float64), y2.astype(np.float64)
    t_cka, t_ref = alternating(lambda: linear_cka(x, y2), lambda: feature_space_linear_cka(x64, y64),
                               repeats=ctx.repeats)
    rows.append(Row(f"linear CKA, {n:,} x {d} vs {n:,} x {d}", t_cka, "s", t_ref,
                    "the authors' feature_space_linear_cka", t_cka / t_ref, "info", None))
    return rows
