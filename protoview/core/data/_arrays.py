"""Image arrays in a ``.npz`` (``x`` images, optional ``y`` labels and ``class_names``).

A ``.npz`` holding ``features`` instead is a feature file (:mod:`._featurefile`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protoview.core.data._base import (
    ArrayImageDataset,
    ProtoviewDataset,
    check_labels,
    default_class_names,
)
from protoview.core.data._featurefile import NPZ_ERRORS, FeatureSet, open_feature_file
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError


def open_npz(
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
    uint16 (1/65535), other integers in 0..255 (as uint8), or floats: pixels in [0, 1] (or
    [0, scale]) or, with ``TransformSpec.none()``, the model's inputs as they are. Float
    values outside the pixel range are refused with the range and ``--preprocess`` named.
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
        description=f"image array {where}: {images.shape[0]} images {images.shape[1]}x{images.shape[2]}x{images.shape[3]}, "
        + (f"{len(names)} classes" if (labels >= 0).any() else "no labels"),
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
    if images.dtype == np.uint16:
        return images.astype(np.float32) / np.float32(65535.0)
    if images.dtype.kind in "iu":  # 8-bit pixels stored in a wider integer type
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DatasetError(
                where,
                f"'x' holds {images.dtype} values in [{low}, {high}]; integer images must be "
                "8-bit pixels (0..255): save them as uint8 or uint16, or as floats",
            )
        return images.astype(np.uint8)
    values = images.astype(np.float32)  # floats (and bools) as they are: no guess on the range
    if not np.all(np.isfinite(values)):
        raise DatasetError(where, "'x' contains NaN or Inf values")
    return values
