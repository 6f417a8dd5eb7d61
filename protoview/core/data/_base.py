"""The dataset base class and in-memory image arrays.

Every image dataset protoview opens yields ``(x, y)`` with ``x`` a float32 ``(C, H, W)``
model input made by its ``transform`` (:mod:`protoview.core.preprocess`; the pixel work is
in :mod:`._pixels`); ``y`` is an ``int`` (``-1`` unknown).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from protoview.core.data._pixels import display_pixels, to_model_input
from protoview.core.model import TransformSpec
from protoview.core.preprocess import OPTION, check_spec
from protoview.errors import DatasetError


def check_transform(transform: TransformSpec, where: str = "transform") -> TransformSpec:
    """Validate ``transform`` and broadcast a single mean/std value to every channel.

    Raises
    ------
    ParameterError
        naming ``where`` for a size or crop that is not positive, channels other than 1
        or 3, a mean/std of the wrong length, a std that is not positive, ...
    """
    return check_spec(transform, where)


def short_digest(*parts: bytes | str) -> str:
    """First 16 hex digits of the sha256 of ``parts`` (a stable fingerprint).

    Strings are hashed as UTF-8; file names that are not valid UTF-8 (decoded by Python
    with surrogate escapes) are hashed as their original bytes.
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def default_class_names(labels: np.ndarray, num_classes: int | None) -> list[str]:
    """``["0", ..., "C-1"]`` with ``C`` = max(num_classes, largest label + 1)."""
    known = labels[labels >= 0]
    count = int(known.max()) + 1 if known.size else 0
    return [str(i) for i in range(max(count, num_classes or 0))]


def check_labels(labels: np.ndarray, where: str, num_classes: int | None) -> np.ndarray:
    """Validate labels: 1-D integers, ``-1`` (unknown) or in ``[0, num_classes)``.

    Returns the labels as an int64 array. Raises DatasetError naming ``where`` and the
    offending values.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DatasetError(where, f"labels must be 1-D, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DatasetError(where, "labels must be whole numbers (found NaN or fractions)")
    elif labels.dtype.kind not in "iub":
        raise DatasetError(where, f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    upper = num_classes if num_classes is not None else np.iinfo(np.int64).max
    bad = np.unique(labels[(labels < -1) | (labels >= upper)])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:5]) + (", ..." if bad.size > 5 else "")
        limit = f"[0, {num_classes})" if num_classes is not None else "0 or more"
        raise DatasetError(
            where,
            f"{bad.size} label value(s) out of range ({shown}); expected {limit} or -1 for unknown",
        )
    return labels


def _needs_preprocess(where: str, problem: str) -> DatasetError:
    return DatasetError(where, problem, needs=("preprocess",))


def preprocess_attrs(dataset: object) -> dict[str, str]:
    """The attributes that record how ``dataset``'s images became model inputs.

    ``preprocess``: the ``--preprocess`` text that reproduces it (``""`` when unknown);
    ``preprocess_source``: where it came from. A feature file passes on its own header's.
    """
    transform = getattr(dataset, "transform", None)
    if not isinstance(transform, TransformSpec):
        attrs = getattr(dataset, "attrs", None) or {}
        return {key: str(attrs.get(key, "")) for key in ("preprocess", "preprocess_source")}
    return {
        "preprocess": transform.option(),
        "preprocess_source": str(getattr(dataset, "transform_source", "") or ""),
    }


def fit_classes(dataset: object, num_classes: int) -> None:
    """Check ``dataset``'s labels against a head of ``num_classes`` classes (DatasetError
    naming the data), and give unnamed classes the head's count of default names."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return
    dataset.labels = check_labels(labels, str(getattr(dataset, "source", "dataset")), num_classes)  # type: ignore[attr-defined]
    names = list(getattr(dataset, "class_names", []) or [])
    if len(names) < num_classes and names == [str(i) for i in range(len(names))]:
        dataset.class_names = [str(i) for i in range(num_classes)]  # type: ignore[attr-defined]


class ProtoviewDataset(Dataset):
    """Base of every image dataset protoview opens.

    Attributes
    ----------
    labels: (N,) int64, ``-1`` where unknown.
    class_names: list of C names.
    transform: the validated :class:`TransformSpec` applied to every image.
    transform_source: where it came from (option, checkpoint, ..., default; "" unknown).
    description: one line for humans.
    source: the path (or ``"demo:..."``) it was opened from.
    suggested_preprocess: the preprocessing this layout's images are usually given, as a
        ``--preprocess`` preset name (``"cifar10"``, ``"cifar100"``, ``"imagenet"``,
        ``"domainbed"``), or None when the layout does not say. A hint for choosing the
        transform when neither the user nor the checkpoint says; never applied by itself.
    notes: remarks found when opening (e.g. a class folder absent from a domain).
    benchmark: for a benchmark layout, what it is (``{"dataset": "PACS", "domain":
        "art_painting", "environment": 0}``), so that a checkpoint's record of its training
        data can be compared with it; else None.
    file_order_reference: (optional attribute) whose reference scripts stream these data in
        file order (CIFAR-10-C: RobustBench's and tent's); an adaptation run then keeps the
        file order unless told to shuffle
        (:func:`protoview.core.adapt.stream.run_order`).
    """

    labels: np.ndarray
    class_names: list[str]
    transform: TransformSpec
    transform_source: str = ""
    description: str
    source: str
    suggested_preprocess: str | None = None
    notes: tuple[str, ...] = ()
    benchmark: dict[str, object] | None = None

    @property
    def num_labelled(self) -> int:
        """How many samples have a known label (0 for unlabelled target data)."""
        return int(np.count_nonzero(self.labels >= 0))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def set_transform(self, transform: TransformSpec, source: str = "") -> None:
        """Apply ``transform`` from now on (validated; refused when it does not fit the data).

        Raises ParameterError (a bad transform) or DatasetError naming the data (e.g.
        ``none`` for image files, float images outside [0, 1] for a transform that scales).
        """
        self.transform = self._checked_transform(transform)
        self.transform_source = source

    def _checked_transform(self, transform: TransformSpec) -> TransformSpec:
        spec = check_transform(transform)
        if spec.is_none:
            raise _needs_preprocess(
                self.source,
                f"{OPTION} none feeds the data to the model as they are, but these are image "
                f"files (pixels); choose a preset (imagenet, domainbed, cifar10, ...) or fields "
                f"(e.g. {OPTION} size=32,mean=0,std=1 for pixels in [0, 1])",
            )
        return spec

    def model_input(self, index: int) -> torch.Tensor:
        """The model's input for image ``index``: float32 (C, H, W), after the transform."""
        return self[index][0]

    def preview(self, index: int, max_side: int = 96) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """Image ``index`` as stored and as the model sees it.

        Returns (thumbnail, input pixels, (min, max)): the raw image (see
        :meth:`thumbnail`), the model input made visible by :func:`display_pixels` (uint8,
        at the input's own size), and the range of the input's values.
        """
        x = self.model_input(index)
        low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
        return self.thumbnail(index, max_side), display_pixels(x, self.transform), (low, high)

    def identity(self) -> str:
        """A stable string naming exactly this data (part of the feature-cache key)."""
        raise NotImplementedError

    def thumbnail(self, index: int, max_side: int = 96) -> np.ndarray:
        """The raw image ``index`` as uint8 ``(H, W)`` or ``(H, W, 3)``, at most ``max_side`` px."""
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return index % n


class ArrayImageDataset(ProtoviewDataset):
    """Images held in memory as one ``(N, C, H, W)`` array (demo, ``.npz``, torchvision sets).

    Parameters
    ----------
    images: (N, C, H, W), C in 1..4: uint8 pixels (scaled by 1/255), or floats: pixels in
        [0, 1] (in [0, scale] with the transform's ``scale``), or the model's inputs
        themselves with ``TransformSpec.none()``. Floats outside that range are refused
        with the range and the option named, never rescaled by a guess.
    labels: (N,) int64, ``-1`` unknown.
    class_names, transform, source, description: see :class:`ProtoviewDataset`.
    identity: the identity string (the caller knows what the data is).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        transform: TransformSpec,
        *,
        source: str,
        description: str,
        identity: str,
    ) -> None:
        if images.ndim != 4 or images.shape[1] not in (1, 2, 3, 4):
            raise DatasetError(
                source, f"images must be (N, C, H, W) with C in 1..4, got shape {images.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(source, f"{images.shape[0]} images but {labels.shape[0]} labels")
        if images.shape[0] == 0:
            raise DatasetError(source, "holds no images")
        self._pixels = images.dtype == np.uint8  # 8-bit pixels, else floats
        self._range = (0.0, 255.0)
        if not self._pixels:
            images = images.astype(np.float32, copy=False)
            if not np.all(np.isfinite(images)):
                raise DatasetError(source, "images contain NaN or Inf values")
            self._range = (float(images.min()), float(images.max()))
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = labels.astype(np.int64, copy=False)
        self.class_names = list(class_names)
        self.source = source
        self.description = description
        self._identity = identity
        self.set_transform(transform)

    def _checked_transform(self, transform: TransformSpec) -> TransformSpec:
        spec = check_transform(transform)
        low, high = self._range
        if spec.is_none:
            if self._pixels:
                raise _needs_preprocess(
                    self.source,
                    f"holds 8-bit pixels (0..255), not model inputs, but {OPTION} none feeds them "
                    f"as they are; choose a preset (cifar10, imagenet, ...) or fields (e.g. "
                    f"{OPTION} size=32,mean=0,std=1 for pixels in [0, 1])",
                )
            return spec
        top = spec.scale or 1.0
        slack = 1e-3 * top  # rounding of stored floats, not a range of its own
        if not self._pixels and (low < -slack or high > top + slack):
            hint = (
                f"if they are pixels in [0, 255], add scale=255 to {OPTION}"
                if spec.scale is None and high <= 255 + 0.255 and low >= -slack
                else f"if they are pixels in [0, S], add scale=S to {OPTION}"
            )
            raise _needs_preprocess(
                self.source,
                f"holds float images with values in [{low:.4g}, {high:.4g}], outside [0, {top:g}] "
                f"(pixels); if they are already the model's inputs, pass {OPTION} none; {hint}",
            )
        return spec

    @property
    def _scale(self) -> float:
        if self._pixels:
            return 1.0 / 255.0
        return 1.0 / (self.transform.scale or 1.0) if not self.transform.is_none else 1.0

    def identity(self) -> str:
        return self._identity

    @property
    def stored_images(self) -> np.ndarray:
        """(N, C, H, W) the images as stored: uint8 pixels or float32 values (a view of
        the dataset's memory, not a copy)."""
        return self._images.numpy()

    def get_batch(
        self, indices: Sequence[int] | np.ndarray | slice, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs for several images at once (much faster than item by item).

        With ``device`` (e.g. CUDA) the raw pixels (uint8 when stored so: 4x less to copy)
        are moved there first and converted there.

        Returns
        -------
        x: (B, channels, H, W) float32, normalised, on ``device`` (default CPU);
        y: (B,) int64 on the CPU.
        """
        if not isinstance(indices, slice):
            indices = np.asarray(indices, dtype=np.int64)
        raw = self._images[torch.as_tensor(indices) if isinstance(indices, np.ndarray) else indices]
        if device is not None and torch.device(device).type != "cpu":
            cuda = torch.device(device).type == "cuda"
            raw = (raw.pin_memory() if cuda else raw).to(device, non_blocking=cuda)
        x = to_model_input(raw, self.transform, self._scale)
        return x, torch.from_numpy(np.ascontiguousarray(self.labels[indices]))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = self._check_index(int(index))
        x, _ = self.get_batch([index])
        return x[0], int(self.labels[index])

    def thumbnail(self, index: int, max_side: int = 96) -> np.ndarray:
        index = self._check_index(int(index))
        image = self._images[index].to(torch.float32) * self._scale
        if self.transform.is_none:  # model inputs: stretch each channel to be seen
            low = image.amin(dim=(1, 2), keepdim=True)
            image = (image - low) / (image.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1e-12)
        if image.shape[0] == 2:
            image = image[:1]
        elif image.shape[0] == 4:
            image = image[:3]
        height, width = image.shape[-2:]
        if max(height, width) > max_side:
            scale = max_side / max(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
