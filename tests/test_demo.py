"""The built-in demo: digits split, shifts, the demo CNN, the committed checkpoints, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from protoview.core.demo import (
    DEMO_CLASS_NAMES,
    DEMO_TRANSFORM,
    SHIFTS,
    apply_shift,
    build_demo_model,
    demo_accuracy,
    demo_arrays,
    demo_checkpoint_path,
    demo_inputs,
    demo_split_indices,
    train_demo_models,
)
from protoview.core.demo import _data as demo
from protoview.core.heads import CosineLinear
from protoview.errors import CheckpointError, ParameterError, SnapshotError

RANDOM_SHIFTS = ("noise", "rotation", "mix")


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[:, None], data.target.astype(np.int64)


@pytest.fixture(scope="module")
def checkpoints():
    return {head: torch.load(demo_checkpoint_path(head), weights_only=True) for head in ("linear", "cosine")}


def _rebuild(payload):
    model = build_demo_model(**payload["protoview"]["arch_kwargs"])
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval()


# --- split and arrays -------------------------------------------------------------------


def test_split_is_deterministic_stratified_disjoint_and_complete(digits):
    _, labels = digits
    source, test = demo_split_indices()
    demo._digits_split.cache_clear()
    again_source, again_test = demo_split_indices()
    assert np.array_equal(source, again_source) and np.array_equal(test, again_test)
    assert np.intersect1d(source, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([source, test])), np.arange(len(labels)))
    for label in range(10):
        count = int((labels == label).sum())
        in_source = int((labels[source] == label).sum())
        assert abs(in_source - 0.7 * count) <= 1
        assert (labels[test] == label).sum() == count - in_source > 0


def test_arrays_match_sklearn_digits_with_documented_types(digits):
    images, labels = digits
    source, test = demo_split_indices()
    for part, rows in (("source", source), ("test", test)):
        x, y = demo_arrays(part)
        assert x.shape == (len(rows), 1, 8, 8) and x.dtype == np.float32
        assert y.shape == (len(rows),) and y.dtype == np.int64
        np.testing.assert_array_equal(x, images[rows])
        np.testing.assert_array_equal(y, labels[rows])
        assert set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("part", ["source", "test"])
def test_every_shift_stays_in_unit_range(part, shift):
    x, y = demo_arrays(part, shift, severity=5, seed=3)
    clean, clean_labels = demo_arrays(part)
    assert x.shape == clean.shape and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(y, clean_labels)


@pytest.mark.parametrize("shift", SHIFTS[1:])
def test_shift_changes_images_and_is_deterministic(shift):
    clean, _ = demo_arrays("test")
    first, _ = demo_arrays("test", shift, 3, seed=7)
    second, _ = demo_arrays("test", shift, 3, seed=7)
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - clean).mean() > 0.01
    other, _ = demo_arrays("test", shift, 3, seed=8)
    assert (not np.array_equal(first, other)) == (shift in RANDOM_SHIFTS)


def test_none_shift_is_the_identity():
    clean, _ = demo_arrays("test")
    for severity in (1, 5):
        np.testing.assert_array_equal(demo_arrays("test", "none", severity, seed=4)[0], clean)


@pytest.mark.parametrize("shift", SHIFTS[1:])
def test_higher_severity_is_a_larger_change(shift):
    clean, _ = demo_arrays("test")
    changes = [np.abs(demo_arrays("test", shift, s, seed=1)[0] - clean).mean() for s in range(1, 6)]
    assert all(b > a for a, b in zip(changes, changes[1:], strict=False)), changes


def test_shifts_follow_their_definitions():
    clean, _ = demo_arrays("test")
    severity = 2
    mean = clean.mean(axis=(1, 2, 3), keepdims=True)
    keep = demo.CONTRAST_KEEP[severity - 1]
    np.testing.assert_allclose(demo_arrays("test", "contrast", severity)[0], mean + keep * (clean - mean), atol=1e-6)
    noisy = demo_arrays("test", "noise", severity)[0]
    inside = (noisy > 0) & (noisy < 1)
    residual = (noisy - clean)[inside]
    assert abs(residual.std() - demo.NOISE_STD[severity - 1]) < 0.02
    blurred = demo_arrays("test", "blur", severity)[0]
    assert blurred.sum() < clean.sum() + 1e-3  # blurring with zero padding never adds ink
    assert np.abs(np.diff(blurred, axis=3)).mean() < np.abs(np.diff(clean, axis=3)).mean()
    mixed = demo_arrays("test", "mix", severity)[0]
    candidates = [demo_arrays("test", s, severity)[0] for s in ("noise", "blur", "contrast", "rotation")]
    matches = np.stack([np.all(mixed == c, axis=(1, 2, 3)) for c in candidates])
    assert matches.any(axis=0).all() and matches.any(axis=1).all()


@pytest.mark.parametrize(
    ("kwargs", "where", "listed"),
    [
        ({"shift": "fog"}, "shift", "noise"),
        ({"shift": ""}, "shift", "rotation"),
        ({"shift": None}, "shift", "contrast"),
        ({"severity": 0}, "severity", "1, 2, 3, 4, 5"),
        ({"severity": 6}, "severity", "1, 2, 3, 4, 5"),
        ({"severity": 2.5}, "severity", "1, 2, 3, 4, 5"),
        ({"severity": True}, "severity", "1, 2, 3, 4, 5"),
        ({"severity": "3"}, "severity", "1, 2, 3, 4, 5"),
        ({"part": "train"}, "part", "source, test"),
        ({"seed": -1}, "seed", ">= 0"),
        ({"seed": 0.5}, "seed", ">= 0"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs, where, listed):
    with pytest.raises(ParameterError) as info:
        demo_arrays(**kwargs)
    assert info.value.where == where and listed in info.value.problem


def test_apply_shift_on_odd_inputs():
    empty = np.zeros((0, 1, 8, 8), np.float32)
    one = demo_arrays("test")[0][:1]
    original = one.copy()
    for shift in SHIFTS:
        assert apply_shift(empty, shift).shape == (0, 1, 8, 8)
        out = apply_shift(one, shift, 4, seed=2)
        assert out.shape == (1, 1, 8, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(one, original)  # the input is never modified
    nan = one.copy()
    nan[0, 0, 0, 0] = np.nan
    for bad, problem in ((nan, "NaN"), (one[0], "(N, C, H, W)"), (one * 3, "[0, 1]")):
        with pytest.raises(ParameterError, match="images") as info:
            apply_shift(bad, "noise")
        assert problem in info.value.problem


def test_transform_is_the_source_statistics():
    source, _ = demo_arrays("source")
    assert DEMO_TRANSFORM.size == (8, 8) and DEMO_TRANSFORM.channels == 1
    assert DEMO_TRANSFORM.mean[0] == pytest.approx(float(source.astype(np.float64).mean()), abs=1e-5)
    assert DEMO_TRANSFORM.std[0] == pytest.approx(float(source.astype(np.float64).std()), abs=1e-5)
    assert DEMO_CLASS_NAMES == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    x = demo_arrays("test")[0][:5]
    expected = (x - DEMO_TRANSFORM.mean[0]) / DEMO_TRANSFORM.std[0]
    np.testing.assert_allclose(demo_inputs(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ParameterError, match="images"):
        demo_inputs(np.zeros((2, 3, 8, 8), np.float32))


# --- the model --------------------------------------------------------------------------


def test_build_demo_model_names_and_shapes():
    linear = build_demo_model()
    keys = set(linear.state_dict())
    assert {"classifier.weight", "classifier.bias"} <= keys
    assert all(k.startswith(("featurizer.", "classifier.")) for k in keys)
    assert isinstance(linear.featurizer, torch.nn.Sequential)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in linear.featurizer)
    cosine = build_demo_model("cosine", num_classes=7, nb_proxy=2, feature_dim=16)
    assert isinstance(cosine.classifier, CosineLinear) and cosine.classifier.to_reduce
    assert cosine.classifier.weight.shape == (14, 16) and "classifier.sigma" in cosine.state_dict()
    assert build_demo_model("cosine", sigma=False).classifier.sigma is None
    one = torch.rand(1, 1, 8, 8)
    assert cosine.eval().featurizer(one).shape == (1, 16)
    assert cosine(one).shape == (1, 7)
    assert build_demo_model(num_classes=1).eval()(one).shape == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"head": "mlp"}, "head"),
        ({"num_classes": 0}, "num_classes"),
        ({"nb_proxy": 0, "head": "cosine"}, "nb_proxy"),
        ({"nb_proxy": 3}, "nb_proxy"),
        ({"feature_dim": -4}, "feature_dim"),
        ({"feature_dim": 2.0}, "feature_dim"),
    ],
)
def test_build_demo_model_rejects_bad_arguments(kwargs, where):
    with pytest.raises(ParameterError) as info:
        build_demo_model(**kwargs)
    assert info.value.where == where


# --- the committed checkpoints ----------------------------------------------------------


def test_checkpoint_paths(monkeypatch, tmp_path):
    for head in ("linear", "cosine"):
        path = demo_checkpoint_path(head)
        assert path.name == f"demo_{head}.pt" and path.is_file()
        assert path.stat().st_size < 1_000_000
    assert demo_checkpoint_path() == demo_checkpoint_path("linear")
    with pytest.raises(ParameterError, match="linear, cosine"):
        demo_checkpoint_path("resnet")
    monkeypatch.setattr(demo.importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(CheckpointError, match="protoview demo train") as info:
        demo_checkpoint_path("cosine")
    assert info.value.where == str(tmp_path / "demo" / "demo_cosine.pt")


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_checkpoint_format(checkpoints, head):
    payload = checkpoints[head]
    assert set(payload) == {"protoview", "state_dict"}
    header = payload["protoview"]
    assert set(header) == {
        "format", "version", "arch", "arch_kwargs", "transform", "class_names", "trained_on", "metrics",
    }
    assert (header["format"], header["version"], header["arch"]) == ("protoview-checkpoint", 1, "protoview-demo-cnn")
    kwargs = header["arch_kwargs"]
    assert kwargs["head"] == head and kwargs["num_classes"] == 10 and kwargs["feature_dim"] == 64
    assert kwargs["nb_proxy"] == (3 if head == "cosine" else 1)
    assert header["transform"] == {
        "size": [8, 8], "channels": 1, "mean": list(DEMO_TRANSFORM.mean), "std": list(DEMO_TRANSFORM.std),
    }
    assert header["class_names"] == DEMO_CLASS_NAMES
    assert "source part (1258 images)" in header["trained_on"]
    assert set(header["metrics"]["shift_accuracy"]) == set(SHIFTS[1:])
    for name, tensor in payload["state_dict"].items():
        assert tensor.is_contiguous()
        assert tensor.dtype == (torch.int64 if name.endswith("num_batches_tracked") else torch.float32)


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_checkpoint_accuracy_clean_and_shifted(checkpoints, head):
    model = _rebuild(checkpoints[head])
    images, labels = demo_arrays("test")
    with torch.no_grad():
        predicted = model(demo_inputs(images)).argmax(1).numpy()
    clean = float((predicted == labels).mean())
    assert clean >= 0.97
    assert demo_accuracy(model) == pytest.approx(clean)
    metrics = checkpoints[head]["protoview"]["metrics"]
    assert metrics["clean_accuracy"] == pytest.approx(clean, abs=2e-3)
    noise = demo_accuracy(model, "test", "noise", 3)
    assert 0.35 <= noise <= 0.75 and noise <= clean - 0.2
    for shift in SHIFTS[1:]:
        accuracy = demo_accuracy(model, "test", shift, 3)
        assert accuracy <= clean - 0.1, shift
        assert metrics["shift_accuracy"][shift] == pytest.approx(accuracy, abs=2e-3)


def test_cosine_logits_by_hand(checkpoints):
    model = _rebuild(checkpoints["cosine"])
    weight = model.classifier.weight.detach()
    sigma = model.classifier.sigma.detach()
    assert weight.shape == (30, 64) and sigma.shape == (1,)
    x = demo_inputs(demo_arrays("test", "blur", 2)[0][:50])
    with torch.no_grad():
        features = model.featurizer(x)
        similarities = F.normalize(features, dim=1) @ F.normalize(weight, dim=1).T  # (50, 30)
        per_class = similarities.view(50, 10, 3)
        expected = sigma * (torch.softmax(per_class, dim=-1) * per_class).sum(-1)
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_demo_accuracy_restores_mode_and_checks_arguments(checkpoints):
    model = _rebuild(checkpoints["linear"]).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    demo_accuracy(model, "test", "noise", 1)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ParameterError, match="shift"):
        demo_accuracy(model, "test", "snow")


# --- training ---------------------------------------------------------------------------


def test_training_smoke_and_determinism(tmp_path):
    lines: list[str] = []
    rng_before = torch.get_rng_state()
    threads = torch.get_num_threads()
    report = train_demo_models(tmp_path / "a", epochs=1, seed=5, train_limit=96, say=lines.append)
    assert torch.equal(torch.get_rng_state(), rng_before) and torch.get_num_threads() == threads
    assert len(lines) == 2 and all("clean" in line and "noise" in line for line in lines)
    for head in ("linear", "cosine"):
        payload = torch.load(report[head]["path"], weights_only=True)
        assert payload["protoview"]["trained_on"].endswith("(96 images), seed 5, 1 epochs")
        assert payload["protoview"]["metrics"]["clean_accuracy"] == report[head]["clean_accuracy"]
        _rebuild(payload)
    card = json.loads((tmp_path / "a" / "card.json").read_text())
    assert set(card["models"]) == {"linear", "cosine"}
    again = train_demo_models(tmp_path / "b", epochs=1, seed=5, train_limit=96, heads=("linear",), say=lines.append)
    other = train_demo_models(tmp_path / "c", epochs=1, seed=6, train_limit=96, heads=("linear",), say=lines.append)
    first = torch.load(report["linear"]["path"], weights_only=True)["state_dict"]
    second = torch.load(again["linear"]["path"], weights_only=True)["state_dict"]
    third = torch.load(other["linear"]["path"], weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["classifier.weight"], third["classifier.weight"])


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"epochs": 0}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"heads": ("mlp",)}, "heads"),
        ({"heads": ()}, "heads"),
        ({"train_limit": 0}, "train_limit"),
    ],
)
def test_training_rejects_bad_arguments(tmp_path, kwargs, where):
    with pytest.raises(ParameterError) as info:
        train_demo_models(tmp_path, **kwargs)
    assert info.value.where == where
    assert list(tmp_path.iterdir()) == []


def test_training_into_an_impossible_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SnapshotError, match="output folder"):
        train_demo_models(blocker / "demo", epochs=1, train_limit=32)
    with pytest.raises(ParameterError, match="epochs"):  # the CLI's entry point forwards
        train_demo_models(tmp_path, epochs=0)


@pytest.mark.slow
def test_full_training_reaches_the_documented_accuracy(tmp_path):
    report = train_demo_models(tmp_path, say=lambda line: None)
    for head in ("linear", "cosine"):
        assert report[head]["clean_accuracy"] >= 0.97
        assert report[head]["shift_accuracy"]["noise"] <= report[head]["clean_accuracy"] - 0.2
