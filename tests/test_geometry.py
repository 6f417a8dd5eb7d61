"""Class centers, CenterLoss, cosine similarity and nearest vectors against reference oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from protoview.core import geometry
from protoview.core.geometry import (
    Centers,
    as_labels,
    as_matrix,
    center_loss,
    check_finite_tensor,
    class_centers,
    cosine_similarity_matrix,
    l2_normalize,
    nearest,
)
from protoview.errors import ParameterError
from tests.oracles.centerloss import CenterLoss


def random_data(seed: int, n: int = 200, dim: int = 7, classes: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32) * rng.uniform(0.5, 3.0)
    y = rng.integers(0, classes, n)
    return x, y


# ---------------------------------------------------------------- input checks


def test_as_matrix_accepts_tensor_and_list():
    out = as_matrix(torch.ones(2, 3, dtype=torch.float64), "features")
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (2, 3)
    assert as_matrix([[1, 2]], "features").dtype == np.float32


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.zeros((0, 3)), "empty"),
        (np.zeros((3, 0)), "empty"),
        (np.zeros(3), "2-D"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_as_matrix_rejects_bad_shapes(bad, fragment):
    with pytest.raises(ParameterError, match=fragment) as info:
        as_matrix(bad, "features")
    assert info.value.where == "features"


def test_as_matrix_counts_nan_and_inf_rows():
    x = np.ones((10, 4), dtype=np.float32)
    x[[1, 4, 7], 0] = np.nan
    x[7, 2] = np.nan
    x[9, 1] = np.inf
    with pytest.raises(ParameterError) as info:
        as_matrix(x, "features")
    assert str(info.value) == "features: features contain NaN in 3 rows and Inf in 1 row"


def test_check_finite_tensor():
    check_finite_tensor(torch.zeros(2, 2), "scores")
    with pytest.raises(ParameterError, match="NaN in 1 row"):
        check_finite_tensor(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), "scores")


def test_as_labels():
    assert as_labels(torch.tensor([0, 2, -1]), "labels").dtype == np.int64
    assert as_labels(np.array([1.0, -1.0]), "labels").tolist() == [1, -1]
    with pytest.raises(ParameterError, match="whole numbers"):
        as_labels(np.array([0.5]), "labels")
    with pytest.raises(ParameterError, match="-1 for unknown"):
        as_labels(np.array([0, -2]), "labels")
    with pytest.raises(ParameterError, match="expected 3"):
        as_labels(np.array([0, 1]), "labels", 3)
    with pytest.raises(ParameterError, match="1-D"):
        as_labels(np.zeros((2, 2), dtype=int), "labels")


def test_l2_normalize_matches_torch_including_zero_rows():
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    x[2] = 0
    np.testing.assert_allclose(
        l2_normalize(x), F.normalize(torch.from_numpy(x), dim=1).numpy(), atol=1e-7
    )


# ---------------------------------------------------------------- class centers


@pytest.mark.parametrize("seed", range(3))
def test_class_centers_equal_per_class_means(seed):
    x, y = random_data(seed)
    y[::7] = -1
    centers = class_centers(x, y, num_classes=5)
    for c in range(5):
        np.testing.assert_allclose(centers.vectors[c], x[y == c].mean(axis=0), rtol=1e-5, atol=1e-6)
        assert centers.counts[c] == (y == c).sum()
    assert centers.vectors.dtype == np.float32 and centers.labels.tolist() == list(range(5))
    assert centers.empty_classes.size == 0


def test_class_centers_empty_class_is_nan_and_listed():
    x, y = random_data(1, classes=3)
    centers = class_centers(x, y, num_classes=5)
    assert np.isnan(centers.vectors[3:]).all() and not np.isnan(centers.vectors[:3]).any()
    assert centers.empty_classes.tolist() == [3, 4]
    assert centers.counts[3:].tolist() == [0, 0]


def test_class_centers_normalisation_options():
    x, y = random_data(2)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    before = class_centers(x, y, normalize_features=True)
    np.testing.assert_allclose(before.vectors[1], unit[y == 1].mean(0), rtol=1e-5, atol=1e-6)
    after = class_centers(x, y, normalize_centers=True)
    np.testing.assert_allclose(np.linalg.norm(after.vectors, axis=1), 1.0, rtol=1e-6)
    raw = x[y == 2].mean(0)
    np.testing.assert_allclose(after.vectors[2], raw / np.linalg.norm(raw), rtol=1e-5, atol=1e-6)


def test_class_centers_torch_input_and_one_sample():
    centers = class_centers(torch.tensor([[1.0, 2.0]]), torch.tensor([0]))
    assert centers.vectors.tolist() == [[1.0, 2.0]] and centers.counts.tolist() == [1]


def test_class_centers_chunked_sums_match(monkeypatch):
    x, y = random_data(3, n=101)
    whole = class_centers(x, y).vectors
    monkeypatch.setattr(geometry, "CHUNK_ELEMENTS", 4 * 7 * 3)  # 3 rows per chunk
    np.testing.assert_allclose(class_centers(x, y).vectors, whole, rtol=1e-6, atol=1e-7)


def test_class_centers_bad_input():
    x, y = random_data(0)
    with pytest.raises(ParameterError, match="all are -1"):
        class_centers(x, np.full(len(y), -1))
    with pytest.raises(ParameterError, match="num_classes is 3") as info:
        class_centers(x, y, num_classes=3)
    assert info.value.where == "labels"
    with pytest.raises(ParameterError, match="at least 1"):
        class_centers(x, y, num_classes=0)
    with pytest.raises(ParameterError, match="199 entries"):
        class_centers(x, y[:-1])
    x[5, 0] = np.nan
    with pytest.raises(ParameterError, match="features contain NaN in 1 row"):
        class_centers(x, y)
    with pytest.raises(ParameterError, match="empty"):
        class_centers(np.zeros((0, 3)), np.zeros(0, dtype=int))


# ---------------------------------------------------------------- CenterLoss


def seed_center_loss(x: np.ndarray, y: np.ndarray, centers: np.ndarray) -> float:
    module = CenterLoss(torch.from_numpy(centers.astype(np.float64)))
    with torch.no_grad():
        return float(module(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y)))


@pytest.mark.parametrize("seed", range(5))
def test_center_loss_matches_seed(seed):
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(1, 12))
    x, y = random_data(
        seed, n=int(rng.integers(1, 300)), dim=int(rng.integers(1, 20)), classes=classes
    )
    centers = rng.standard_normal((classes, x.shape[1])).astype(np.float32)
    ours = center_loss(x, y, centers)
    assert ours == pytest.approx(seed_center_loss(x, y, centers), rel=1e-6, abs=1e-6)


def test_center_loss_with_own_centers_and_unknown_labels():
    x, y = random_data(4)
    y[:20] = -1
    centers = class_centers(x, y)
    known = y >= 0
    expected = np.mean(((x[known] - centers.vectors[y[known]]) ** 2).sum(1))
    assert center_loss(x, y, centers) == pytest.approx(expected, rel=1e-5)
    assert center_loss(x, y, centers) == pytest.approx(
        seed_center_loss(x[known], y[known], centers.vectors), rel=1e-6, abs=1e-6
    )


def test_center_loss_clamps_zero_distance_like_the_seed():
    x = np.ones((3, 2), dtype=np.float32)
    assert center_loss(x, np.zeros(3, dtype=int), x[:1]) == pytest.approx(1e-12, abs=1e-15)


def test_center_loss_bad_input():
    x, y = random_data(0, classes=3)
    centers = class_centers(x, y, num_classes=4)
    y[0] = 3  # a class whose center is NaN
    with pytest.raises(ParameterError, match=r"NaN for classes \[3\]"):
        center_loss(x, y, centers)
    with pytest.raises(ParameterError, match="dimension 2"):
        center_loss(x, y, np.zeros((4, 2)))
    with pytest.raises(ParameterError, match="4 centers"):
        center_loss(x, np.full(len(y), 4), np.zeros((4, 7)))
    with pytest.raises(ParameterError, match="all are -1"):
        center_loss(x, np.full(len(y), -1), np.zeros((4, 7)))
    with pytest.raises(ParameterError, match="Inf"):
        center_loss(x, y, np.full((4, 7), np.inf))


# ---------------------------------------------------------------- cosine similarity


def torch_cosine_oracle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.unsqueeze(1), b.unsqueeze(0), dim=2)


@pytest.mark.parametrize("seed", range(3))
def test_cosine_matrix_equals_torch_cosine_similarity(seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(int(torch.randint(1, 60, (1,), generator=gen)), 9, generator=gen) * 3
    b = torch.randn(int(torch.randint(1, 40, (1,), generator=gen)), 9, generator=gen)
    out = cosine_similarity_matrix(a, b)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch_cosine_oracle(a, b), atol=1e-6, rtol=0)
    as_numpy = cosine_similarity_matrix(a.numpy(), b.numpy())
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    np.testing.assert_allclose(as_numpy, out.numpy(), atol=1e-6)


def test_cosine_matrix_mixed_input_zero_rows_and_float64():
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    b = np.array([[1.0, 0.0]], dtype=np.float32)
    out = cosine_similarity_matrix(a, b)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.tensor([[0.0], [2**-0.5]], dtype=torch.float64))


def test_cosine_matrix_chunked_equals_whole(monkeypatch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((6, 4))
    whole = cosine_similarity_matrix(a, b)
    whole_t = cosine_similarity_matrix(torch.from_numpy(a), torch.from_numpy(b))
    monkeypatch.setattr(geometry, "CHUNK_ELEMENTS", 13)  # 2 rows per chunk
    np.testing.assert_array_equal(cosine_similarity_matrix(a, b), whole)
    torch.testing.assert_close(
        cosine_similarity_matrix(torch.from_numpy(a), torch.from_numpy(b)), whole_t
    )


@pytest.mark.parametrize("to_tensor", [False, True])
def test_cosine_matrix_bad_input(to_tensor):
    conv = torch.from_numpy if to_tensor else (lambda v: v)
    good = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(ParameterError, match="dimension 5") as info:
        cosine_similarity_matrix(conv(good), conv(np.ones((2, 5), dtype=np.float32)))
    assert info.value.where == "b"
    with pytest.raises(ParameterError, match="empty"):
        cosine_similarity_matrix(conv(np.ones((0, 4), dtype=np.float32)), conv(good))
    bad = good.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ParameterError, match="x contain NaN in 1 row") as info:
        cosine_similarity_matrix(conv(good), conv(bad), names=("f", "x"))
    assert info.value.where == "x"


# ---------------------------------------------------------------- nearest


def test_nearest_equals_brute_force_argmax():
    rng = np.random.default_rng(5)
    x, v = rng.standard_normal((80, 6)), rng.standard_normal((9, 6))
    classes = rng.integers(0, 3, 9)
    idx, cls = nearest(x, v, classes)
    expected = torch_cosine_oracle(torch.from_numpy(x), torch.from_numpy(v)).argmax(1).numpy()
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(cls, classes[expected])
    idx2, cls2 = nearest(torch.from_numpy(x), torch.from_numpy(v))
    np.testing.assert_array_equal(idx2, expected)
    np.testing.assert_array_equal(cls2, expected)
    assert idx.dtype == np.int64 and cls.dtype == np.int64


def test_nearest_skips_nan_rows_of_empty_classes():
    v = np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0]])
    idx, cls = nearest(np.array([[0.1, 1.0], [1.0, 0.2]]), v)
    assert idx.tolist() == [2, 0] and cls.tolist() == [2, 0]
    centers = Centers(v.astype(np.float32), np.arange(3), np.array([1, 0, 1]), np.array([1]))
    assert nearest(np.array([[0.0, 2.0]]), centers.vectors, centers.labels)[1].tolist() == [2]


def test_nearest_bad_input():
    x = np.ones((2, 2))
    with pytest.raises(ParameterError, match="all NaN"):
        nearest(x, np.full((2, 2), np.nan))
    with pytest.raises(ParameterError, match="dimension 3"):
        nearest(x, np.ones((2, 3)))
    with pytest.raises(ParameterError, match="non-empty"):
        nearest(x, np.ones((0, 2)))
    with pytest.raises(ParameterError, match="Inf"):
        nearest(x, np.array([[np.inf, 0.0]]))
    with pytest.raises(ParameterError, match="expected 3") as info:
        nearest(x, np.ones((3, 2)), vector_classes=[0, 1])
    assert info.value.where == "vector_classes"
    with pytest.raises(ParameterError, match="NaN"):
        nearest(np.array([[np.nan, 0.0]]), np.ones((1, 2)))
