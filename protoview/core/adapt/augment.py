"""Input-space augmentations of the adaptation methods, and the pixels they work on.

Methods that augment their test batch (CoTTA, RMT, RoTTA, ROID, CMF, MEMO, AdaContrast)
augment *pixels in [0, 1]*: in their authors' code the input normalisation is part of the
model (RobustBench's models, the toolkit's ``normalize_model``), so clipping to [0, 1],
colour jitter and gamma act on images. protoview's batches arrive normalised by the
dataset's :class:`~protoview.core.preprocess.TransformSpec` (``(pixels - mean) / std``), so
an augmenting adapter goes back to pixels with :class:`PixelSpace`, augments, and
normalises again before its model sees the batch. Without it (TTAB's CoTTA gap) clipping to
[0, 1] would cut normalised inputs and gamma would take powers of negative numbers.

With ``mean = 0`` and ``std = 1`` (``--preprocess none``, or data that are already inputs)
both maps are the identity and an augmenting method equals its authors' code bit for bit;
with another normalisation the round trip ``(x * std + mean - mean) / std`` differs from
the authors' by float rounding only (below 1e-6 of the input).

:func:`tta_transforms` is the toolkit's ``get_tta_transforms``
(github.com/mariodoebler/test-time-adaptation, commit 8b2ed63,
``classification/augmentations/transforms_cotta.py``), with its three small transforms;
it draws every random number from torch's global generator, as the original does, so a
seeded run repeats exactly. One transform is applied to the whole batch (the same draws for
every image), as in the original.

:func:`image_tta_transforms` is the same for images of any size: CoTTA's authors
(github.com/qinenergy/cotta, commit c212a20, ``cifar/cotta.py`` / ``imagenet/cotta.py``)
hard-code the side (32 or 224), the toolkit takes it from the model's preprocessing; here
it is the batch's own. For square images it is :func:`tta_transforms` (equal draw for draw to
both, for the authors' parameters); for others it pads each side by half its length and
crops back to ``(height, width)``, where :func:`tta_transforms` would crop a square.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms as transforms
import torchvision.transforms.functional as TF
from torch import nn
from torchvision.transforms import ColorJitter, InterpolationMode

from protoview.core.preprocess import TransformSpec


@dataclass(frozen=True)
class PixelSpace:
    """Between a normalised batch and its pixels: ``pixels = x * std + mean`` per channel.

    mean, std: per channel (empty: the identity; one value: every channel).
    """

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @classmethod
    def of(cls, transform: TransformSpec | None) -> PixelSpace:
        """The pixel space of data prepared by ``transform`` (None or ``none``: identity)."""
        if transform is None or transform.is_none:
            return cls()
        return cls(tuple(float(m) for m in transform.mean), tuple(float(s) for s in transform.std))

    @property
    def is_identity(self) -> bool:
        return all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels = x.shape[1]
        mean = list(self.mean) * channels if len(self.mean) == 1 else list(self.mean)
        std = list(self.std) * channels if len(self.std) == 1 else list(self.std)
        shape = (1, channels) + (1,) * (x.ndim - 2)
        as_tensor = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device).view(shape)  # noqa: E731
        return as_tensor(mean), as_tensor(std)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised batch (N, C, ...) -> pixels (the same tensor when the identity)."""
        if self.is_identity:
            return x
        mean, std = self._stats(x)
        return x * std + mean

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (N, C, ...) -> the model's normalised input (the same tensor when identity)."""
        if self.is_identity:
            return pixels
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def apply(self, transform: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``transform`` of the pixels of ``x``, normalised again (an augmentation of ``x``)."""
        return self.from_pixels(transform(self.to_pixels(x)))

    def describe(self) -> str:
        if self.is_identity:
            return "inputs taken as pixels in [0, 1] (no normalisation)"
        return f"pixels = input * std {self.std} + mean {self.mean}"


class GaussianNoise(nn.Module):
    """Adds ``N(mean, std)`` noise drawn on the CPU (as the original, then moved)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.std, self.mean = std, mean

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(img.size()) * self.std + self.mean
        return img + noise.to(img.device)


class Clip(nn.Module):
    """Clamps to ``[min_val, max_val]``."""

    def __init__(self, min_val: float = 0.0, max_val: float = 1.0) -> None:
        super().__init__()
        self.min_val, self.max_val = min_val, max_val

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.clip(img, self.min_val, self.max_val)


class ColorJitterPro(ColorJitter):
    """Brightness, contrast, saturation, hue and gamma in a random order (KATANA's)."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, gamma=0) -> None:
        super().__init__(brightness, contrast, saturation, hue)
        self.gamma = self._check_input(gamma, "gamma")

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        fn_idx = torch.randperm(5)
        for fn_id in fn_idx:
            if fn_id == 0 and self.brightness is not None:
                factor = torch.tensor(1.0).uniform_(*self.brightness).item()
                img = TF.adjust_brightness(img, factor)
            if fn_id == 1 and self.contrast is not None:
                factor = torch.tensor(1.0).uniform_(*self.contrast).item()
                img = TF.adjust_contrast(img, factor)
            if fn_id == 2 and self.saturation is not None:
                factor = torch.tensor(1.0).uniform_(*self.saturation).item()
                img = TF.adjust_saturation(img, factor)
            if fn_id == 3 and self.hue is not None:
                factor = torch.tensor(1.0).uniform_(*self.hue).item()
                img = TF.adjust_hue(img, factor)
            if fn_id == 4 and self.gamma is not None:
                factor = torch.tensor(1.0).uniform_(*self.gamma).item()
                img = img.clamp(1e-8, 1.0)  # the original's guard against NaN gradients
                img = TF.adjust_gamma(img, factor)
        return img


@functools.lru_cache(maxsize=64)
def tta_transforms(
    img_size: int | Sequence[int],
    gaussian_std: float = 0.005,
    soft: bool = False,
    padding_mode: str = "edge",
    cotta_augs: bool = True,
) -> transforms.Compose:
    """The toolkit's ``get_tta_transforms``: pixels (N, 3, H, W) in, augmented pixels out.

    ``cotta_augs=False`` (ROID, CMF) leaves out the blur and the noise. Built once per
    arguments (the transforms hold no state; their draws come from torch's generator), so
    ``img_size`` must be hashable: an int or a tuple.
    """
    n_pixels = img_size[0] if isinstance(img_size, (list, tuple)) else int(img_size)
    chosen: list[nn.Module] = [
        Clip(0.0, 1.0),
        ColorJitterPro(
            brightness=[0.8, 1.2] if soft else [0.6, 1.4],
            contrast=[0.85, 1.15] if soft else [0.7, 1.3],
            saturation=[0.75, 1.25] if soft else [0.5, 1.5],
            hue=[-0.03, 0.03] if soft else [-0.06, 0.06],
            gamma=[0.85, 1.15] if soft else [0.7, 1.3],
        ),
        transforms.Pad(padding=int(n_pixels / 2), padding_mode=padding_mode),
        transforms.RandomAffine(
            degrees=[-8, 8] if soft else [-15, 15],
            translate=(1 / 16, 1 / 16),
            scale=(0.95, 1.05) if soft else (0.9, 1.1),
            shear=None,
            interpolation=InterpolationMode.BILINEAR,
            fill=0,
        ),
    ]
    if cotta_augs:
        chosen += [
            transforms.GaussianBlur(kernel_size=5, sigma=[0.001, 0.25] if soft else [0.001, 0.5]),
            transforms.CenterCrop(size=n_pixels),
            transforms.RandomHorizontalFlip(p=0.5),
            GaussianNoise(0, gaussian_std),
            Clip(0.0, 1.0),
        ]
    else:
        chosen += [
            transforms.CenterCrop(size=n_pixels),
            transforms.RandomHorizontalFlip(p=0.5),
            Clip(0.0, 1.0),
        ]
    return transforms.Compose(chosen)


@functools.lru_cache(maxsize=64)
def image_tta_transforms(
    height: int, width: int, gaussian_std: float = 0.005, soft: bool = False
) -> transforms.Compose:
    """CoTTA's augmentations for ``(N, C, height, width)`` pixels: :func:`tta_transforms` for a
    square, else the same steps with the padding and the centre crop of each side's length."""
    if height == width:
        return tta_transforms(height, gaussian_std=gaussian_std, soft=soft)
    steps = list(tta_transforms(height, gaussian_std=gaussian_std, soft=soft).transforms)
    for i, step in enumerate(steps):
        if isinstance(step, transforms.Pad):
            steps[i] = transforms.Pad(padding=[width // 2, height // 2], padding_mode="edge")
        elif isinstance(step, transforms.CenterCrop):
            steps[i] = transforms.CenterCrop(size=[height, width])
    return transforms.Compose(steps)
