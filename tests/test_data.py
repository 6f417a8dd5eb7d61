"""Datasets: every kind open_dataset accepts, compared with reference oracles, and bad input."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import struct

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader

from protoview.core import demo
from protoview.core.data import ArrayImageDataset, FeatureSet, ImageFolderDataset, open_dataset
from protoview.core.data._base import check_transform
from protoview.core.model import TransformSpec
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import DatasetError, ParameterError

RGB32 = TransformSpec(size=(24, 20), channels=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
GREY = TransformSpec(size=(16, 16), channels=1, mean=(0.5,), std=(0.25,))


def _rgb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(img: Image.Image, path, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)


def make_mixed_folder(root, rng: np.random.Generator) -> None:
    """Two classes (sorted case-sensitively: 'B_dog' < 'a_cat'), 8-bit images of many modes and sizes."""
    _save(Image.fromarray(_rgb(rng, 30, 40)), root / "a_cat" / "rgb.png")
    _save(Image.fromarray(_rgb(rng, 50, 21)[..., 0]), root / "a_cat" / "grey.png")
    _save(
        Image.fromarray(
            np.dstack([_rgb(rng, 17, 33), rng.integers(0, 256, (17, 33), dtype=np.uint8)])
        ),
        root / "a_cat" / "rgba.png",
    )
    _save(
        Image.fromarray(_rgb(rng, 24, 20)).convert("P", palette=Image.ADAPTIVE, colors=16),
        root / "a_cat" / "sub" / "palette.gif",
    )
    _save(Image.fromarray(_rgb(rng, 64, 48)).convert("CMYK"), root / "B_dog" / "cmyk.jpg", "JPEG")
    planes = _rgb(rng, 12, 12)
    _save(
        Image.merge("LA", [Image.fromarray(planes[..., 0]), Image.fromarray(planes[..., 1])]),
        root / "B_dog" / "la.png",
    )
    _save(Image.fromarray(_rgb(rng, 10, 30)[..., 0] > 128), root / "B_dog" / "bits.bmp")
    (root / "B_dog" / "notes.txt").write_text("not an image")
    (root / ".ipynb_checkpoints").mkdir()


def torchvision_oracle(root, transform: TransformSpec) -> list[tuple[torch.Tensor, int]]:
    """torchvision's ImageFolder with (Grayscale for 1 channel +) Resize + ToTensor + Normalize."""
    from torchvision.datasets import ImageFolder

    steps = [T.Grayscale(1)] if transform.channels == 1 else []
    steps += [T.Resize(transform.size), T.ToTensor(), T.Normalize(transform.mean, transform.std)]
    reference = ImageFolder(
        str(root), transform=T.Compose(steps), is_valid_file=lambda p: not p.endswith(".txt")
    )
    return [reference[i] for i in range(len(reference))]


@pytest.fixture()
def mixed_folder(tmp_path):
    root = tmp_path / "images"
    make_mixed_folder(root, np.random.default_rng(0))
    # torchvision would count the hidden folder as a class; remove it for the oracle only
    return root


@pytest.mark.parametrize("transform", [RGB32, GREY], ids=["rgb", "grey"])
def test_image_folder_matches_torchvision(mixed_folder, transform):
    dataset = open_dataset(mixed_folder, transform)
    assert isinstance(dataset, ImageFolderDataset)
    os.rmdir(mixed_folder / ".ipynb_checkpoints")
    expected = torchvision_oracle(mixed_folder, transform)
    assert dataset.class_names == ["B_dog", "a_cat"]
    assert len(dataset) == len(expected) == 7
    assert dataset.labels.dtype == np.int64 and dataset.labels.tolist() == [y for _, y in expected]
    for i, (x_ref, y_ref) in enumerate(expected):
        x, y = dataset[i]
        assert x.dtype == torch.float32 and tuple(x.shape) == (transform.channels, *transform.size)
        assert y == y_ref
        torch.testing.assert_close(x, x_ref, atol=1e-5, rtol=0)
    assert dataset.ignored == 1 and dataset.skipped == []


def test_sixteen_bit_grey_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    _save(Image.fromarray(values), tmp_path / "c" / "deep.png")
    assert Image.open(tmp_path / "c" / "deep.png").mode.startswith("I")
    for transform in (
        GREY,
        TransformSpec(size=(16, 16), channels=3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5)),
    ):
        x, _ = open_dataset(tmp_path, transform)[0]
        mean = torch.tensor(transform.mean).view(-1, 1, 1)
        std = torch.tensor(transform.std).view(-1, 1, 1)
        pixels = x * std + mean
        expected = torch.from_numpy(values.astype(np.float32) / 65535).expand_as(pixels)
        torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)


def test_thumbnails_are_uint8(mixed_folder):
    dataset = open_dataset(mixed_folder, RGB32)
    for i in range(len(dataset)):
        thumb = dataset.thumbnail(i, max_side=20)
        assert thumb.dtype == np.uint8 and thumb.ndim in (2, 3) and max(thumb.shape[:2]) <= 20
    with pytest.raises(IndexError):
        dataset.thumbnail(len(dataset))


def test_identity_stable_and_sensitive(mixed_folder):
    first = open_dataset(mixed_folder, RGB32).identity()
    assert open_dataset(mixed_folder, RGB32).identity() == first
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(mixed_folder / "a_cat" / "rgb.png")
    changed = open_dataset(mixed_folder, RGB32).identity()
    assert changed != first
    _save(Image.fromarray(np.zeros((5, 5), np.uint8)), mixed_folder / "B_dog" / "new.png")
    assert open_dataset(mixed_folder, RGB32).identity() not in (first, changed)


def test_corrupt_images_are_skipped_and_reported(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        _save(Image.fromarray(_rgb(rng, 8, 8)), tmp_path / "cls" / f"good{i}.png")
    (tmp_path / "cls" / "garbage.png").write_bytes(b"this is not a png")
    (tmp_path / "cls" / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(_rgb(rng, 32, 32)).save(buffer, "PNG")
    (tmp_path / "cls" / "truncated.png").write_bytes(buffer.getvalue()[:100])
    with pytest.warns(ProtoviewWarning, match=r"skipped 3 unreadable image\(s\) in .*\(first: "):
        dataset = open_dataset(tmp_path, RGB32)
    assert len(dataset) == 3
    assert sorted(os.path.basename(p) for p, _ in dataset.skipped) == [
        "empty.jpg",
        "garbage.png",
        "truncated.png",
    ]
    assert all(reason for _, reason in dataset.skipped)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=1))
    assert sum(len(b[1]) for b in batches) == 3


def test_truncated_jpeg_never_crashes_a_worker(tmp_path):
    rng = np.random.default_rng(2)
    _save(Image.fromarray(_rgb(rng, 8, 8)), tmp_path / "cls" / "good.png")
    buffer = io.BytesIO()
    Image.fromarray(_rgb(rng, 64, 64)).save(buffer, "JPEG")
    (tmp_path / "cls" / "late.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    dataset = open_dataset(tmp_path, RGB32)  # verify() cannot see a truncated JPEG
    assert len(dataset) == 2
    x, y, problem = dataset.read_item(1)
    assert "late.jpg" in problem and torch.count_nonzero(x) == 0 and y == 0
    xs, ys = next(iter(DataLoader(dataset, batch_size=2, num_workers=1)))
    assert xs.shape == (2, 3, 24, 20) and ys.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda root: None, "holds no images"),
        (lambda root: (root / "a").mkdir(), "holds no images"),
        (
            lambda root: [(root / "a").mkdir(), (root / "a" / "x.txt").write_text("x")],
            "no images PIL can open",
        ),
        (
            lambda root: [(root / "a").mkdir(), (root / "a" / "x.png").write_bytes(b"nope")],
            "none of its 1 image files",
        ),
    ],
    ids=["empty", "one-empty-class", "only-non-images", "only-corrupt"],
)
def test_bad_folders(tmp_path, make, match):
    root = tmp_path / "data"
    root.mkdir()
    make(root)
    with pytest.raises(DatasetError, match=match) as info:
        open_dataset(root, RGB32)
    assert info.value.where == str(root)


def test_flat_folder_is_unlabelled(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(2):
        _save(Image.fromarray(_rgb(rng, 9, 7)), tmp_path / f"img{i}.png")
    dataset = open_dataset(tmp_path, RGB32)
    assert dataset.class_names == [] and dataset.labels.tolist() == [-1, -1] and dataset[1][1] == -1


def test_image_folder_labels_out_of_range(mixed_folder):
    with pytest.raises(DatasetError, match=r"out of range \(1\)") as info:
        open_dataset(mixed_folder, RGB32, num_classes=1)
    assert info.value.where == str(mixed_folder)


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        open_dataset(tmp_path / "nope")
    assert info.value.where == str(tmp_path / "nope")
    (tmp_path / "file.csv").write_text("1,2")
    with pytest.raises(DatasetError, match="unsupported file type .csv"):
        open_dataset(tmp_path / "file.csv")
    with pytest.raises(DatasetError, match="no dataset given"):
        open_dataset("  ")


# ---------------------------------------------------------------- npz images


def _interp_oracle(images01: np.ndarray, transform: TransformSpec) -> torch.Tensor:
    x = torch.from_numpy(images01.astype(np.float32))
    if x.shape[1] == 1 and transform.channels == 3:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=transform.size, mode="bilinear", align_corners=False, antialias=True)
    return (x - torch.tensor(transform.mean).view(1, -1, 1, 1)) / torch.tensor(transform.std).view(
        1, -1, 1, 1
    )


@pytest.mark.parametrize("layout", ["nchw_uint8", "nhw_float", "nhwc_uint8", "nchw_float255"])
def test_npz_images(tmp_path, layout):
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (5, 3, 12, 10), dtype=np.uint8)
    labels = np.array([0, 2, 1, 2, -1])
    if layout == "nchw_uint8":
        x, expected01 = pixels, pixels / 255.0
    elif layout == "nhw_float":
        x = rng.random((5, 12, 10)).astype(np.float32)
        expected01 = x[:, None]
    elif layout == "nhwc_uint8":
        x, expected01 = pixels.transpose(0, 2, 3, 1), pixels / 255.0
    else:
        x, expected01 = pixels.astype(np.float64), pixels / 255.0
    np.savez(tmp_path / "imgs.npz", x=x, y=labels)
    # float pixels in [0, 255] are never divided by a guess: the transform says scale=255
    transform = dataclasses.replace(RGB32, scale=255.0) if layout == "nchw_float255" else RGB32
    dataset = open_dataset(tmp_path / "imgs.npz", transform)
    assert isinstance(dataset, ArrayImageDataset)
    assert dataset.labels.tolist() == labels.tolist() and dataset.class_names == ["0", "1", "2"]
    expected = _interp_oracle(expected01, RGB32)
    batch, ys = dataset.get_batch(np.arange(5))
    torch.testing.assert_close(batch, expected, atol=1e-5, rtol=0)
    assert ys.tolist() == labels.tolist()
    for i in (0, 4, -1):
        torch.testing.assert_close(dataset[i][0], expected[i], atol=1e-5, rtol=0)
    assert dataset.thumbnail(0).dtype == np.uint8


@pytest.mark.parametrize(
    ("arrays", "num_classes", "match"),
    [
        ({"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, 1, 7])}, 3, r"out of range \(7\)"),
        (
            {"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, -2, 1])},
            None,
            r"out of range \(-2\)",
        ),
        (
            {"x": np.zeros((3, 4, 4), np.uint8), "y": np.array([0, 1])},
            None,
            "3 images in 'x' but 2 labels",
        ),
        ({"x": np.full((2, 4, 4), np.nan, np.float32), "y": np.array([0, 1])}, None, "NaN"),
        ({"x": np.zeros((0, 4, 4), np.uint8), "y": np.zeros(0, np.int64)}, None, "no images"),
        ({"x": np.zeros((2, 4, 4, 4, 4), np.uint8), "y": np.array([0, 1])}, None, "must be"),
        ({"images": np.zeros((2, 4, 4), np.uint8)}, None, "neither 'x'"),
    ],
    ids=["label-too-big", "label-negative", "length-mismatch", "nan", "empty", "5d", "no-x"],
)
def test_npz_bad_input(tmp_path, arrays, num_classes, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=match) as info:
        open_dataset(tmp_path / "bad.npz", RGB32, num_classes=num_classes)
    assert info.value.where == str(tmp_path / "bad.npz")


def test_npz_corrupt_file(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        open_dataset(tmp_path / "broken.npz")


# ---------------------------------------------------------------- feature files


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_feature_files_open_as_feature_sets(tmp_path, suffix):
    rng = np.random.default_rng(5)
    features, labels = rng.normal(size=(6, 3)), np.array([0, 1, 1, 2, -1, 0])
    path = tmp_path / f"feats{suffix}"
    if suffix == ".h5":
        with h5py.File(path, "w") as handle:
            handle["features"], handle["labels"] = features, labels[:, None]
    else:
        np.savez(path, features=features, labels=labels, class_names=np.array(["a", "b", "c"]))
    result = open_dataset(path)
    assert isinstance(result, FeatureSet) and len(result) == 6
    assert result.features.dtype == np.float32 and np.allclose(result.features, features)
    assert result.labels.dtype == np.int64 and result.labels.tolist() == labels.tolist()
    assert result.class_names == (["0", "1", "2"] if suffix == ".h5" else ["a", "b", "c"])
    assert result.logits is None and str(path) in result.identity()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            {"features": np.array([[0.0, np.nan], [1, 2], [np.inf, 0]]), "labels": np.arange(3)},
            r"NaN or Inf in 2 of 3 rows \(first: row 0\)",
        ),
        ({"features": np.zeros((3, 2)), "labels": np.arange(4)}, "3 feature rows but 4 labels"),
        (
            {"features": np.zeros((3, 2)), "labels": np.arange(3), "logits": np.zeros((2, 5))},
            "'logits' must be",
        ),
        ({"features": np.zeros(3), "labels": np.arange(3)}, r"non-empty \(N, D\)"),
        ({"labels": np.arange(3)}, "has no 'features'"),
    ],
    ids=["nan", "labels-length", "logits-shape", "1d", "no-features"],
)
def test_feature_file_bad_input(tmp_path, arrays, match):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as handle:
        for name, values in arrays.items():
            handle[name] = values
    with pytest.raises(DatasetError, match=match) as info:
        open_dataset(path)
    assert info.value.where == str(path)


def test_feature_file_not_hdf5_and_incomplete(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        open_dataset(tmp_path / "text.h5")
    with h5py.File(tmp_path / "half.h5", "w") as handle:
        handle["features"], handle["labels"] = np.zeros((2, 2)), np.zeros(2, np.int64)
        handle.attrs["format"] = "protoview-features"
    with pytest.raises(DatasetError, match="not completely written"):
        open_dataset(tmp_path / "half.h5")


def test_feature_labels_out_of_range(tmp_path):
    np.savez(tmp_path / "f.npz", features=np.zeros((3, 2)), labels=np.array([0, 5, 9]))
    with pytest.raises(DatasetError, match=r"2 label value\(s\) out of range \(5, 9\)"):
        open_dataset(tmp_path / "f.npz", num_classes=5)


# ---------------------------------------------------------------- demo


def test_demo_default_is_noise_3_normalised():
    dataset = open_dataset("demo")
    images, labels = demo.demo_arrays(part="test", shift="noise", severity=3, seed=0)
    assert dataset.source == "demo:noise:3" and dataset.transform == check_transform(
        demo.DEMO_TRANSFORM
    )
    assert (
        dataset.labels.tolist() == labels.tolist() and dataset.class_names == demo.DEMO_CLASS_NAMES
    )
    x, _ = dataset.get_batch(np.arange(len(dataset)))
    expected = (torch.from_numpy(images) - demo.DEMO_TRANSFORM.mean[0]) / demo.DEMO_TRANSFORM.std[0]
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
    assert dataset.thumbnail(0).shape == (8, 8)


def test_demo_variants_and_identities():
    source = open_dataset("demo:source")
    clean = open_dataset("demo:none")
    blur = open_dataset("demo:blur:5")
    images, _ = demo.demo_arrays(part="source", shift="none")
    assert len(source) == len(images) and source.source == "demo:source"
    assert (
        len(
            {
                source.identity(),
                clean.identity(),
                blur.identity(),
                open_dataset("demo:blur:4").identity(),
            }
        )
        == 4
    )
    assert open_dataset("demo:blur:5").identity() == blur.identity()
    resized = open_dataset("demo", RGB32)
    assert resized[0][0].shape == (3, 24, 20)


@pytest.mark.parametrize(
    "spec",
    ["demo:nonsense", "demo:noise:9", "demo:noise:high", "demo:noise:3:1:2", "demo:source:2"],
)
def test_demo_bad_specs(spec):
    with pytest.raises(DatasetError) as info:
        open_dataset(spec)
    assert info.value.where == spec


def test_demo_labels_checked_against_num_classes():
    with pytest.raises(DatasetError, match="out of range"):
        open_dataset("demo", num_classes=5)


# ---------------------------------------------------------------- torchvision layouts


def write_fake_cifar10(root, n: int = 4, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A tiny cifar-10-batches-py folder in the real pickle format."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batch = {
            "batch_label": f"{name} of 5",
            "labels": labels,
            "data": data,
            "filenames": [f"img{i}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        written[name] = (data, labels)
    # the meta file with bytes keys and names, as Python 2 strings re-pickled by Python 3 look
    meta = {
        b"num_cases_per_batch": n,
        b"label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        b"num_vis": 3072,
    }
    meta[b"label_names"] = [name.encode() for name in meta[b"label_names"]]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return written


def test_fake_cifar10_loads(tmp_path):
    written = write_fake_cifar10(tmp_path)
    plain = TransformSpec(size=(32, 32), channels=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    test = open_dataset(f"cifar10:{tmp_path}", plain)
    data, labels = written["test_batch"]
    assert (
        test.source.endswith(":test")
        and test.class_names[0] == "airplane"
        and len(test.class_names) == 10
    )
    assert test.labels.tolist() == labels
    assert test.suggested_preprocess == "cifar10"
    x, _ = test.get_batch(np.arange(len(test)))
    torch.testing.assert_close(
        x, torch.from_numpy(data.reshape(-1, 3, 32, 32) / 255.0).float(), atol=1e-6, rtol=0
    )
    train = open_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}:train", plain)
    assert len(train) == 5 * 4 and train.labels.tolist() == sum(
        (written[f"data_batch_{i}"][1] for i in range(1, 6)), []
    )
    assert train.identity() != test.identity()


def test_cifar_missing_and_malicious(tmp_path):
    with pytest.raises(DatasetError, match="never downloads.*cifar-10-batches-py"):
        open_dataset(f"cifar10:{tmp_path}")
    with pytest.raises(DatasetError, match="no split 'extra'"):
        open_dataset(f"cifar10:{tmp_path}:extra")
    write_fake_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({"data": Evil(), "labels": [0]}, handle, protocol=2)
    with pytest.raises(DatasetError, match="refused"):
        open_dataset(f"cifar10:{tmp_path}")
    assert not marker.exists()


def test_fake_mnist_and_svhn(tmp_path):
    import scipy.io

    rng = np.random.default_rng(6)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    expected = {}
    for prefix, n in (("train", 3), ("t10k", 2)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes()
        )
        expected[prefix] = (images, labels)
    mnist = open_dataset(f"mnist:{tmp_path}", GREY)
    assert mnist.labels.tolist() == expected["t10k"][1].tolist() and mnist[0][0].shape == (
        1,
        16,
        16,
    )
    assert len(open_dataset(f"mnist:{tmp_path}:train", GREY)) == 3
    svhn_x = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    scipy.io.savemat(
        tmp_path / "test_32x32.mat",
        {"X": svhn_x, "y": np.array([[10], [1], [2], [10]], dtype=np.uint8)},
    )
    plain = TransformSpec(size=(32, 32), channels=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    svhn = open_dataset(f"svhn:{tmp_path}", plain)
    assert svhn.labels.tolist() == [0, 1, 2, 0]
    torch.testing.assert_close(
        svhn[3][0],
        torch.from_numpy(svhn_x[..., 3].transpose(2, 0, 1) / 255.0).float(),
        atol=1e-6,
        rtol=0,
    )
    with pytest.raises(DatasetError, match="FashionMNIST/raw"):
        open_dataset(f"fashionmnist:{tmp_path}")


# ---------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    "transform",
    [
        TransformSpec(size=(0, 4)),
        TransformSpec(channels=2, mean=(0.5, 0.5), std=(0.5, 0.5)),
        TransformSpec(channels=3, mean=(0.5, 0.5), std=(0.5, 0.5, 0.5)),
        TransformSpec(channels=1, mean=(0.5,), std=(0.0,)),
    ],
    ids=["zero-size", "two-channels", "mean-length", "zero-std"],
)
def test_bad_transforms(tmp_path, transform):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 1]))
    with pytest.raises(ParameterError) as info:
        open_dataset(tmp_path / "x.npz", transform)
    assert info.value.where == "transform"


def test_single_value_mean_broadcasts():
    spec = check_transform(TransformSpec(size=(4, 4), channels=3, mean=(0.5,), std=(0.2,)))
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.2, 0.2, 0.2)
