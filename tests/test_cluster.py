"""faiss k-means prototypes and PCL density against the ported ``run_kmeans`` oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoview.core.cluster import KMeansResult, kmeans_prototypes, pcl_density
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import ParameterError
from tests.oracles.pcl_kmeans import run_kmeans


def blobs(seed: int, n: int = 600, dim: int = 8, centers: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centers, dim)) * 3
    return (means[rng.integers(0, centers, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def seed_density_loop(
    dist: np.ndarray, im2cluster: np.ndarray, k: int, temperature: float
) -> np.ndarray:
    """The seed's density block, verbatim apart from the inputs."""
    Dcluster = [[] for c in range(k)]
    for im, i in enumerate(im2cluster):
        Dcluster[i].append(dist[im])
    density = np.zeros(k)
    for i, dist_i in enumerate(Dcluster):
        if len(dist_i) > 1:
            d = (np.asarray(dist_i) ** 0.5).mean() / np.log(len(dist_i) + 10)
            density[i] = d
    dmax = density.max()
    for i, dist_i in enumerate(Dcluster):
        if len(dist_i) <= 1:
            density[i] = dmax
    density = density.clip(np.percentile(density, 10), np.percentile(density, 90))
    return temperature * density / density.mean()


# ---------------------------------------------------------------- against the oracle


@pytest.mark.parametrize(
    "seed, n, dim, k, first_seed",
    [(0, 600, 8, 6, 0), (1, 300, 3, 25, 0), (2, 2500, 4, 2, 3), (3, 200, 1, 7, 1)],
)
def test_kmeans_matches_pcl_run_kmeans(seed, n, dim, k, first_seed):
    """Same data and seed: identical centroids / assignments, density to 1e-6.

    (2500 points for k=2 makes faiss subsample to k * 1000 points, as PCL does.)
    """
    x = blobs(seed, n, dim)
    oracle = run_kmeans(x, num_cluster=[k], temperature=0.2, first_seed=first_seed)
    ours = kmeans_prototypes(x, k, seed=first_seed, init="pcl")
    np.testing.assert_array_equal(ours.assignments, oracle["im2cluster"][0].numpy())
    np.testing.assert_array_equal(ours.centroids, oracle["raw_centroids"][0])
    np.testing.assert_allclose(ours.centroids_normalized, oracle["centroids"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(ours.density, oracle["density"][0].numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.distances, np.maximum(oracle["D"][0], 0), rtol=0, atol=0)
    old = kmeans_prototypes(x, k, seed=first_seed, init="random")  # the old name of pcl
    np.testing.assert_array_equal(old.centroids, ours.centroids)
    assert ours.notes.startswith("k-means pcl: PCL's seeding")


def test_kmeans_result_fields_are_consistent():
    x = blobs(4)
    result = kmeans_prototypes(torch.from_numpy(x), 6, nredo=2)
    assert isinstance(result, KMeansResult) and result.used_gpu is False
    assert result.centroids.shape == (6, 8) and result.centroids.dtype == np.float32
    assert result.assignments.dtype == np.int64 and result.distances.dtype == np.float32
    assert result.density.shape == (6,) and result.density.dtype == np.float32
    assert result.assignments.min() >= 0 and result.assignments.max() < 6
    recomputed = ((x - result.centroids[result.assignments]) ** 2).sum(1)
    np.testing.assert_allclose(result.distances, recomputed, rtol=1e-4, atol=1e-4)
    all_dist = ((x[:, None, :] - result.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(result.assignments, all_dist.argmin(1))
    assert result.inertia == pytest.approx(float(recomputed.sum()), rel=1e-5)
    assert result.density.mean() == pytest.approx(0.2, rel=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.centroids_normalized, axis=1), 1.0, rtol=1e-6)
    assert result.seconds >= 0


def test_kmeans_seeded_reproducibility():
    x = blobs(5, n=400)
    a = kmeans_prototypes(x, 5, seed=7)
    b = kmeans_prototypes(x.copy(), 5, seed=7)
    np.testing.assert_array_equal(a.assignments, b.assignments)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.density, b.density)


def test_kmeans_normalize_clusters_unit_vectors():
    x = blobs(6, n=300)
    result = kmeans_prototypes(x, 4, normalize=True)
    assert result.distances.max() <= 4.0 + 1e-5  # unit vectors: squared distance <= 4
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    recomputed = ((unit - result.centroids[result.assignments]) ** 2).sum(1)
    np.testing.assert_allclose(result.distances, recomputed, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- edge cases


def test_kmeans_k_equals_n_gives_singletons_and_uniform_density():
    x = blobs(7, n=9)
    with pytest.warns(ProtoviewWarning, match="9 points for 9 prototypes"):
        result = kmeans_prototypes(x, 9, temperature=0.3)
    assert sorted(result.assignments.tolist()) == list(range(9))
    np.testing.assert_allclose(result.distances, 0.0, atol=1e-5)
    np.testing.assert_allclose(result.density, 0.3)  # the seed would divide by 0 here


def test_kmeans_one_sample_and_one_dimension():
    with pytest.warns(ProtoviewWarning, match="1 point for 1 prototype,"):
        one = kmeans_prototypes(np.array([[1.0, 2.0, 3.0]]), 1)
    assert one.assignments.tolist() == [0] and one.density.tolist() == pytest.approx([0.2])
    np.testing.assert_allclose(one.centroids, [[1.0, 2.0, 3.0]])
    line = (
        np.concatenate([np.zeros(50), np.full(50, 10.0)])[:, None] + np.linspace(0, 1, 100)[:, None]
    )
    result = kmeans_prototypes(line, 2)
    assert len(set(result.assignments[:50])) == 1 and len(set(result.assignments[50:])) == 1
    assert result.assignments[0] != result.assignments[-1]


@pytest.mark.parametrize(
    "kwargs, where",
    [
        ({"k": 0}, "k"),
        ({"k": 11}, "k"),
        ({"k": 2.5}, "k"),
        ({"k": True}, "k"),
        ({"k": 2, "niter": 0}, "niter"),
        ({"k": 2, "nredo": 0}, "nredo"),
        ({"k": 2, "seed": -1}, "seed"),
        ({"k": 2, "max_points_per_centroid": 0}, "max_points_per_centroid"),
        ({"k": 2, "temperature": 0.0}, "temperature"),
        ({"k": 2, "temperature": float("nan")}, "temperature"),
        ({"k": 2, "temperature": "warm"}, "temperature"),
    ],
)
def test_kmeans_bad_parameters(kwargs, where):
    with pytest.raises(ParameterError) as info:
        kmeans_prototypes(blobs(0, n=10), **kwargs)
    assert info.value.where == where


def test_kmeans_bad_features():
    x = blobs(0, n=20)
    with pytest.raises(ParameterError, match="only 20 samples"):
        kmeans_prototypes(x, 21)
    x[[2, 5, 9], 1] = np.nan
    with pytest.raises(ParameterError, match="features contain NaN in 3 rows"):
        kmeans_prototypes(x, 2)
    with pytest.raises(ParameterError, match="empty"):
        kmeans_prototypes(np.zeros((0, 4), dtype=np.float32), 1)
    with pytest.raises(ParameterError, match="2-D"):
        kmeans_prototypes(np.zeros(5, dtype=np.float32), 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_kmeans_gpu_requested_without_gpu():
    with pytest.raises(ParameterError, match="GPU") as info:
        kmeans_prototypes(blobs(0, n=20), 2, use_gpu=True)
    assert info.value.where == "use_gpu"


@pytest.mark.gpu
def test_kmeans_gpu_index_agrees_with_cpu():
    x = blobs(8, n=2000, dim=16)
    gpu = kmeans_prototypes(x, 6, use_gpu=True)
    cpu = kmeans_prototypes(x, 6, use_gpu=False)
    assert gpu.used_gpu and not cpu.used_gpu
    assert gpu.inertia == pytest.approx(cpu.inertia, rel=1e-3)
    assert gpu.assignments.max() < 6 and np.isfinite(gpu.density).all()


# ---------------------------------------------------------------- density


@pytest.mark.parametrize("seed", range(6))
def test_pcl_density_matches_seed_loop(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 15))
    n = int(rng.integers(1, 80))
    assign = rng.integers(0, k, n)  # leaves empty clusters and singletons at random
    dist = rng.uniform(0.0, 5.0, n).astype(np.float32)
    expected = seed_density_loop(dist, assign, k, 0.1)
    if not np.isfinite(expected).all():  # the seed's 0/0: all clusters <= 1 point
        np.testing.assert_allclose(pcl_density(dist, assign, k, 0.1), 0.1)
    else:
        np.testing.assert_allclose(pcl_density(dist, assign, k, 0.1), expected, rtol=1e-6)


def test_pcl_density_guards_the_seed_division_by_zero():
    with np.errstate(invalid="ignore"):
        assert np.isnan(seed_density_loop(np.zeros(3), np.array([0, 1, 2]), 4, 0.2)).all()
    np.testing.assert_array_equal(
        pcl_density(np.zeros(3), [0, 1, 2], 4, 0.2), np.full(4, 0.2, np.float32)
    )
    np.testing.assert_array_equal(
        pcl_density(np.zeros(6), [0, 0, 1, 1, 2, 2], 3, 0.2), np.full(3, 0.2, np.float32)
    )


def test_pcl_density_treats_rounding_negatives_as_zero():
    dist = np.array([-1e-7, 4.0, 1.0, 1.0, 9.0], dtype=np.float32)
    assign = np.array([0, 0, 1, 1, 2])
    clean = pcl_density(np.maximum(dist, 0), assign, 3, 0.2)
    np.testing.assert_array_equal(pcl_density(dist, assign, 3, 0.2), clean)
    assert np.isfinite(clean).all()


def test_pcl_density_bad_input():
    with pytest.raises(ParameterError, match="non-empty"):
        pcl_density(np.zeros(0), np.zeros(0, dtype=int), 2, 0.2)
    with pytest.raises(ParameterError, match="NaN or Inf in 1"):
        pcl_density(np.array([1.0, np.nan]), [0, 1], 2, 0.2)
    with pytest.raises(ParameterError, match=r"\[0, 2\)") as info:
        pcl_density(np.ones(2), [0, 2], 2, 0.2)
    assert info.value.where == "assignments"
    with pytest.raises(ParameterError, match="expected 2"):
        pcl_density(np.ones(2), [0], 2, 0.2)
    with pytest.raises(ParameterError, match=">= 0"):
        pcl_density(np.array([1.0, -3.0]), [0, 1], 2, 0.2)
    with pytest.raises(ParameterError) as info:
        pcl_density(np.ones(2), [0, 0], 0, 0.2)
    assert info.value.where == "k"
    with pytest.raises(ParameterError) as info:
        pcl_density(np.ones(2), [0, 0], 1, -1.0)
    assert info.value.where == "temperature"


def test_kmeanspp_seeding_finds_separated_clusters_random_seeding_merges():
    """On 60 well-separated blobs, faiss's random seeding (PCL's) leaves some blobs
    without a centroid; k-means++ seeding gives each blob its own, reaching the optimum."""
    rng = np.random.default_rng(0)
    k, d = 60, 32
    means = rng.normal(size=(k, d)).astype(np.float32) * 20
    labels = rng.integers(0, k, 6000)
    x = (means[labels] + rng.normal(size=(6000, d))).astype(np.float32)
    optimum = float(sum(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum() for c in range(k)))
    plain = kmeans_prototypes(x, k, niter=20, nredo=1, seed=0, use_gpu=False, init="pcl")
    plus = kmeans_prototypes(x, k, niter=20, nredo=1, seed=0, use_gpu=False, init="kmeans++")
    assert plus.inertia <= optimum * 1.001 < plain.inertia
    # every blob gets exactly one centroid
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, plus.assignments) > 0.999
    again = kmeans_prototypes(x, k, niter=20, nredo=1, seed=0, use_gpu=False, init="kmeans++")
    np.testing.assert_array_equal(again.centroids, plus.centroids)  # seeded
    with pytest.raises(ParameterError, match="init"):
        kmeans_prototypes(x, k, init="greedy")


def test_few_points_per_prototype_is_one_protoview_warning_not_faiss_stderr(capfd):
    """faiss's own 'WARNING clustering 60 points to 10 centroids' went raw to the terminal."""
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    with pytest.warns(ProtoviewWarning, match="60 points for 10 prototypes, fewer than the 100"):
        few = kmeans_prototypes(x, 10, seed=3, init="pcl")
    assert "WARNING clustering" not in capfd.readouterr().err
    theirs = run_kmeans(x, num_cluster=[10], temperature=0.2, first_seed=3)
    np.testing.assert_array_equal(few.assignments, theirs["im2cluster"][0].numpy())  # same
    np.testing.assert_array_equal(few.centroids, theirs["raw_centroids"][0])


# ---------------------------------------------------------------- the auto path (issue 24)


@pytest.mark.parametrize("n, dim, k, spread", [(1000, 16, 20, 2.0), (1000, 16, 20, 0.5),
                                               (12000, 8, 10, 2.0)])
def test_auto_is_within_one_percent_of_sklearn(n, dim, k, spread):
    """The default path against scikit-learn's KMeans (its k-means++ on every point, as the
    bench's anchor) on Gaussian blobs; 12,000 points for k = 10 takes the sampled path
    (seeding on 320 points, Lloyd on 2,560, one iteration on all)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    means = rng.normal(size=(k, dim)).astype(np.float32) * spread
    x = (means[rng.integers(0, k, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    ours = kmeans_prototypes(x, k, nredo=1, use_gpu=False)
    sk = KMeans(n_clusters=k, max_iter=20, n_init=1, random_state=0).fit(x).inertia_
    assert ours.inertia <= 1.01 * sk
    assert ours.notes.startswith("k-means auto: greedy k-means++")
    assert ("1 iteration on all points" in ours.notes) == (n > 256 * k)
    # the PCL semantics of the result: assignments and distances from faiss's search
    np.testing.assert_allclose(ours.distances, ((x - ours.centroids[ours.assignments]) ** 2).sum(1),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ours.density, pcl_density(ours.distances, ours.assignments, k, 0.2))
    again = kmeans_prototypes(x, k, nredo=1, use_gpu=False)
    np.testing.assert_array_equal(again.centroids, ours.centroids)  # seeded


def test_auto_restores_the_thread_pools_and_handles_degenerate_data():
    import faiss

    threads = faiss.omp_get_max_threads()
    same = kmeans_prototypes(np.ones((12, 3), np.float32), 3, min_points_per_centroid=0)  # all 0
    assert same.inertia < 1e-6 and faiss.omp_get_max_threads() == threads  # faiss splits empties
    assert "1 thread" in same.notes
    one = kmeans_prototypes(np.array([[1.0, 2.0]], np.float32), 1, min_points_per_centroid=0)
    assert one.assignments.tolist() == [0]
    with pytest.raises(ParameterError, match="auto, pcl"):
        kmeans_prototypes(blobs(0, n=20), 2, init="greedy")
