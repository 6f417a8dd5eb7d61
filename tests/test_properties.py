"""Property tests (hypothesis) for the pure core functions: any valid input, not examples.

Sinkhorn's marginals hold, class centers ignore sample order, k-means assignments are in
range with finite densities. (Snapshot write -> read is the identity: test_snapshot.py.)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protoview.core.cluster import kmeans_prototypes
from protoview.core.geometry import class_centers
from protoview.core.sinkhorn import sinkhorn_knopp
from protoview.core.warnings import ProtoviewWarning

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def score_matrices(draw):
    n = draw(st.integers(2, 40))
    k = draw(st.integers(2, 8))
    return draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-1, 1, allow_nan=False)))


@SETTINGS
@given(scores=score_matrices(), eps=st.floats(1e-3, 1.0), iters=st.integers(1, 5))
def test_sinkhorn_rows_are_distributions_for_any_scores(scores, eps, iters):
    """SwAV's last sweep normalises each sample: rows sum to 1, every entry in [0, 1], no
    NaN/Inf, however sharp epsilon is (the seed's exp(out/eps) overflows at 1e-3)."""
    plan = sinkhorn_knopp(scores, epsilon=eps, n_iters=iters).numpy()
    assert plan.shape == scores.shape and np.isfinite(plan).all()
    assert (plan >= 0).all() and (plan <= 1 + 1e-9).all()
    np.testing.assert_allclose(plan.sum(1), 1.0, atol=1e-9)


@SETTINGS
@given(scores=score_matrices(), eps=st.floats(0.2, 1.0),
       weights=st.lists(st.floats(0.5, 2.0), min_size=8, max_size=8))
def test_sinkhorn_target_marginals_hold_at_convergence(scores, eps, weights):
    """Run long enough, each target receives its share of the samples: column sums of the
    plan are N x target_marginals (uniform or given)."""
    n, k = scores.shape
    r = np.asarray(weights[:k]) / np.sum(weights[:k])
    plan = sinkhorn_knopp(scores, epsilon=eps, n_iters=2000, target_marginals=r).numpy()
    np.testing.assert_allclose(plan.sum(0), n * r, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(plan.sum(1), 1.0, atol=1e-9)


@SETTINGS
@given(data=st.data())
def test_class_centers_do_not_depend_on_sample_order(data):
    n = data.draw(st.integers(1, 60))
    d = data.draw(st.integers(1, 6))
    c = data.draw(st.integers(1, 5))
    x = data.draw(hnp.arrays(np.float32, (n, d), elements=st.floats(-100, 100, width=32)))
    labels = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-1, c - 1)))
    assume((labels >= 0).any())  # all unknown is refused with a ParameterError (tested elsewhere)
    perm = data.draw(st.permutations(range(n)))
    for normalize in (False, True):
        a = class_centers(x, labels, c, normalize_features=normalize)
        b = class_centers(x[list(perm)], labels[list(perm)], c, normalize_features=normalize)
        np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-4, atol=1e-3, equal_nan=True)
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.empty_classes, b.empty_classes)
        assert a.counts.sum() == (labels >= 0).sum()


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kmeans_assignments_are_in_range_and_densities_finite(data):
    k = data.draw(st.integers(1, 6))
    n = data.draw(st.integers(k, 80))
    d = data.draw(st.integers(1, 8))
    x = data.draw(hnp.arrays(np.float32, (n, d), elements=st.floats(-10, 10, width=32)))
    seed = data.draw(st.integers(0, 3))
    with warnings.catch_warnings():  # few points a prototype: a warning line, tested elsewhere
        warnings.simplefilter("ignore", ProtoviewWarning)
        res = kmeans_prototypes(x, k, niter=5, nredo=1, seed=seed, use_gpu=False)
    assert res.assignments.shape == (n,) and res.assignments.dtype == np.int64
    assert ((res.assignments >= 0) & (res.assignments < k)).all()
    assert res.centroids.shape == (k, d) and np.isfinite(res.centroids).all()
    # PCL density is 0 for a cluster of identical points (as the reference computes it)
    assert res.density.shape == (k,) and np.isfinite(res.density).all() and (res.density >= 0).all()
    assert np.isfinite(res.distances).all() and (res.distances >= -1e-3).all()


def test_property_inputs_reach_torch_unchanged():
    """Guard for the tests above: numpy float64 scores stay float64 in the plan."""
    assert sinkhorn_knopp(np.zeros((3, 2)), n_iters=1).dtype == torch.float64
