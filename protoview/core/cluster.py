"""k-means prototypes with faiss, and PCL's per-cluster concentration (density) phi.

Reproduces PCL's ``run_kmeans`` (seed 001_*, oracle ``tests/oracles/pcl_kmeans.py``): the
same ``faiss.Clustering`` settings, set explicitly because faiss 1.15's defaults differ
(niter 25, nredo 1, seed 1234, 256 / 39 points per centroid), the same ``index.search``
for distances and assignments, and the same density formula. Deviations, each tested:

- distances that faiss returns slightly below 0 (rounding in ``|x|^2 + |c|^2 - 2 x.c``) are
  clamped to 0 (the seed would take ``sqrt`` of them and get NaN);
- when every cluster has at most one point (e.g. ``k == N``) or all distances are 0, the seed
  divides by a zero mean; we return a uniform ``temperature`` instead.

Seeding (``init``), chosen by name:

- ``"auto"`` (the default): greedy k-means++ (as scikit-learn's) on a sample of 32 points a
  prototype, at least 3 draws (small N, the sample all the data: Lloyd from each, the best
  kept; else from the lowest potential's), then faiss's Lloyd iterations on up to 256 points
  a prototype (stopping when the objective improves by less than 0.1%), one more Lloyd
  iteration on every point when there are more, then faiss's search for the assignments;
  single-threaded below 2^31 multiply-adds a pass (``N k D``). ``bench/clustering.py``
  measures it against scikit-learn from 1,000 to 1,000,000 points (bench/RESULTS.md,
  "issue 24: k-means by size"). The path taken is in the result's ``notes``.
- ``"pcl"`` (old spelling ``"random"``): PCL's ``run_kmeans`` exactly (faiss's random sample
  and ``nredo`` full runs; the oracle tests compare this path).
- ``"kmeans++"``: greedy k-means++ on 50 points a prototype handed to PCL's faiss settings.

When ``N < k * min_points_per_centroid`` faiss would print its own "WARNING clustering N
points to k centroids" on stderr (the setting does nothing else); protoview gives faiss 0 and
says it as one :class:`~protoview.core.warnings.ProtoviewWarning` line instead (the result
is still valid).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import torch

from protoview.core.geometry import as_labels, as_matrix, l2_normalize
from protoview.errors import ParameterError


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of :func:`kmeans_prototypes`.

    Attributes
    ----------
    centroids: ``(k, D)`` float32, raw as faiss returns them (the best of ``nredo`` runs).
    centroids_normalized: ``(k, D)`` float32, L2-normalised (what PCL uses in its loss).
    assignments: ``(N,)`` int64 cluster of each sample (``index.search(x, 1)``).
    distances: ``(N,)`` float32 squared L2 distance to the assigned centroid (faiss ``D``).
    density: ``(k,)`` float32 PCL concentration phi, mean ``temperature``.
    inertia: sum of ``distances`` (as sklearn's ``inertia_``).
    seconds: wall time of training and search.
    used_gpu: whether a faiss GPU index was used.
    notes: one line: which path ran (seeding, points, iterations, threads).
    """

    centroids: np.ndarray
    centroids_normalized: np.ndarray
    assignments: np.ndarray
    distances: np.ndarray
    density: np.ndarray
    inertia: float
    seconds: float
    used_gpu: bool
    notes: str = ""


#: The seedings by name (``"random"``: the old spelling of ``"pcl"``).
INITS = ("auto", "pcl", "kmeans++", "random")
#: The auto path's sizes: seeding sample and Lloyd sample, in points a prototype; seeding
#: draws (at least); the relative objective change that stops Lloyd; below this many
#: multiply-adds a pass (N k D) everything runs on one thread (bench/RESULTS.md, issue 24:
#: on this 2-core machine shared with other jobs two OpenMP threads cost 10-20x at 10k).
AUTO_SEED_PER_CENTROID = 32
AUTO_TRAIN_PER_CENTROID = 256
AUTO_DRAWS = 3
AUTO_EARLY_STOP = 1e-3
AUTO_ONE_THREAD_BELOW = 2**31
_THREADS: list = []


def _check_int(value: Any, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(where, f"must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ParameterError(where, f"must be {bound}, got {value}")
    return int(value)


def _check_temperature(temperature: Any) -> float:
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ParameterError("temperature", f"must be a number, got {temperature!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(
            "temperature", f"must be a positive finite number, got {temperature!r}"
        )
    return value


def _resolve_gpu(use_gpu: bool | None) -> bool:
    available = (
        hasattr(faiss, "StandardGpuResources")
        and faiss.get_num_gpus() > 0
        and torch.cuda.is_available()
    )
    if use_gpu is None:
        return available
    if use_gpu and not available:
        why = ("this faiss is the CPU build (pip uninstall faiss-cpu && pip install faiss-gpu)"
               if not hasattr(faiss, "StandardGpuResources")
               else "faiss or torch sees no CUDA GPU here")
        raise ParameterError("use_gpu", f"a GPU was asked for, but {why}")
    return bool(use_gpu)


def _flat_l2_index(dim: int, gpu: bool) -> tuple[Any, Any]:
    """``(index, resources)``: ``GpuIndexFlatL2`` (float32) on the current CUDA device, or
    ``IndexFlatL2``. Keep ``resources`` alive as long as the index."""
    if not gpu:
        return faiss.IndexFlatL2(dim), None
    resources = faiss.StandardGpuResources()
    config = faiss.GpuIndexFlatConfig()
    config.useFloat16 = False
    config.device = torch.cuda.current_device()
    return faiss.GpuIndexFlatL2(resources, dim, config), resources


def kmeans_prototypes(
    features: Any,
    k: int,
    *,
    niter: int = 20,
    nredo: int = 5,
    seed: int = 0,
    max_points_per_centroid: int = 1000,
    min_points_per_centroid: int = 10,
    temperature: float = 0.2,
    use_gpu: bool | None = None,
    normalize: bool = False,
    verbose: bool = False,
    init: str = "auto",
) -> KMeansResult:
    """k-means prototypes of the features with PCL's settings, plus their density phi.

    Parameters
    ----------
    features:
        ``(N, D)`` float features (numpy or torch); converted to float32 C-contiguous.
    k:
        Number of prototypes, ``1 <= k <= N``.
    niter, nredo, seed, max_points_per_centroid, min_points_per_centroid:
        ``faiss.Clustering`` settings (PCL's values by default). faiss keeps the best of the
        ``nredo`` runs and subsamples to ``k * max_points_per_centroid`` points when more.
    temperature:
        Mean of the returned density (PCL's ``args.temperature``).
    use_gpu:
        ``None``: a faiss GPU index when faiss and torch see a CUDA GPU; ``True``: require
        one; ``False``: CPU.
    normalize:
        L2-normalise the features first (distances are then in that space).
    verbose:
        Let faiss print its progress.
    init:
        ``"auto"`` (default): chosen by size, see the module docstring (``nredo``: the
        k-means++ draws, at least 3; ``max_points_per_centroid`` unused);
        ``"pcl"`` (or ``"random"``): faiss's (and PCL's) seeding, a random sample of the
        points, ``nredo`` full runs;
        ``"kmeans++"``: greedy k-means++ seeding (:func:`kmeanspp_seeds`) on a subsample of
        ``min(N, 50 k)`` points, handed to faiss as its starting centroids. On separated
        clusters random seeding often leaves two centroids in one cluster and one across
        two (bench: 1.8x sklearn's inertia); k-means++ finds them.

    Returns
    -------
    KMeansResult
    """
    # Long on purpose: each argument checked with its own message, then PCL's faiss
    # settings one by one and its density; split, the one recipe would be scattered.
    x = as_matrix(features, "features")
    n, dim = x.shape
    k = _check_int(k, "k", 1)
    if k > n:
        raise ParameterError("k", f"is {k} but there are only {n} samples (k must be <= N)")
    niter = _check_int(niter, "niter", 1)
    nredo = _check_int(nredo, "nredo", 1)
    seed = _check_int(seed, "seed", 0, 2**31 - 1)
    max_points = _check_int(max_points_per_centroid, "max_points_per_centroid", 1)
    min_points = _check_int(min_points_per_centroid, "min_points_per_centroid", 0)
    temperature = _check_temperature(temperature)
    gpu = _resolve_gpu(use_gpu)
    if init not in INITS:
        raise ParameterError("init", f"unknown k-means seeding {init!r}; use auto, pcl "
                                     "(or its old name random) or kmeans++")
    init = "pcl" if init == "random" else init
    if normalize:
        x = np.ascontiguousarray(l2_normalize(x))

    clus = faiss.Clustering(dim, k)
    clus.verbose = bool(verbose)
    clus.niter = niter
    clus.nredo = nredo
    clus.seed = seed
    clus.max_points_per_centroid = max_points
    clus.min_points_per_centroid = 0  # faiss only warns with it, raw on stderr: said below
    if len(x) < k * min_points:
        import warnings

        from protoview.core.warnings import ProtoviewWarning

        warnings.warn(ProtoviewWarning(
            f"k-means: {len(x)} point{'s' * (len(x) != 1)} for {k} prototype{'s' * (k != 1)}, "
            f"fewer than the {k * min_points} "
            f"({min_points} a prototype) faiss asks for; the prototypes are valid but rest on "
            "few points each"), stacklevel=2)

    start = time.perf_counter()
    if init == "auto":
        centroids, sq_dist, nearest, notes = _auto_kmeans(x, k, niter, nredo, seed, gpu)
    else:
        if init == "kmeans++":
            faiss.copy_array_to_vector(kmeanspp_seeds(x, k, seed).ravel(), clus.centroids)
        index, _resources = _flat_l2_index(dim, gpu)
        clus.train(x, index)
        sq_dist, nearest = index.search(x, 1)
        centroids = faiss.vector_to_array(clus.centroids).reshape(k, dim).astype(np.float32)
        notes = (f"k-means {init}: "
                 + ("PCL's seeding (faiss's random sample)" if init == "pcl" else
                    f"greedy k-means++ on {min(n, 50 * k):,} points")
                 + f", {nredo} run{'s' * (nredo != 1)} of {niter} iterations on "
                 f"{min(n, k * max_points):,} points (faiss)")
    seconds = time.perf_counter() - start
    assignments = nearest[:, 0].astype(np.int64)
    distances = np.maximum(sq_dist[:, 0], 0.0).astype(np.float32)
    return KMeansResult(
        centroids=centroids,
        centroids_normalized=l2_normalize(centroids),
        assignments=assignments,
        distances=distances,
        density=pcl_density(distances, assignments, k, temperature),
        inertia=float(distances.sum(dtype=np.float64)),
        seconds=seconds,
        used_gpu=gpu,
        notes=notes + (", GPU index" if gpu else ""),
    )


def _one_thread():
    """A context that runs the BLAS / OpenMP pools of faiss, numpy and torch on one thread
    (threadpoolctl's controller, made once)."""
    from threadpoolctl import ThreadpoolController

    if not _THREADS:
        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1)


def _auto_kmeans(x: np.ndarray, k: int, niter: int, nredo: int, seed: int,
                 gpu: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The ``"auto"`` path (module docstring): ``(centroids, squared distances (N, 1),
    nearest (N, 1), notes)``."""
    import contextlib

    n, dim = x.shape
    small = n * k * dim < AUTO_ONE_THREAD_BELOW and not gpu
    draws = max(AUTO_DRAWS, nredo)
    with _one_thread() if small else contextlib.nullcontext():
        rng = np.random.default_rng(seed)
        m = min(n, AUTO_SEED_PER_CENTROID * k)
        sample = x if m == n else x[np.sort(rng.choice(n, m, replace=False))]
        seeds = _greedy_kmeanspp(np.ascontiguousarray(sample, np.float32), k, rng, draws)
        train = min(n, AUTO_TRAIN_PER_CENTROID * k)
        # every point in the seeding sample (small N): Lloyd from each draw, the best kept
        runs = [_lloyd(x, s, niter, AUTO_TRAIN_PER_CENTROID, seed, gpu)
                for s in (seeds if m == n else seeds[:1])]
        centroids, index, _res, _obj = min(runs, key=lambda run: run[3])
        full = n > train
        if full:  # one Lloyd iteration on every point
            centroids, index, _res, _obj = _lloyd(x, centroids, 1, n, seed, gpu)
        sq_dist, nearest = index.search(x, 1)
    notes = (f"k-means auto: greedy k-means++ ({draws} draws on {m:,} points), faiss Lloyd "
             + ("from each, the best kept, " if m == n else "from the lowest potential's, ")
             + f"on {train:,} points (<= {niter} iterations, stop below "
             f"{AUTO_EARLY_STOP:g})" + (", 1 iteration on all points" if full else "")
             + (", 1 thread" if small else ""))
    return centroids, sq_dist, nearest, notes


def _lloyd(x: np.ndarray, init: np.ndarray, niter: int, per_centroid: int, seed: int,
           gpu: bool) -> tuple[np.ndarray, Any, Any, float]:
    """faiss's Lloyd iterations from ``init`` on up to ``per_centroid * k`` points of
    ``x``: ``(centroids, index holding them, resources, the last iteration's objective)``."""
    k, dim = init.shape
    clus = faiss.Clustering(dim, k)
    clus.niter = niter
    clus.seed = seed
    clus.max_points_per_centroid = per_centroid
    clus.min_points_per_centroid = 0
    clus.early_stop_threshold = AUTO_EARLY_STOP
    faiss.copy_array_to_vector(np.ascontiguousarray(init, np.float32).ravel(), clus.centroids)
    index, resources = _flat_l2_index(dim, gpu)
    clus.train(x, index)
    stats = clus.iteration_stats
    objective = stats.at(stats.size() - 1).obj if stats.size() else 0.0
    return faiss.vector_to_array(clus.centroids).reshape(k, dim), index, resources, objective


def _greedy_kmeanspp(sample: np.ndarray, k: int, rng: np.random.Generator,
                     draws: int) -> np.ndarray:
    """Greedy k-means++ seeds ``(draws, k, D)`` of ``sample`` (float32): ``draws``
    independent seedings run together (one matrix product a step), lowest potential
    first. Each next seed is the best of ``2 + log k`` points drawn with probability
    proportional to their squared distance to the nearest seed (as scikit-learn)."""
    m = sample.shape[0]
    sq = np.einsum("ij,ij->i", sample, sample)
    trials = 2 + int(np.log(k))
    rows = np.arange(draws)
    chosen = np.empty((draws, k), np.int64)
    chosen[:, 0] = rng.integers(m, size=draws)
    first = chosen[:, 0]
    d2 = np.maximum(sq[None] - 2.0 * (sample[first] @ sample.T) + sq[first][:, None], 0.0)
    for j in range(1, k):
        cum = np.cumsum(d2, axis=1, dtype=np.float64)
        picks = rng.random((draws, trials)) * cum[:, -1:]
        cands = np.stack([np.searchsorted(cum[r], picks[r], side="right") for r in rows])
        flat = cands.clip(max=m - 1).ravel()
        dc = sq[None] - 2.0 * (sample[flat] @ sample.T) + sq[flat][:, None]
        dc = np.maximum(dc, 0.0, out=dc).reshape(draws, trials, m)
        np.minimum(dc, d2[:, None], out=dc)
        best = dc.sum(2).argmin(1)
        chosen[:, j] = flat.reshape(draws, trials)[rows, best]
        d2 = dc[rows, best]
    return sample[chosen[np.argsort(d2.sum(1), kind="stable")]]


def kmeanspp_seeds(x: np.ndarray, k: int, seed: int = 0, per_centroid: int = 50) -> np.ndarray:
    """k-means++ starting centroids ``(k, D)`` float32, drawn from a seeded random subsample
    of ``min(N, per_centroid * k)`` rows of ``x``: each next seed is the best (lowest
    potential) of ``2 + log k`` points drawn with probability proportional to their
    squared distance to the nearest seed so far (greedy k-means++, as scikit-learn)."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    sample = x if n <= per_centroid * k else x[np.sort(rng.choice(n, per_centroid * k, replace=False))]
    sample = np.asarray(sample, np.float64)
    sq = np.einsum("ij,ij->i", sample, sample)
    chosen = [int(rng.integers(sample.shape[0]))]
    d2 = np.maximum(sq - 2.0 * sample @ sample[chosen[0]] + sq[chosen[0]], 0.0)
    trials = 2 + int(np.log(k))  # greedy k-means++ (as scikit-learn): best of a few draws
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            cands = rng.integers(sample.shape[0], size=1)
        else:
            cands = rng.choice(sample.shape[0], size=trials, p=d2 / total)
        dc = np.maximum(sq[None, :] - 2.0 * sample[cands] @ sample.T + sq[cands][:, None], 0.0)
        new_d2 = np.minimum(d2[None, :], dc)
        best = int(np.argmin(new_d2.sum(1)))
        chosen.append(int(cands[best]))
        d2 = new_d2[best]
    return sample[chosen].astype(np.float32)


def pcl_density(distances: Any, assignments: Any, k: int, temperature: float) -> np.ndarray:
    """PCL's concentration phi of each cluster.

    Per cluster with more than one point: ``mean(sqrt(d)) / log(n + 10)``; clusters with at
    most one point (empty ones too) get the largest of those; then clip to the 10th-90th
    percentile and scale to mean ``temperature``. If every value is 0 (all clusters have at
    most one point, or all distances are 0) the result is ``temperature`` everywhere (the
    seed would divide by zero).

    Parameters
    ----------
    distances: ``(N,)`` float squared L2 distance of each sample to its centroid (``>= 0``;
        tiny negatives from rounding are treated as 0).
    assignments: ``(N,)`` int cluster of each sample, in ``[0, k)``.
    k: number of clusters, ``>= 1``.
    temperature: positive mean of the result.

    Returns
    -------
    ``(k,)`` float32.
    """
    k = _check_int(k, "k", 1)
    temperature = _check_temperature(temperature)
    if isinstance(distances, torch.Tensor):
        distances = distances.detach().cpu().numpy()
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1 or d.shape[0] == 0:
        raise ParameterError(
            "distances", f"must be a non-empty 1-D array (N,), got shape {d.shape}"
        )
    if not np.isfinite(d).all():
        raise ParameterError(
            "distances", f"contain NaN or Inf in {int((~np.isfinite(d)).sum())} entries"
        )
    if d.min() < -1e-3:
        raise ParameterError("distances", f"must be squared distances >= 0, got {d.min():g}")
    a = as_labels(assignments, "assignments", d.shape[0])
    if a.min() < 0 or a.max() >= k:
        raise ParameterError("assignments", f"must lie in [0, {k}), got {a.min()} .. {a.max()}")

    counts = np.bincount(a, minlength=k)
    root_sums = np.bincount(a, weights=np.sqrt(np.maximum(d, 0.0)), minlength=k)
    density = np.zeros(k, dtype=np.float64)
    several = counts > 1
    density[several] = root_sums[several] / counts[several] / np.log(counts[several] + 10)
    density[~several] = density.max()
    density = density.clip(np.percentile(density, 10), np.percentile(density, 90))
    mean = density.mean()
    if not mean > 0:
        return np.full(k, temperature, dtype=np.float32)
    return (temperature * density / mean).astype(np.float32)
