"""Every dataset protoview can open, behind one function: :func:`open_dataset`.

An image dataset is a ``torch.utils.data.Dataset`` yielding ``(x, y)``: ``x`` float32
``(C, H, W)`` resized and normalised by the :class:`~protoview.core.model.TransformSpec`,
``y`` an int (``-1`` unknown). It also has ``labels`` (N,) int64, ``class_names``,
``identity()`` (part of the feature-cache key), ``description``, ``source`` and
``thumbnail(i)``. Precomputed features open as a :class:`FeatureSet` instead.

Spellings accepted by :func:`open_dataset`::

    demo | demo:SHIFT | demo:SHIFT:SEVERITY | demo:source     built-in digits (default demo:noise:3)
    path/to/folder                                           ImageFolder (root/<class>/<images>)
    images.npz                                               x (N,C,H,W) | (N,H,W) [+ y (N,)]
    features.h5 | features.hdf5 | features.npz               features (N,D) + labels (N,)
    cifar10:ROOT[:train|test]  (also cifar100, mnist, fashionmnist, svhn; default split: test)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from protoview.core._data_base import (
    ArrayImageDataset,
    ProtoviewDataset,
    check_labels,
    default_class_names,
    short_digest,
)
from protoview.core._data_featurefile import (
    FEATURE_SUFFIXES,
    NPZ_ERRORS,
    FeatureSet,
    open_feature_file,
)
from protoview.core._data_folder import ImageFolderDataset
from protoview.core._data_torchvision import open_torchvision, parse_torchvision_spec
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError, ProtoviewError

__all__ = [
    "ArrayImageDataset",
    "FeatureSet",
    "ImageFolderDataset",
    "ProtoviewDataset",
    "default_transform",
    "open_dataset",
]

DEFAULT_DEMO_SHIFT = "noise"
DEFAULT_DEMO_SEVERITY = 3
_SPELLINGS = (
    "a folder of class folders, a .npz/.h5 file, demo[:SHIFT[:SEVERITY]] or cifar10:ROOT[:test]"
)


def default_transform() -> TransformSpec:
    """224 x 224, 3 channels, ImageNet mean/std (used when neither caller nor checkpoint says)."""
    return TransformSpec()


def open_dataset(
    spec: str | os.PathLike[str],
    transform: TransformSpec | None = None,
    *,
    num_classes: int | None = None,
) -> ProtoviewDataset | FeatureSet:
    """Open the dataset named by ``spec`` (see the module docstring for the spellings).

    Parameters
    ----------
    spec:
        A path or a spec string such as ``"demo:blur:2"`` or ``"cifar10:/data:test"``.
    transform:
        How images become model input; usually the checkpoint's ``model.info.transform``.
        ``None``: the demo's own transform for ``demo``, else :func:`default_transform`.
    num_classes:
        When given, labels must lie in ``[0, num_classes)`` or be ``-1``.

    Raises
    ------
    DatasetError
        Naming the file or spec: missing, empty, unreadable, inconsistent, bad labels.
    """
    text = os.fspath(spec).strip()
    if not text:
        raise DatasetError("dataset", f"no dataset given; expected {_SPELLINGS}")
    if text == "demo" or text.startswith("demo:"):
        return _open_demo(text, transform, num_classes)
    chosen = transform if transform is not None else default_transform()
    if parse_torchvision_spec(text) is not None:
        return open_torchvision(text, chosen, num_classes=num_classes)
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise DatasetError(path, f"does not exist; expected {_SPELLINGS}")
    if path.is_dir():
        return ImageFolderDataset(path, chosen, num_classes=num_classes)
    if not path.is_file():  # reading a named pipe would block for ever
        raise DatasetError(path, "is not a regular file (a named pipe, socket or device?)")
    suffix = path.suffix.lower()
    if suffix in FEATURE_SUFFIXES:
        return open_feature_file(path, num_classes=num_classes)
    if suffix == ".npz":
        return _open_npz(path, chosen, num_classes)
    raise DatasetError(path, f"unsupported file type {suffix or '(none)'}; expected {_SPELLINGS}")


def _open_npz(
    path: Path, transform: TransformSpec, num_classes: int | None
) -> ProtoviewDataset | FeatureSet:
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            keys = set(npz.files)
            if "features" in keys:
                return open_feature_file(path, num_classes=num_classes)
            if "x" not in keys:
                raise DatasetError(
                    path,
                    f"has neither 'x' (images) nor 'features' (found: {', '.join(sorted(keys)) or 'nothing'})",
                )
            images = npz["x"]
            labels = npz["y"] if "y" in keys else None
            names = npz["class_names"].tolist() if "class_names" in keys else None
    except NPZ_ERRORS as exc:
        raise DatasetError(path, f"is not a readable .npz file ({exc})") from None
    except MemoryError as exc:  # an array header may claim any size
        raise DatasetError(path, f"holds an array too large to load into memory ({exc})") from None
    return npz_images_dataset(path, images, labels, names, transform, num_classes)


def npz_images_dataset(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str] | None,
    transform: TransformSpec,
    num_classes: int | None,
) -> ArrayImageDataset:
    """Wrap arrays read from ``path`` (x, y, class_names) into an :class:`ArrayImageDataset`.

    ``images``: (N, C, H, W), (N, H, W) or channels-last (N, H, W, C); uint8 (scaled 1/255),
    uint16 (1/65535) or float (as is, or /255 when the maximum exceeds 1.5).
    """
    where = str(path)
    images = _images_nchw(np.asarray(images), where)
    if labels is None:
        labels = np.full(images.shape[0], -1, dtype=np.int64)
    labels = check_labels(
        np.asarray(labels).reshape(-1) if np.ndim(labels) == 2 else labels, where, num_classes
    )
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            where, f"{images.shape[0]} images in 'x' but {labels.shape[0]} labels in 'y'"
        )
    names = (
        [str(n) for n in class_names]
        if class_names is not None
        else default_class_names(labels, num_classes)
    )
    stat = path.stat()
    return ArrayImageDataset(
        images,
        labels,
        names,
        transform,
        source=where,
        description=f"image array {where}: {images.shape[0]} images {images.shape[1]}x{images.shape[2]}x{images.shape[3]}, {len(names)} classes",
        identity=f"npz:{where};size={stat.st_size};mtime={stat.st_mtime_ns}",
    )


def _images_nchw(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] not in (1, 2, 3, 4) and images.shape[3] in (1, 3, 4):
        images = images.transpose(0, 3, 1, 2)  # channels-last (N, H, W, C)
    if images.ndim != 4 or images.shape[1] not in (1, 2, 3, 4):
        raise DatasetError(
            where, f"'x' must be (N, C, H, W) or (N, H, W) images, got shape {images.shape}"
        )
    if images.shape[0] == 0:
        raise DatasetError(where, "'x' holds no images")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "fiub":
        raise DatasetError(where, f"'x' must hold numbers, got dtype {images.dtype}")
    values = images.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise DatasetError(where, "'x' contains NaN or Inf values")
    if images.dtype == np.uint16:
        return values / 65535.0
    return values / 255.0 if values.max() > 1.5 else values


def _open_demo(
    spec: str, transform: TransformSpec | None, num_classes: int | None
) -> ArrayImageDataset:
    try:
        from protoview.core import demo
    except ImportError as exc:
        raise DatasetError(spec, f"the built-in demo is not available ({exc})") from None
    fields = spec.split(":")[1:]
    if len(fields) > 2:
        raise DatasetError(spec, "expected demo, demo:SHIFT or demo:SHIFT:SEVERITY")
    shift = (fields[0] if fields else DEFAULT_DEMO_SHIFT).strip().lower() or DEFAULT_DEMO_SHIFT
    try:
        severity = int(fields[1]) if len(fields) > 1 else DEFAULT_DEMO_SEVERITY
    except ValueError:
        raise DatasetError(spec, f"severity must be a whole number, got {fields[1]!r}") from None
    if shift == "source" and len(fields) > 1:
        raise DatasetError(spec, "demo:source is the clean training part; it takes no severity")
    part, shift, seed = ("source", "none", 0) if shift == "source" else ("test", shift, 0)
    try:
        images, labels = demo.demo_arrays(part=part, shift=shift, severity=severity, seed=seed)
    except ProtoviewError as exc:
        raise DatasetError(spec, exc.problem) from None
    labels = check_labels(labels, spec, num_classes)
    source = "demo:source" if part == "source" else f"demo:{shift}:{severity}"
    what = (
        "clean source part"
        if part == "source"
        else f"test part, shift {shift}, severity {severity}"
    )
    return ArrayImageDataset(
        images,
        labels,
        list(demo.DEMO_CLASS_NAMES),
        transform if transform is not None else demo.DEMO_TRANSFORM,
        source=source,
        description=f"demo digits, {what}: {len(labels)} images",
        identity=f"demo:part={part};shift={shift};severity={severity};seed={seed};"
        f"digest={short_digest(np.ascontiguousarray(images).tobytes(), np.ascontiguousarray(labels).tobytes())}",
    )
