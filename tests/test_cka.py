"""CKA (core/cka.py) against its authors' code (tests/oracles/cka_reference.py, the
google-research representation_similarity Demo.ipynb at 10bf941): equal to the last bit on
random features, the notebook's own printed numbers, the refusals of sides that are not the
same samples, and the report's comparison (core/measures.compare_representations)."""

from __future__ import annotations

import numpy as np
import pytest

from protoview.core.cka import check_same_samples, linear_cka, rbf_cka, rbf_subset
from protoview.core.measures import compare_representations
from protoview.errors import ParameterError
from tests.oracles import cka_reference as ref


def _pair(seed: int, n: int = 150, d1: int = 9, d2: int = 14):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = x @ rng.normal(size=(d1, d2)) + rng.normal(size=(n, d2))
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_and_rbf_cka_equal_the_authors_code_to_the_bit(seed):
    x, y = _pair(seed)
    for debiased in (False, True):
        assert linear_cka(x, y, debiased=debiased) == ref.feature_space_linear_cka(x, y, debiased)
        for threshold in (0.5, 1.0, 2.0):
            theirs = ref.cka(ref.gram_rbf(x, threshold), ref.gram_rbf(y, threshold), debiased)
            assert rbf_cka(x, y, threshold=threshold, debiased=debiased) == theirs


def test_the_notebooks_printed_numbers():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    assert round(linear_cka(x, y), 5) == 0.55761
    assert round(rbf_cka(x, y, threshold=0.5), 5) == 0.65483
    assert round(linear_cka(x, y, debiased=True), 5) == 0.51346
    # the example-space form of the notebook's first cell gives the same linear CKA
    assert linear_cka(x, y) == pytest.approx(ref.cka(ref.gram_linear(x), ref.gram_linear(y)), rel=1e-12)


def test_float32_features_are_measured_in_float64():
    x, y = _pair(3)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    assert linear_cka(x32, y32) == ref.feature_space_linear_cka(x32.astype(np.float64), y32.astype(np.float64))


def test_cka_is_invariant_to_rotation_and_scale_and_symmetric():
    x, y = _pair(4)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(9, 9)))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_rbf_above_max_samples_uses_the_same_random_rows_on_both_sides():
    x, y = _pair(5, n=300)
    rows = rbf_subset(300, 120, seed=7)
    assert rows.size == 120 and np.all(np.diff(rows) > 0)
    expected = ref.cka(ref.gram_rbf(x[rows]), ref.gram_rbf(y[rows]))
    assert rbf_cka(x, y, max_samples=120, seed=7) == expected
    assert rbf_subset(300, 300) is None and rbf_subset(300, None) is None


def test_sides_that_are_not_the_same_samples_are_refused_with_one_line():
    x, y = _pair(6)
    with pytest.raises(ParameterError, match="has 149 samples but the first side has 150") as err:
        linear_cka(x, y[:-1])
    assert "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="^--versus: is not the same data"):
        check_same_samples(10, 10, "cifar10c:fog:5", "cifar10c:snow:5", "--versus")
    check_same_samples(10, 10, "same", "same")
    check_same_samples(10, 10, None, "unknown on one side")
    with pytest.raises(ParameterError, match="^--versus-data: has 3 samples"):
        compare_representations(x, y[:3], where="--versus-data")
    with pytest.raises(ParameterError, match="not the same data"):
        compare_representations(x, y, identity_a="a", identity_b="b")


def test_bad_inputs():
    x, y = _pair(7)
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ParameterError, match="Inf in 1 row"):
        linear_cka(bad, y)
    with pytest.raises(ParameterError, match="at least 2 samples"):
        linear_cka(x[:1], y[:1])
    with pytest.raises(ParameterError, match="at least 4 samples"):
        linear_cka(x[:3], y[:3], debiased=True)
    with pytest.raises(ParameterError, match="threshold"):
        rbf_cka(x, y, threshold=0)
    with pytest.raises(ParameterError, match="max_samples"):
        rbf_cka(x, y, max_samples=2)
    assert np.isnan(linear_cka(np.ones((5, 2)), y[:5]))  # a constant side: no variance, NaN


def test_compare_representations_without_labels():
    x, y = _pair(8, n=200)
    c = compare_representations(x, y, rbf_max_samples=50, knn_k=5, seed=1)
    assert c.samples == 200 and c.rbf_samples == 50 and c.knn_k == 5
    assert c.linear_cka == linear_cka(x, y)
    assert c.rbf_cka == rbf_cka(x, y, max_samples=50, seed=1)
    assert 0.0 <= c.knn_consistency <= 1.0
    same = compare_representations(x, 2 * x)
    assert same.linear_cka == pytest.approx(1.0) and same.knn_consistency == 1.0
