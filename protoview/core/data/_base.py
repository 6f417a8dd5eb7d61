"""The dataset base class, in-memory image arrays, and the pixel transform shared by all.

Every image dataset protoview opens yields ``(x, y)`` with ``x`` a float32 ``(C, H, W)``
tensor already resized to ``transform.size``, converted to ``transform.channels`` and
normalised by ``transform.mean`` / ``transform.std``; ``y`` is an ``int`` (``-1`` unknown).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from protoview.core.model import TransformSpec
from protoview.errors import DatasetError, ParameterError

# ITU-R 601-2 luma, the weights PIL uses for RGB -> "L".
_LUMA = (0.299, 0.587, 0.114)


def check_transform(transform: TransformSpec) -> TransformSpec:
    """Validate ``transform`` and broadcast a single mean/std value to every channel.

    Raises
    ------
    ParameterError
        ``where="transform"`` for a size that is not two positive ints, channels other
        than 1 or 3, a mean/std of the wrong length, or a std that is not positive.
    """
    size = tuple(int(s) for s in transform.size)
    if len(size) != 2 or min(size) < 1:
        raise ParameterError(
            "transform", f"size must be two positive ints (H, W), got {transform.size}"
        )
    if transform.channels not in (1, 3):
        raise ParameterError("transform", f"channels must be 1 or 3, got {transform.channels}")
    mean, std = tuple(transform.mean), tuple(transform.std)
    if len(mean) == 1:
        mean = mean * transform.channels
    if len(std) == 1:
        std = std * transform.channels
    if len(mean) != transform.channels or len(std) != transform.channels:
        raise ParameterError(
            "transform",
            f"mean {transform.mean} / std {transform.std} do not match {transform.channels} channels",
        )
    if not all(np.isfinite(mean)) or not all(np.isfinite(std)) or min(std) <= 0:
        raise ParameterError("transform", f"std must be positive and finite, got {transform.std}")
    return TransformSpec(size=size, channels=transform.channels, mean=mean, std=std)


def convert_channels(batch: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert a ``(B, C, H, W)`` float batch to ``channels`` (1 or 3).

    ``C = 4`` (RGBA) drops alpha, ``C = 2`` (LA) keeps luminance, 3 -> 1 uses PIL's luma
    weights, 1 -> 3 repeats the grey channel.
    """
    if batch.shape[1] == 4:
        batch = batch[:, :3]
    elif batch.shape[1] == 2:
        batch = batch[:, :1]
    if batch.shape[1] == channels:
        return batch
    if batch.shape[1] == 1:
        return batch.expand(-1, channels, -1, -1)
    weights = torch.tensor(_LUMA, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch * weights).sum(dim=1, keepdim=True)


def normalise(batch: torch.Tensor, transform: TransformSpec, scale: float = 1.0) -> torch.Tensor:
    """``(batch * scale - mean) / std`` per channel, on ``batch``'s device.

    ``batch``: (B, C, H, W) pixels, in [0, 1] once multiplied by ``scale``.
    """
    mean = torch.tensor(transform.mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    std = torch.tensor(transform.std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    return torch.addcmul(-mean / std, batch.to(torch.float32), scale / std)


def to_model_input(
    batch: torch.Tensor, transform: TransformSpec, scale: float = 1.0
) -> torch.Tensor:
    """Turn ``(B, C, H, W)`` pixels (in [0, 1] once multiplied by ``scale``) into model input.

    Channels are converted first, then the batch is resized (bilinear, antialiased) to
    ``transform.size`` when it differs, then normalised; all on ``batch``'s device. Returns
    float32 (B, transform.channels, H, W).
    """
    if batch.shape[1] == transform.channels and tuple(batch.shape[-2:]) == tuple(transform.size):
        return normalise(batch, transform, scale)  # one fused pass, the common case
    batch = convert_channels(batch.to(torch.float32) * scale, transform.channels)
    if tuple(batch.shape[-2:]) != tuple(transform.size):
        batch = F.interpolate(
            batch, size=transform.size, mode="bilinear", align_corners=False, antialias=True
        )
    return normalise(batch, transform).contiguous()


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


class ProtoviewDataset(Dataset):
    """Base of every image dataset protoview opens.

    Attributes
    ----------
    labels: (N,) int64, ``-1`` where unknown.
    class_names: list of C names.
    transform: the validated :class:`TransformSpec` applied to every image.
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
    """

    labels: np.ndarray
    class_names: list[str]
    transform: TransformSpec
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
    images: (N, C, H, W) uint8 (scaled by 1/255) or float32 in [0, 1]; C in 1..4.
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
        self._scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
        if images.dtype != np.uint8:
            images = images.astype(np.float32, copy=False)
            if not np.all(np.isfinite(images)):
                raise DatasetError(source, "images contain NaN or Inf values")
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = labels.astype(np.int64, copy=False)
        self.class_names = list(class_names)
        self.transform = check_transform(transform)
        self.source = source
        self.description = description
        self._identity = identity

    def identity(self) -> str:
        return self._identity

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
