"""A timeline of checkpoints: ten aligned maps (one fit, nine anchored updates, the k-NN
lists of the movers) against ten independent umap-learn fits of the same features."""

from __future__ import annotations

import time
import warnings

import numpy as np

from bench._common import Context, Row, blobs

CHECKPOINTS = 10


def _checkpoints(ctx: Context) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Ten feature sets of the same samples: from one to the next 10% of the samples move
    (towards another class's mean, with a little noise) and the other 90% keep their
    features exactly, as the issue's "unmoved points"; with the mask of the samples that
    moved at each step."""
    n = ctx.n_map or (2000 if ctx.quick else 10_000)
    d = 128 if ctx.quick else 512
    x, labels = blobs(n, d, 10)
    means = np.stack([x[labels == c].mean(0) for c in range(10)])
    rng = np.random.default_rng(2)
    features, moved = [x], [np.zeros(n, bool)]
    for _ in range(CHECKPOINTS - 1):
        m = rng.random(n) < 0.10
        nxt = features[-1].copy()  # the unmoved samples: exactly the same features
        noise = 0.01 * rng.normal(size=(int(m.sum()), d)).astype(np.float32)
        nxt[m] = 0.5 * nxt[m] + 0.5 * means[(labels[m] + 1) % 10] + noise
        features.append(nxt.astype(np.float32))
        moved.append(m)
    return features, labels, moved


def timeline_maps(ctx: Context) -> list[Row]:
    import umap

    from protoview.core.projection import layout_drift, warm_up
    from protoview.core.timeline import AlignedMaps, knn_lists

    features, labels, moved = _checkpoints(ctx)
    n, d = features[0].shape
    warm_up()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP().fit(features[0][:500])  # compile / load umap-learn's numba code
        t0 = time.perf_counter()
        for x in features:
            umap.UMAP().fit(x)
        t_umap = time.perf_counter() - t0
    t0 = time.perf_counter()
    maps, frames, held = AlignedMaps(seed=0), [], []
    for x in features:
        state = maps.next(x, labels)
        knn_lists(x)
        frames.append(state.embedding.copy())
        if state.map_held is not None:
            held.append(float(state.map_held[:n].mean()))
    t_ours = time.perf_counter() - t0
    drift = max(layout_drift(frames[i - 1], frames[i], ~moved[i]) for i in range(1, len(frames)))
    ratio = t_ours / t_umap
    return [Row(f"timeline of {CHECKPOINTS} checkpoints, {n:,} x {d}", t_ours, "s", t_umap,
                f"{CHECKPOINTS} x umap.UMAP().fit", ratio, "ratio <= 0.3, drift 0%",
                ratio <= 0.3 and drift == 0.0,
                note=f"one fit + {CHECKPOINTS - 1} anchored updates + the movers' k-NN lists; "
                     f"largest drift of the ~90% samples whose features did not change "
                     f"between two checkpoints: {drift:.2%} of the map diagonal; held in "
                     f"place per update: {min(held):.1%} to {max(held):.1%}",
                extra={"drift": drift, "held_min": min(held), "held_max": max(held)})]
