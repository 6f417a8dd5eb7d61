"""Neural collapse NC1-NC4 and the proxy-to-center cosines (core/collapse.py) against the
reference implementation, rhubarbwu/neural-collapse (tests/oracles/neural_collapse_reference.py,
commit c05a0b8), run in float64 on random features, labels and weights; multi-proxy heads
against PyCIL's reduction; collapsed geometry; bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from protoview.core.collapse import neural_collapse
from protoview.core.geometry import class_sums
from protoview.core.heads import CosineLinear
from protoview.errors import ParameterError
from tests.oracles import neural_collapse_reference as ref


def _data(seed: int, n: int = 400, d: int = 12, k: int = 6, spread: float = 2.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class has samples
    x = (rng.normal(size=(k, d))[y] * spread + rng.normal(size=(n, d))).astype(np.float32)
    w = rng.normal(size=(k, d)).astype(np.float32)
    return x, y, w


def _reference(x, y, w, k):
    """The reference's numbers, as its examples/mnist.py measures them, in float64."""
    d = x.shape[1]
    X, Y, W = torch.from_numpy(x).double(), torch.from_numpy(y), torch.from_numpy(w).double()
    means_acc = ref.MeanAccumulator(k, d, "cpu", dtype=torch.float64)
    means_acc.accumulate(X, Y)
    M, mG = means_acc.compute()
    covar = ref.CovarAccumulator(k, d, "cpu", dtype=torch.float64, M=M)
    covar.accumulate(X, Y, M)
    dec = ref.DecAccumulator(k, d, "cpu", dtype=torch.float64, M=M, W=W)
    dec.accumulate(X, Y, W, M)  # the manual nearest-class-centre path (no faiss index)
    cosine = ref.tiling  # the inner-product kernel over the normalised centred means
    return {
        "nc1": ref.covariance_ratio(covar.compute(), M, mG),
        "equinorm": ref.mean_norms(M, mG, [lambda v: v.std() / v.mean()]).item(),
        "equiangularity": math.sqrt(ref.kernel_stats(
            M, mG, kernel=lambda m, tile_size=None: cosine(m, lambda a, b: a @ b.mT, tile_size))[1]),
        "etf_error": ref.simplex_etf_error(M, mG),
        "nc3_per_class": ref.distance_norms(W, M, mG).numpy(),
        "self_duality_error": ref.self_duality_error(W, M, mG),
        "proxy_center_cosine": ref.similarities(W, M, cos=True).numpy(),
        "nc4": ref.clf_ncc_agreement(dec),
        "center_norms": ref.mean_norms(M, mG).numpy(),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_reference_on_random_features_labels_and_weights(seed):
    x, y, w = _data(seed)
    preds = (x.astype(np.float64) @ w.T.astype(np.float64)).argmax(1)  # the reference's X @ W.T
    ours = neural_collapse(x, y, head_rows=w, head_predictions=preds)
    theirs = _reference(x, y, w, 6)
    # Exactly the reference's arithmetic, or float64 rounding of the same formula in another
    # order (NC1: in the span of the means instead of pinv of a D x D matrix; norms without
    # its + eps): relative 1e-12. Equiangularity: the reference's tiling writes the cosines
    # into a float32 grid (torch.zeros' default dtype), so it agrees to float32's 1e-7.
    for key in ("nc1", "equinorm", "etf_error", "self_duality_error"):
        assert getattr(ours, key) == pytest.approx(theirs[key], rel=1e-12, abs=1e-14), key
    assert ours.equiangularity == pytest.approx(theirs["equiangularity"], rel=1e-6)
    for key in ("nc3_per_class", "proxy_center_cosine", "center_norms"):
        np.testing.assert_allclose(getattr(ours, key), theirs[key], rtol=1e-12, atol=1e-14)
    assert ours.nc3 == pytest.approx(theirs["nc3_per_class"].mean(), rel=1e-12)
    assert ours.nc4 == theirs["nc4"]  # the same decisions, sample for sample
    ncc = (((x[:, None, :].astype(np.float64) - _means(x, y, 6)[None]) ** 2).sum(2)).argmin(1)
    np.testing.assert_array_equal(ours.ncc_predictions, ncc)


def _means(x, y, k):
    return np.stack([x[y == c].astype(np.float64).mean(0) for c in range(k)])


def test_imbalanced_classes_and_an_empty_class_are_measured_over_the_classes_present():
    x, y, w = _data(3, k=5)
    keep = (y != 2) | (np.arange(len(y)) % 7 == 0)  # class 2 rare
    x, y = x[keep], y[keep]
    y = np.where(y == 4, -1, y)  # class 4 unknown: no samples, left out
    ours = neural_collapse(x, y, num_classes=5, head_rows=w, head_predictions=y.clip(0))
    assert ours.classes.tolist() == [0, 1, 2, 3]
    known = y >= 0
    theirs = _reference(x[known], y[known], w[:4], 4)
    assert ours.nc1 == pytest.approx(theirs["nc1"], rel=1e-12)
    assert ours.etf_error == pytest.approx(theirs["etf_error"], rel=1e-12)
    np.testing.assert_allclose(ours.nc3_per_class, theirs["nc3_per_class"], rtol=1e-12)
    np.testing.assert_array_equal(ours.counts, np.bincount(y[known], minlength=4))
    assert ours.ncc_predictions.shape == (len(y),)  # every sample gets its nearest class mean


def test_a_cosine_head_is_used_by_direction():
    x, y, w = _data(4)
    scaled = w * np.linspace(0.1, 10, len(w))[:, None].astype(np.float32)
    ours = neural_collapse(x, y, head_rows=scaled, cosine_head=True)
    unit = scaled.astype(np.float64) / np.linalg.norm(scaled.astype(np.float64), axis=1, keepdims=True)
    theirs = _reference(x, y, unit, 6)
    assert ours.self_duality_error == pytest.approx(theirs["self_duality_error"], rel=1e-12)
    assert ours.nc3 == pytest.approx(theirs["nc3_per_class"].mean(), rel=1e-12)
    linear = neural_collapse(x, y, head_rows=scaled)  # a linear head's norms count in the ETF form
    assert linear.self_duality_error != pytest.approx(ours.self_duality_error, rel=1e-6)


def test_several_proxies_per_class_are_reduced_as_pycils_head_reduces_them():
    """nb_proxy = 3: the proxy-to-center cosine is the head's own reduced similarity at the
    class mean (CosineLinear with to_reduce, no sigma); NC3 uses each class's normalised
    proxies weighed by that softmax attention."""
    x, y, _ = _data(5, d=10, k=4)
    head = CosineLinear(10, 4, nb_proxy=3, to_reduce=True, sigma=False)
    rows = head.weight.detach().double().numpy()
    ours = neural_collapse(x, y, head_rows=rows, nb_proxy=3, cosine_head=True)
    means = _means(x, y, 4)
    with torch.no_grad():
        reduced = head.double()(torch.from_numpy(means)).numpy()
    np.testing.assert_allclose(ours.proxy_center_cosine, np.diag(reduced), rtol=1e-6)
    unit = rows.reshape(4, 3, -1) / np.linalg.norm(rows.reshape(4, 3, -1), axis=2, keepdims=True)
    sims = np.einsum("kpd,kd->kp", unit, means / np.linalg.norm(means, axis=1, keepdims=True))
    attention = np.exp(sims) / np.exp(sims).sum(1, keepdims=True)
    merged = np.einsum("kp,kpd->kd", attention, unit)
    theirs = _reference(x, y, merged, 4)
    np.testing.assert_allclose(ours.nc3_per_class, theirs["nc3_per_class"], rtol=1e-10)
    # three copies of one row per class: the same numbers as a one-proxy head of that row
    single = rows.reshape(4, 3, -1)[:, 0]
    copies = np.repeat(single, 3, axis=0)
    tripled = neural_collapse(x, y, head_rows=copies, nb_proxy=3, cosine_head=True)
    one = neural_collapse(x, y, head_rows=single, cosine_head=True)
    np.testing.assert_allclose(tripled.nc3_per_class, one.nc3_per_class, rtol=1e-12)
    np.testing.assert_allclose(tripled.proxy_center_cosine, one.proxy_center_cosine, rtol=1e-12)


def test_a_collapsed_simplex_etf_reads_zero():
    """Features at the vertices of a simplex ETF (plus 1e-6 noise), classifier = the means:
    NC1, equinorm, equiangularity, ETF distance and NC3 all ~0, NC4 = 100%."""
    k, d = 5, 8
    etf = np.sqrt(k / (k - 1)) * (np.eye(k) - 1 / k)
    means = np.zeros((k, d))
    means[:, :k] = etf
    y = np.repeat(np.arange(k), 30)
    rng = np.random.default_rng(0)
    x = means[y] + 1e-6 * rng.normal(size=(len(y), d))
    preds = (x @ means.T).argmax(1)
    c = neural_collapse(x.astype(np.float32), y, head_rows=means, head_predictions=preds)
    assert c.nc1 < 1e-9 and c.equinorm < 1e-5 and c.equiangularity < 1e-5
    assert c.etf_error < 1e-5 and c.nc3 < 1e-5 and c.self_duality_error < 1e-5
    assert c.nc4 == 1.0
    np.testing.assert_allclose(c.proxy_center_cosine, 1.0, atol=1e-5)


def test_class_sums_equal_numpy_add_at_to_the_bit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 7)).astype(np.float32)
    y = rng.integers(0, 9, 3000)
    sums, counts = class_sums(x, y, 10)
    expected = np.zeros((10, 7))
    np.add.at(expected, y, x.astype(np.float64))
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(counts, np.bincount(y, minlength=10))


def test_bad_inputs_are_refused_with_one_line():
    x, y, w = _data(6)
    with pytest.raises(ParameterError, match="at least 2 classes, got 1"):
        neural_collapse(x, np.zeros(len(x), np.int64))
    with pytest.raises(ParameterError, match="at least 2 classes, got 0"):
        neural_collapse(x, np.full(len(x), -1))
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN in 1 row"):
        neural_collapse(bad, y)
    with pytest.raises(ParameterError, match="head_rows"):
        neural_collapse(x, y, head_rows=w[:, :5])
    with pytest.raises(ParameterError, match="head_rows"):
        neural_collapse(x, y, head_rows=w, nb_proxy=2)
    with pytest.raises(ParameterError, match="hold class 5 but there are 3"):
        neural_collapse(x, y, num_classes=3)
    with pytest.raises(ParameterError, match="entries, expected"):
        neural_collapse(x, y[:-1])
    with pytest.raises(ParameterError, match="head_predictions"):
        neural_collapse(x, y, head_predictions=y[:-2])


def test_one_sample_per_class_has_no_within_class_variability():
    x, y, _ = _data(7, n=6, k=6)
    c = neural_collapse(x, y)
    assert c.nc1 == 0.0 and c.nc3 is None and c.nc4 is None and c.proxy_center_cosine is None
    np.testing.assert_array_equal(c.ncc_predictions, y)
