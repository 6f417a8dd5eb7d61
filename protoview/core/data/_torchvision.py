"""torchvision datasets already on disk: ``cifar10``, ``cifar100``, ``mnist``, ``fashionmnist``, ``svhn``.

Nothing is ever downloaded. The folder layouts are torchvision's (``root/cifar-10-batches-py``,
``root/cifar-100-python``, ``root/MNIST/raw``, ``root/FashionMNIST/raw``,
``root/{train,test,extra}_32x32.mat``). CIFAR and SVHN files are read here rather than through
torchvision's classes, for two reasons: torchvision checks the md5 of every file (so a
re-packed or test copy never loads), and it unpickles CIFAR batches with plain ``pickle``,
which would run any code a tampered file carries; we unpickle with a whitelist that only
admits numpy arrays. MNIST-style idx files go through torchvision (no md5, no pickle).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from protoview.core.data._base import ArrayImageDataset, check_labels, short_digest
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError

KINDS = ("cifar10", "cifar100", "mnist", "fashionmnist", "svhn")
SPLITS = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "mnist": ("train", "test"),
    "fashionmnist": ("train", "test"),
    "svhn": ("train", "test", "extra"),
}
DEFAULT_SPLIT = "test"

_LAYOUT = {
    "cifar10": "ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (the python version)",
    "cifar100": "ROOT/cifar-100-python/{train, test, meta} (the python version)",
    "mnist": "ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (unzipped)",
    "fashionmnist": "ROOT/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (unzipped)",
    "svhn": "ROOT/{train,test,extra}_32x32.mat",
}
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name} (only numpy arrays are allowed)"
        )


def _unpickle(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _ArraysOnlyUnpickler(handle, encoding="latin1").load()
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:
        raise DatasetError(path, f"cannot read this CIFAR batch file ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(path, "is not a CIFAR batch (expected a pickled dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def _missing(kind: str, root: str, path: str) -> DatasetError:
    return DatasetError(
        root,
        f"{kind} files not found ({path} is missing); protoview never downloads data, "
        f"so place the dataset as torchvision does: {_LAYOUT[kind]}",
    )


def _files_digest(paths: list[str]) -> str:
    stats = [
        f"{os.path.basename(p)}\t{os.stat(p).st_size}\t{os.stat(p).st_mtime_ns}" for p in paths
    ]
    return short_digest("\n".join(stats))


def _read_cifar(
    kind: str, root: str, split: str
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from torchvision.datasets import CIFAR10, CIFAR100

    spec = CIFAR10 if kind == "cifar10" else CIFAR100
    folder = (
        root if os.path.basename(root) == spec.base_folder else os.path.join(root, spec.base_folder)
    )
    names = [name for name, _ in (spec.train_list if split == "train" else spec.test_list)]
    paths = [os.path.join(folder, name) for name in [*names, spec.meta["filename"]]]
    for path in paths:
        if not os.path.isfile(path):
            raise _missing(kind, root, path)
    images, labels = [], []
    for path in paths[:-1]:
        batch = _unpickle(path)
        key = "labels" if "labels" in batch else "fine_labels"
        if "data" not in batch or key not in batch:
            raise DatasetError(path, f"is not a CIFAR batch (keys: {sorted(batch)})")
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetError(
                path, f"'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[key]))
    meta = _unpickle(paths[-1])
    class_names = [
        n.decode("latin1") if isinstance(n, bytes) else str(n)
        for n in meta.get(spec.meta["key"], [])
    ]
    return np.concatenate(images), np.concatenate(labels), class_names, paths


def _read_mnist(
    kind: str, root: str, split: str
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from torchvision.datasets import MNIST, FashionMNIST

    cls = MNIST if kind == "mnist" else FashionMNIST
    prefix = "train" if split == "train" else "t10k"
    raw = os.path.join(root, cls.__name__, "raw")
    paths = [
        os.path.join(raw, f"{prefix}-images-idx3-ubyte"),
        os.path.join(raw, f"{prefix}-labels-idx1-ubyte"),
    ]
    for path in paths:
        if not os.path.isfile(path):
            raise _missing(kind, root, path)
    try:
        data = cls(root, train=split == "train", download=False)
    except (RuntimeError, OSError, ValueError, AssertionError) as exc:
        raise DatasetError(root, f"cannot read the {kind} idx files ({exc})") from None
    images = data.data.numpy()[:, None]
    return images, data.targets.numpy(), list(cls.classes), paths


def _read_svhn(
    kind: str, root: str, split: str
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    import scipy.io

    path = os.path.join(root, f"{split}_32x32.mat")
    if not os.path.isfile(path):
        raise _missing(kind, root, path)
    try:
        mat = scipy.io.loadmat(path)
        images = np.transpose(mat["X"], (3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
        labels = mat["y"].astype(np.int64).reshape(-1)
    except Exception as exc:  # scipy raises ValueError, KeyError, OSError, ... for bad files
        raise DatasetError(
            path, f"cannot read this SVHN .mat file ({type(exc).__name__}: {exc})"
        ) from None
    labels[labels == 10] = 0  # SVHN stores the digit 0 as class 10
    return images, labels, [str(i) for i in range(10)], [path]


_READERS = {
    "cifar10": _read_cifar,
    "cifar100": _read_cifar,
    "mnist": _read_mnist,
    "fashionmnist": _read_mnist,
    "svhn": _read_svhn,
}


def parse_torchvision_spec(spec: str) -> tuple[str, str, str] | None:
    """Split ``"cifar10:/data[:test]"`` into ``(kind, root, split)``; ``None`` if not such a spec."""
    kind, sep, rest = spec.partition(":")
    kind = kind.lower().replace("-", "").replace("_", "")
    if not sep or kind not in KINDS:
        return None
    root, sep, split = rest.rpartition(":")
    if not sep or split.lower() not in ("train", "test", "extra"):
        root, split = rest, DEFAULT_SPLIT
    return kind, root, split.lower()


def open_torchvision(
    spec: str, transform: TransformSpec, *, num_classes: int | None = None
) -> ArrayImageDataset:
    """Open a torchvision dataset on disk, e.g. ``"cifar10:/data/cifar:test"`` (split default: test).

    CIFAR sets suggest the ``"cifar10"`` / ``"cifar100"`` preprocessing (``suggested_preprocess``).
    """
    parsed = parse_torchvision_spec(spec)
    if parsed is None:
        raise DatasetError(
            spec,
            f"not a torchvision dataset spec; expected KIND:ROOT[:SPLIT] with KIND in {', '.join(KINDS)}",
        )
    kind, root, split = parsed
    if split not in SPLITS[kind]:
        raise DatasetError(
            spec, f"{kind} has no split {split!r}; choose one of {', '.join(SPLITS[kind])}"
        )
    if not root:
        raise DatasetError(
            spec, f"no folder given; expected {kind}:ROOT[:{'|'.join(SPLITS[kind])}]"
        )
    root = str(Path(root).expanduser().absolute())
    if not os.path.isdir(root):
        raise DatasetError(root, f"folder does not exist; expected {_LAYOUT[kind]}")
    images, labels, class_names, paths = _READERS[kind](kind, root, split)
    labels = check_labels(labels, root, num_classes)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(root, f"{images.shape[0]} images but {labels.shape[0]} labels")
    source = f"{kind}:{root}:{split}"
    dataset = ArrayImageDataset(
        images,
        labels,
        class_names,
        transform,
        source=source,
        description=f"{kind} {split} split from {root}: {len(labels)} images, {len(class_names)} classes",
        identity=f"torchvision:{source};digest={_files_digest(paths)}",
    )
    dataset.suggested_preprocess = kind if kind in ("cifar10", "cifar100") else None
    return dataset
