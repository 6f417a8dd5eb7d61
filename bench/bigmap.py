"""The million-point map (issue 24 item 2): the first map of 1,000,000 x 512 against today's
path and umap-learn, its trustworthiness, a live step's map update at 50k and 750k points,
and the memory the map holds at 1M.

Run one at a time (each builds its own data):
``python -m bench --only bigmap_first,bigmap_trust,bigmap_step``. ``--quick`` divides every
size by 10. The data: ``classes`` classes, each an 8-dimensional Gaussian in its own random
subspace of 512 dimensions plus isotropic noise (a low intrinsic dimension, as real
features have; isotropic blobs have no neighbourhoods to keep)."""

from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np

from bench._common import Context, Row


def manifold_blobs(n: int, d: int = 512, classes: int = 100, latent: int = 8, seed: int = 0,
                   chunk: int = 100_000, noise: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 features and (n,) labels, generated in chunks (no float64 copy)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, d)).astype(np.float32) * 1.5
    bases = rng.normal(size=(classes, latent, d)).astype(np.float32) / np.sqrt(latent)
    labels = rng.integers(0, classes, n)
    x = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        lab = labels[s:s + chunk]
        blk = noise * rng.standard_normal(size=(len(lab), d), dtype=np.float32)
        z = rng.standard_normal(size=(len(lab), latent), dtype=np.float32)
        for k in np.unique(lab):
            m = lab == k
            blk[m] += means[k] + z[m] @ bases[k]
        x[s:s + chunk] = blk
    return x, labels.astype(np.int64)


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRss:
    """The peak resident memory above the start, polled every 20 ms in a thread."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def above(self) -> int:
        return self.peak - self.base


def _sample_trust(x: np.ndarray, emb: np.ndarray, rows: np.ndarray) -> float:
    """Trustworthiness (k=10) of ``emb`` on the sample ``rows``, in the unit vectors (the
    map is of directions)."""
    from sklearn.manifold import trustworthiness

    from protoview.core.projection import unit_rows

    return float(trustworthiness(unit_rows(x[rows]), emb[rows], n_neighbors=10))


def _fit(x, labels, **kw):
    from protoview.core.projection import fit_large_map

    t0 = time.perf_counter()
    res, fitted = fit_large_map(x, labels, np.zeros(len(x), bool),
                                max_points=min(len(x) - 1, 200_000), **kw)
    return res, fitted, time.perf_counter() - t0


def bigmap_first(ctx: Context) -> list[Row]:
    """1,000,000 x 512: ours (timed once, with its peak memory) against umap-learn fitted
    on a subsample (a fifth, or ``PROTOVIEW_BENCH_UMAP_N`` points) and extrapolated
    linearly (a lower bound: its k-NN search grows faster than N), and against today's path (200,000 fitted, the rest placed by cosine in all
    dimensions) when ``PROTOVIEW_BENCH_OLD_1M=1`` (10 minutes and more on two cores)."""
    import umap

    from protoview.core.projection import warm_up

    n = ctx.n_map or (100_000 if ctx.quick else 1_000_000)
    sub_n = int(os.environ.get("PROTOVIEW_BENCH_UMAP_N", n // 5))  # umap-learn's subsample
    warm_up()
    x, labels = manifold_blobs(n)
    with _PeakRss() as mem:
        res, fitted, t_ours = _fit(x, labels)
    load_ours = _load()
    arrays = x.nbytes + n * 2 * 4
    rows = [Row(f"first map, {n:,} x 512 (peak memory above the data)", mem.above / 2**20,
                "MiB", arrays / 2**20, "one copy of the N x d and N x 2 arrays",
                mem.above / arrays, "<= 3 copies", mem.above <= 3 * arrays,
                note=f"load {load_ours}")]
    sample = np.random.default_rng(7).choice(n, 10_000, replace=False)
    tw = _sample_trust(x, res.embedding, sample)
    keep = np.random.default_rng(1).choice(n, sub_n, replace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP(n_epochs=5).fit(x[:500])
        t0 = time.perf_counter()
        umap.UMAP().fit(x[keep])
        t_umap = (time.perf_counter() - t0) * n / sub_n
    load_umap = _load()
    rows.append(Row(f"first map, {n:,} x 512", t_ours, "s", t_umap,
                    f"umap-learn on {sub_n:,} points x {n // sub_n} (extrapolated)",
                    t_ours / t_umap, "<= 60 s", t_ours <= 60.0,
                    note=f"trustworthiness (k=10, 10k sample) {tw:.4f}; load {load_ours} "
                         f"(ours), {load_umap} (umap-learn); {res.notes}",
                    extra={"trust": tw, "fitted": len(fitted)}))
    if os.environ.get("PROTOVIEW_BENCH_OLD_1M") == "1":
        old, _, t_old = _fit(x, labels, fit_points=200_000, place_dims=None)
        tw_old = _sample_trust(x, old.embedding, sample)
        rows.append(Row(f"first map, {n:,} x 512", t_ours, "s", t_old,
                        "today's path (200,000 fitted, placed by cosine)", t_ours / t_old,
                        "", None, note=f"trustworthiness {tw:.4f} vs {tw_old:.4f}; load "
                                       f"{_load()}"))
    return rows


def bigmap_trust(ctx: Context) -> list[Row]:
    """Trustworthiness of ours against today's path at 300,000 x 512, where today's path
    fits 200,000 points (same data, same 10k sample)."""
    from protoview.core.projection import warm_up

    n = ctx.n_map or (30_000 if ctx.quick else 300_000)
    warm_up()
    x, labels = manifold_blobs(n)
    sample = np.random.default_rng(7).choice(n, min(n, 10_000), replace=False)
    ours, fitted, t_ours = _fit(x, labels)
    load_ours = _load()
    old, old_fitted, t_old = _fit(x, labels, fit_points=200_000, place_dims=None)
    load_old = _load()
    tw, tw_old = _sample_trust(x, ours.embedding, sample), _sample_trust(x, old.embedding, sample)
    return [Row(f"trustworthiness, {n:,} x 512 (k=10, 10k sample)", tw, "", tw_old,
                f"today's path ({len(old_fitted):,} fitted)", tw - tw_old, "within 0.02",
                tw >= tw_old - 0.02,
                note=f"ours fits {len(fitted):,} in {t_ours:.1f} s (load {load_ours}), today's "
                     f"{len(old_fitted):,} in {t_old:.1f} s (load {load_old})",
                extra={"trust": tw, "trust_old": tw_old, "s": t_ours, "s_old": t_old})]


def bigmap_step(ctx: Context) -> list[Row]:
    """A live step's map update (the 64 rows of its batch changed) at 50,000 and 750,000
    points: ``compute_geometry`` anchored on the previous state, as the window's step
    does; median of 3 steps. The first is below the point limit (the anchored update of
    every point), the second above (the subsample's update, the changed rows placed)."""
    from protoview.core.projection import warm_up
    from protoview.core.state import compute_geometry

    warm_up()
    sizes = (5_000, 75_000) if ctx.quick else (50_000, 750_000)
    limit = 50_000 if ctx.quick else None  # quick: the large path from 50,000 points
    rng = np.random.default_rng(3)
    out: dict[int, tuple[float, float, str]] = {}
    for n in sizes:
        x, labels = manifold_blobs(n, seed=1)
        state = compute_geometry(x, labels, seed=0, max_map_points=limit)
        anchors = state.joint_vectors()
        times, maps = [], []
        for _ in range(3):
            batch = rng.choice(n, 64, replace=False)
            x = x.copy() if n < 100_000 else x  # the step writes its batch's rows
            x[batch] += 0.5 * rng.standard_normal((64, x.shape[1]), dtype=np.float32)
            t0 = time.perf_counter()
            new = compute_geometry(x, labels, seed=0, previous_embedding=state.joint_embedding(),
                                   anchor_vectors=anchors, previous_knn=state.map_knn,
                                   max_map_points=limit)
            times.append(time.perf_counter() - t0)
            maps.append(new.metrics["map_seconds"])
            held = new.map_held
            joint = new.joint_vectors()
            anchors = np.where(held[:, None], anchors, joint)
            state = new
        out[n] = (float(np.median(times)), float(np.median(maps)), _load())
        del x, state, anchors, new, joint
    (small, big) = sizes
    t_s, m_s, l_s = out[small]
    t_b, m_b, l_b = out[big]
    return [
        Row(f"step -> map update, {big:,} points (64 rows changed)", m_b, "s", m_s,
            f"the same at {small:,} points", m_b / m_s, "flat in N (<= 2 x)", m_b <= 2 * m_s,
            note=f"the map's part of compute_geometry (metrics['map_seconds']: the joint "
                 f"vectors gathered, the anchored update); load {l_b} / {l_s}",
            extra={"map_big": m_b, "map_small": m_s}),
        Row(f"step -> state (compute_geometry), {big:,} points (64 rows changed)", t_b, "s",
            t_s, f"the same at {small:,} points", t_b / t_s, "", None,
            note="the whole state: the map plus centers and metrics over all N samples"),
    ]
