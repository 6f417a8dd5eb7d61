"""Feature extraction, the feature cache and feature files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from protoview.core.data import FeatureSet, open_dataset
from protoview.core.features import (
    FeatureResult,
    cached_features,
    extract_features,
    feature_cache_key,
    feature_file_attrs,
    read_feature_file,
    write_feature_file,
)
from protoview.core.heads import HeadInfo
from protoview.core.model import ModelInfo, SplitModel, TransformSpec
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import (
    CancelledError,
    DatasetError,
    ParameterError,
    ProtoviewError,
    SnapshotError,
)

SMALL = TransformSpec(size=(8, 8), channels=1, mean=(0.3,), std=(0.4,))


class CountingModel(SplitModel):
    """A small BatchNorm CNN that counts featurizer calls (so cache hits can be proven)."""

    def __init__(self, channels: int = 1, seed: int = 0, info: ModelInfo | None = None) -> None:
        torch.manual_seed(seed)
        featurizer = nn.Sequential(
            nn.Conv2d(channels, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        super().__init__(featurizer, nn.Linear(6, 4), info)
        self.calls = 0
        featurizer.register_forward_pre_hook(lambda *_: setattr(self, "calls", self.calls + 1))
        with torch.no_grad():  # non-trivial BN statistics so that train/eval mode matters
            featurizer[1].running_mean.uniform_(-0.5, 0.5)
            featurizer[1].running_var.uniform_(0.5, 2.0)


def bare_loop(model: SplitModel, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The reference: one plain inference_mode pass over pre-loaded tensors."""
    model.eval()
    with torch.inference_mode():
        features = model.featurizer(inputs)
        return features.numpy(), model.classifier(features).numpy()


def npz_dataset(tmp_path, n: int = 23, seed: int = 0, name: str = "imgs.npz"):
    rng = np.random.default_rng(seed)
    np.savez(
        tmp_path / name, x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=rng.integers(0, 4, n)
    )
    return open_dataset(tmp_path / name, SMALL)


class PlainDataset(Dataset):
    """A generic torch dataset (no get_batch, no identity): goes through a DataLoader."""

    def __init__(self, inputs: torch.Tensor, labels: np.ndarray) -> None:
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.inputs[i], int(self.labels[i])


@pytest.mark.parametrize("batch_size", [1, 5, 23, 256])
def test_in_memory_extraction_equals_bare_loop(tmp_path, batch_size):
    dataset = npz_dataset(tmp_path)
    model = CountingModel()
    model.train()
    result = extract_features(model, dataset, batch_size=batch_size, device="cpu")
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    features, logits = bare_loop(CountingModel(), inputs)
    assert result.features.dtype == np.float32 and result.logits.dtype == np.float32
    np.testing.assert_allclose(result.features, features, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logits, logits, atol=1e-5, rtol=0)
    assert result.labels.dtype == np.int64 and result.labels.tolist() == dataset.labels.tolist()
    assert result.predictions.tolist() == logits.argmax(1).tolist()
    assert model.training, "the caller's train/eval mode is restored"
    assert result.device == "cpu" and result.images_per_second > 0 and result.notes == []
    assert not result.fell_back


@pytest.mark.parametrize("num_workers", [0, 1])
def test_dataloader_path_preserves_order(num_workers):
    rng = np.random.default_rng(1)
    inputs = torch.from_numpy(rng.normal(size=(11, 1, 8, 8)).astype(np.float32))
    labels = rng.permutation(11) % 4
    result = extract_features(
        CountingModel(),
        PlainDataset(inputs, labels),
        batch_size=4,
        num_workers=num_workers,
        device="cpu",
    )
    features, logits = bare_loop(CountingModel(), inputs)
    np.testing.assert_allclose(result.features, features, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logits, logits, atol=1e-5, rtol=0)
    assert result.labels.tolist() == labels.tolist()


def test_image_folder_with_a_late_decode_failure(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(3):
        (tmp_path / "c").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
            tmp_path / "c" / f"{i}.png"
        )
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "c" / "bad.jpg")
    data = (tmp_path / "c" / "bad.jpg").read_bytes()
    (tmp_path / "c" / "bad.jpg").write_bytes(data[: len(data) // 2])
    dataset = open_dataset(tmp_path, SMALL)
    with pytest.warns(ProtoviewWarning, match=r"1 image\(s\) could not be decoded .*bad.jpg"):
        result = extract_features(
            CountingModel(), dataset, batch_size=2, num_workers=1, device="cpu"
        )
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    np.testing.assert_allclose(
        result.features, bare_loop(CountingModel(), inputs)[0], atol=1e-5, rtol=0
    )
    assert any("bad.jpg" in note for note in result.notes)


def test_progress_and_cancel(tmp_path):
    dataset = npz_dataset(tmp_path)
    seen: list[tuple[int, int]] = []
    extract_features(
        CountingModel(),
        dataset,
        batch_size=5,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]
    model = CountingModel()
    model.train()
    checks = []
    with pytest.raises(CancelledError):
        extract_features(
            model, dataset, batch_size=5, cancel=lambda: checks.append(1) or len(checks) > 2
        )
    assert model.calls == 2 and model.training


def test_oom_halves_the_batch_and_continues(tmp_path, monkeypatch):
    dataset = npz_dataset(tmp_path)
    model = CountingModel()
    original = model.featurizer.forward
    failures = []

    def flaky(x):
        if x.shape[0] > 4 and not failures:
            failures.append(x.shape[0])
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return original(x)

    monkeypatch.setattr(model.featurizer, "forward", flaky)
    result = extract_features(model, dataset, batch_size=8, device="cpu")
    assert failures == [8]
    assert result.notes == ["CUDA ran out of memory at batch size 8; continued with 4"]
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    np.testing.assert_allclose(
        result.features, bare_loop(CountingModel(), inputs)[0], atol=1e-5, rtol=0
    )


def test_oom_at_batch_size_one_is_an_error(tmp_path, monkeypatch):
    model = CountingModel()

    def always(x):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(model.featurizer, "forward", always)
    with pytest.raises(ProtoviewError, match="even at batch size 1"):
        extract_features(model, npz_dataset(tmp_path, n=3), batch_size=2, device="cpu")


def test_bad_extraction_input(tmp_path):
    model = CountingModel()
    np.savez(tmp_path / "f.npz", features=np.zeros((3, 2)), labels=np.arange(3))
    with pytest.raises(ParameterError, match="already holds features"):
        extract_features(model, open_dataset(tmp_path / "f.npz"))
    dataset = npz_dataset(tmp_path, n=1)
    for bad in (0, -3, 2.5):
        with pytest.raises(ParameterError) as info:
            extract_features(model, dataset, batch_size=bad)
        assert info.value.where == "batch_size"
    with pytest.raises(ParameterError):
        extract_features(model, dataset, num_workers=-1)
    with pytest.raises(DatasetError, match="no samples"):
        extract_features(model, PlainDataset(torch.zeros(0, 1, 8, 8), np.zeros(0, np.int64)))
    with pytest.raises(ParameterError, match="--device"):
        extract_features(model, dataset, device="no-such-device")
    one = extract_features(model, dataset)
    assert one.features.shape == (1, 6) and one.logits.shape == (1, 4)


# ---------------------------------------------------------------- cache


def test_cache_hit_skips_the_model(tmp_path):
    dataset = npz_dataset(tmp_path)
    model = CountingModel()
    first = cached_features(model, dataset, cache_dir=tmp_path / "cache", batch_size=10)
    calls = model.calls
    assert calls == 3 and any(note.startswith("saved to cache") for note in first.notes)
    second = cached_features(model, dataset, cache_dir=tmp_path / "cache", batch_size=10)
    assert model.calls == calls
    key = feature_cache_key(model, dataset)
    assert second.notes == [f"loaded from cache {tmp_path / 'cache' / (key + '.h5')}"]
    for name in ("features", "logits", "labels"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    cached_features(model, dataset, cache_dir=tmp_path / "cache", refresh=True)
    assert model.calls > calls


def test_cache_invalidated_when_data_or_model_change(tmp_path):
    cache = tmp_path / "cache"
    model = CountingModel()
    dataset = npz_dataset(tmp_path, seed=0)
    cached_features(model, dataset, cache_dir=cache)
    changed = npz_dataset(tmp_path, seed=1)  # same path, new contents
    assert changed.identity() != dataset.identity()
    calls = model.calls
    result = cached_features(model, changed, cache_dir=cache)
    assert model.calls > calls and not result.notes[0].startswith("loaded")
    inputs = torch.stack([changed[i][0] for i in range(len(changed))])
    np.testing.assert_allclose(
        result.features, bare_loop(CountingModel(), inputs)[0], atol=1e-5, rtol=0
    )
    other_model = CountingModel(seed=1)
    assert feature_cache_key(other_model, changed) != feature_cache_key(model, changed)
    resized = open_dataset(
        tmp_path / "imgs.npz", TransformSpec(size=(6, 6), channels=1, mean=(0.3,), std=(0.4,))
    )
    assert feature_cache_key(model, resized) != feature_cache_key(model, changed)


def test_cache_key_uses_checkpoint_hash_when_known(tmp_path):
    dataset = npz_dataset(tmp_path)
    head = HeadInfo(kind="linear", num_classes=4, nb_proxy=1, feature_dim=6, has_bias=True)
    info = ModelInfo(
        path="m.pt", format="protoview", arch="test", head=head, param_count=1, sha256="ab" * 32
    )
    a, b = CountingModel(seed=0, info=info), CountingModel(seed=5, info=info)
    assert feature_cache_key(a, dataset) == feature_cache_key(b, dataset)
    other = ModelInfo(
        path="m.pt", format="protoview", arch="test", head=head, param_count=1, sha256="cd" * 32
    )
    assert feature_cache_key(CountingModel(info=other), dataset) != feature_cache_key(a, dataset)


@pytest.mark.parametrize(
    "damage", ["garbage", "incomplete", "wrong-key", "wrong-rows", "truncated"]
)
def test_damaged_cache_files_are_rebuilt(tmp_path, damage):
    dataset = npz_dataset(tmp_path)
    model = CountingModel()
    cache = tmp_path / "cache"
    good = cached_features(model, dataset, cache_dir=cache)
    path = cache / f"{feature_cache_key(model, dataset)}.h5"
    if damage == "garbage":
        path.write_bytes(b"\x89HDF\r\n garbage")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:700])
    else:
        with h5py.File(path, "a") as handle:
            if damage == "incomplete":
                del handle.attrs["complete"]
            elif damage == "wrong-key":
                handle.attrs["cache_key"] = "0" * 64
            else:
                del handle["features"]
                handle["features"] = np.zeros((5, 6), np.float32)
    calls = model.calls
    rebuilt = cached_features(model, dataset, cache_dir=cache)
    assert model.calls > calls
    assert any("unusable" in note for note in rebuilt.notes)
    np.testing.assert_array_equal(rebuilt.features, good.features)
    again = cached_features(model, dataset, cache_dir=cache)
    assert again.notes[0].startswith("loaded from cache")


def test_cache_dir_from_environment_and_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv("PROTOVIEW_CACHE_DIR", str(tmp_path / "env-cache"))
    dataset = npz_dataset(tmp_path)
    cached_features(CountingModel(), dataset)
    assert len(list((tmp_path / "env-cache").glob("*.h5"))) == 1
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    result = cached_features(CountingModel(), dataset, cache_dir=blocker / "sub")
    assert result.features.shape == (23, 6) and any(
        "could not write the feature cache" in n for n in result.notes
    )


def test_cache_without_identity_and_with_features(tmp_path):
    plain = PlainDataset(torch.zeros(3, 1, 8, 8), np.arange(3))
    result = cached_features(CountingModel(), plain, cache_dir=tmp_path)
    assert result.notes[-1] == "not cached: the dataset has no identity()"
    with pytest.raises(ParameterError):
        feature_cache_key(CountingModel(), plain)
    attrs = feature_file_attrs(CountingModel(), plain)  # no info, no identity: empty provenance
    assert (
        attrs["checkpoint_sha256"] == ""
        and attrs["dataset_identity"] == ""
        and attrs["transform"] == ""
    )
    np.savez(tmp_path / "f.npz", features=np.zeros((3, 2)), labels=np.arange(3))
    with pytest.raises(ParameterError):
        cached_features(CountingModel(), open_dataset(tmp_path / "f.npz"), cache_dir=tmp_path)


# ---------------------------------------------------------------- feature files


def _result(n: int = 7, d: int = 5, c: int = 3, seed: int = 0) -> FeatureResult:
    rng = np.random.default_rng(seed)
    return FeatureResult(
        rng.normal(size=(n, d)).astype(np.float32),
        rng.normal(size=(n, c)).astype(np.float32),
        rng.integers(-1, c, n),
        device="cpu",
        seconds=0.5,
    )


def test_feature_file_round_trip(tmp_path):
    path = tmp_path / "out.h5"
    result = _result()
    write_feature_file(
        path,
        result,
        attrs={
            "checkpoint": "m.pt",
            "checkpoint_sha256": "ab" * 32,
            "dataset": "demo",
            "dataset_identity": "demo:x",
            "transform": SMALL.key(),
            "class_names": ["a", "b", "c"],
        },
    )
    back = read_feature_file(path)
    for name in ("features", "logits", "labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
    with h5py.File(path, "r") as handle:  # plain h5py sees the documented layout
        assert handle["features"].dtype == np.float32 and handle["labels"].dtype == np.int64
        assert handle["logits"].dtype == np.float32 and handle["predictions"].dtype == np.int64
        np.testing.assert_array_equal(handle["predictions"][()], result.logits.argmax(1))
        attrs = dict(handle.attrs)
    assert (
        attrs["format"] == "protoview-features"
        and attrs["version"] == 1
        and bool(attrs["complete"]) is True
    )
    for key in (
        "protoview_version",
        "created",
        "checkpoint",
        "checkpoint_sha256",
        "dataset",
        "dataset_identity",
        "transform",
    ):
        assert key in attrs
    assert back.attrs["checkpoint_sha256"] == "ab" * 32 and back.attrs["transform"] == SMALL.key()
    opened = open_dataset(path)
    assert isinstance(opened, FeatureSet) and opened.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(opened.predictions, result.logits.argmax(1))


def test_feature_file_errors(tmp_path):
    with pytest.raises(SnapshotError, match="does not exist"):
        write_feature_file(tmp_path / "missing" / "out.h5", _result(), attrs={})
    bad = _result()
    bad.labels = bad.labels[:3]
    with pytest.raises(SnapshotError, match="7 feature rows but 3 labels"):
        write_feature_file(tmp_path / "out.h5", bad, attrs={})
    nan = _result()
    nan.features[2, 1] = np.nan
    with pytest.raises(SnapshotError, match="NaN or Inf in 1 of 7 rows"):
        write_feature_file(tmp_path / "out.h5", nan, attrs={})
    assert not (tmp_path / "out.h5").exists()
    (tmp_path / "text.h5").write_text("plain text")
    with pytest.raises(SnapshotError, match="not a readable HDF5"):
        read_feature_file(tmp_path / "text.h5")
    with pytest.raises(SnapshotError, match="not found"):
        read_feature_file(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "nologits.h5", "w") as handle:
        handle["features"], handle["labels"] = np.zeros((2, 2)), np.zeros(2, np.int64)
    with pytest.raises(SnapshotError, match="no 'logits'"):
        read_feature_file(tmp_path / "nologits.h5")


def test_demo_model_on_demo_data():
    demo_model = pytest.importorskip("protoview.core.demo")
    model = demo_model.build_demo_model()
    dataset = open_dataset("demo")
    result = extract_features(model, dataset, batch_size=100)
    inputs, _ = dataset.get_batch(np.arange(len(dataset)))
    features, logits = bare_loop(model, inputs)
    np.testing.assert_allclose(result.features, features, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logits, logits, atol=1e-4, rtol=1e-5)


@pytest.mark.gpu
def test_cuda_amp_close_to_float32(tmp_path):
    dataset = npz_dataset(tmp_path)
    exact = extract_features(CountingModel(), dataset, device="cpu")
    fast = extract_features(CountingModel(), dataset, device="cuda", amp=True)
    assert fast.device.startswith("cuda") and fast.features.dtype == np.float32
    np.testing.assert_allclose(fast.features, exact.features, atol=2e-2, rtol=2e-2)


def test_default_num_workers(tmp_path, monkeypatch):
    from protoview.core.features import default_num_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_num_workers(npz_dataset(tmp_path), "cuda") == 0  # in memory: sliced directly
    plain = PlainDataset(torch.zeros(2, 1, 8, 8), np.arange(2))
    assert default_num_workers(plain, "cpu") == 0  # workers would compete with torch's threads
    assert default_num_workers(plain, "cuda") == 4
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert default_num_workers(plain, "cuda") == 0


@pytest.mark.slow
def test_sigkill_while_writing_the_feature_cache_never_leaves_a_trusted_broken_file(tmp_path):
    """SIGKILL a process that keeps rewriting one cache file (the cache's own writer): the
    path always holds a whole version, and a stray temp file is never read as the cache."""
    import importlib.util
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from protoview.core.features import read_feature_file

    here = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location("_cache_writer", here / "_cache_writer.py")
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    rows, cols, kills = 150_000, 64, 16
    path = tmp_path / "cachekey.h5"
    write_feature_file(path, writer.make_result(0, rows, cols), attrs={"version": 0})
    rng = random.Random(7)
    on_disk, mid_write = 0, 0
    for _ in range(kills):
        child = subprocess.Popen(
            [sys.executable, str(here / "_cache_writer.py"), str(path), str(on_disk + 1),
             str(rows), str(cols)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        done = [int(line.split()[1]) for line in child.stdout.read().split("\n")
                if line.startswith("wrote")]
        child.stdout.close()
        last = done[-1] if done else on_disk
        mid_write += bool(list(tmp_path.glob(f".{path.name}.tmp-*")))
        got = read_feature_file(path)
        version = int(got.attrs["version"])
        assert version in (last, last + 1), (version, last)
        want = writer.make_result(version, rows, cols)
        np.testing.assert_array_equal(got.features, want.features)
        np.testing.assert_array_equal(got.logits, want.logits)
        np.testing.assert_array_equal(got.labels, want.labels)
        on_disk = version
    assert mid_write >= 1, "no kill landed during a write; the test proved nothing"


def test_a_gpu_that_fails_mid_extraction_hands_over_to_the_cpu(tmp_path, monkeypatch):
    """Injected device loss (as a CUDA 'unspecified launch failure' reads): the batch is
    redone on the CPU, the rest follows there, a warning and a note say so, and the
    features equal a clean run's."""
    dataset = npz_dataset(tmp_path)
    model = CountingModel()
    original = model.featurizer.forward
    failures = []

    def lost(x):
        if not failures:
            failures.append(x.shape[0])
            raise RuntimeError("CUDA error: unspecified launch failure (injected)")
        return original(x)

    monkeypatch.setattr(model.featurizer, "forward", lost)
    with pytest.warns(ProtoviewWarning, match="continued on the CPU"):
        result = extract_features(model, dataset, batch_size=8, device="cpu")
    assert failures == [8] and result.device == "cpu" and result.fell_back
    assert any("failed (CUDA error: unspecified launch failure" in n for n in result.notes)
    inputs = torch.stack([dataset[i][0] for i in range(len(dataset))])
    np.testing.assert_allclose(result.features, bare_loop(CountingModel(), inputs)[0], atol=1e-5, rtol=0)


def test_a_model_bug_is_not_mistaken_for_a_lost_device(tmp_path, monkeypatch):
    model = CountingModel()

    def broken(x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (3x4 and 5x6)")

    monkeypatch.setattr(model.featurizer, "forward", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        extract_features(model, npz_dataset(tmp_path, n=3), batch_size=2, device="cpu")
