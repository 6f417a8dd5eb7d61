"""TransformSpec, the presets and their validation (see the package docstring)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from protoview.errors import ParameterError


def _error(where: str, problem: str) -> ParameterError:
    """A ParameterError naming ``where``; the window answers it by asking for the option."""
    return ParameterError(where, problem, needs=("preprocess",))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
RESIZE_MODES = ("exact", "short-side")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
OPTION = "--preprocess"
#: Where a transform came from, best first (``protoview info`` prints it).
SOURCES = ("option", "checkpoint", "timm config", "torchvision weights", "built-in", "default")


@dataclass(frozen=True)
class TransformSpec:
    """How to turn an image into the model's input (see the module docstring).

    size: (H, W) to resize to (``resize="short-side"``: (S, S), the short side S), or
    None for :meth:`none`; channels: 1 or 3 (None for :meth:`none`); mean / std: per
    channel (one value is broadcast), applied to pixels in [0, 1]; resize: ``"exact"`` or
    ``"short-side"``; crop: (H, W) of the center crop after resizing, or None;
    interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``; scale: float data hold
    pixels in [0, scale] (None: in [0, 1]); name: the preset it equals ("" if none; a
    label, not part of the identity).
    """

    size: tuple[int, int] | None = (224, 224)
    channels: int | None = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: str = "exact"
    crop: tuple[int, int] | None = None
    interpolation: str = "bilinear"
    scale: float | None = None
    name: str = field(default="", compare=False)

    @classmethod
    def none(cls) -> TransformSpec:
        """No preprocessing: the data are the model's inputs (``--preprocess none``)."""
        return cls(size=None, channels=None, mean=(), std=(), name="none")

    @property
    def is_none(self) -> bool:
        return self.size is None

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) of the model input, or None when it depends on the data (``none``)."""
        if self.crop is not None:
            return self.crop
        return self.size if self.resize == "exact" else None

    def key(self) -> str:
        """A stable string identity (part of the feature-cache key): every field but ``name``."""
        if self.is_none:
            return "preprocess=none"
        return (
            f"size={self.size};ch={self.channels};mean={self.mean};std={self.std};"
            f"resize={self.resize};crop={self.crop};interp={self.interpolation};scale={self.scale}"
        )

    def option(self) -> str:
        """The ``--preprocess`` text that gives exactly this transform (a preset name if equal)."""
        if self.is_none:
            return "none"
        for name, preset in PRESETS.items():
            if preset == self:
                return name
        fields = [f"size={_pair_text(self.size)}"]
        if self.resize != "exact":
            fields.append(f"resize={self.resize}")
        if self.crop is not None:
            fields.append(f"crop={_pair_text(self.crop)}")
        fields.append(f"channels={self.channels}")
        fields.append("mean=" + ",".join(_num(m) for m in self.mean))
        fields.append("std=" + ",".join(_num(s) for s in self.std))
        if self.interpolation != "bilinear":
            fields.append(f"interpolation={self.interpolation}")
        if self.scale is not None:
            fields.append(f"scale={_num(self.scale)}")
        return ",".join(fields)

    def describe(self) -> str:
        """One line for humans, e.g. ``imagenet: resize the short side to 256 (bilinear), ...``."""
        if self.is_none:
            return "none: the data are the model's inputs (no scaling, resizing or normalisation)"
        assert self.size is not None
        if self.resize == "exact":
            steps = [f"resize to {self.size[0]}x{self.size[1]} ({self.interpolation})"]
        else:
            steps = [f"resize the short side to {self.size[0]} ({self.interpolation})"]
        if self.crop is not None:
            steps.append(f"center-crop {self.crop[0]}x{self.crop[1]}")
        steps.append("RGB" if self.channels == 3 else "grey")
        if self.scale is not None:
            steps.append(f"float pixels / {_num(self.scale)}")
        steps.append(f"mean {_nums(self.mean)}, std {_nums(self.std)}")
        text = ", ".join(steps)
        name = self.name or next((n for n, p in PRESETS.items() if p == self), "")
        return f"{name}: {text}" if name else text


def _num(value: float) -> str:
    return f"{value:.6g}"


def _nums(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(_num(v) for v in values) + ")"


def _pair_text(pair: tuple[int, int] | None) -> str:
    if pair is None:
        return "none"
    return f"{pair[0]}" if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


PRESETS: dict[str, TransformSpec] = {
    "none": TransformSpec.none(),
    # torchvision's ImageNet weights: Resize(256) + CenterCrop(224)
    "imagenet": TransformSpec((256, 256), 3, IMAGENET_MEAN, IMAGENET_STD, "short-side", (224, 224), name="imagenet"),
    # DomainBed / TSD / T3A test loaders: Resize((224, 224))
    "domainbed": TransformSpec((224, 224), 3, IMAGENET_MEAN, IMAGENET_STD, name="domainbed"),
    "cifar10": TransformSpec((32, 32), 3, CIFAR10_MEAN, CIFAR10_STD, name="cifar10"),
    "cifar100": TransformSpec((32, 32), 3, CIFAR100_MEAN, CIFAR100_STD, name="cifar100"),
}
#: Used when neither the option, the checkpoint nor the architecture says (with a warning).
DEFAULT = dataclasses.replace(PRESETS["domainbed"], name="")


def preset_names() -> list[str]:
    return list(PRESETS)


# ---------------------------------------------------------------------------- validation
def check_spec(spec: TransformSpec, where: str = OPTION) -> TransformSpec:
    """Validate ``spec`` and broadcast a one-value mean / std; ParameterError naming ``where``."""
    if spec.is_none:
        return TransformSpec.none()
    size = _check_pair(spec.size, "size", where)
    if spec.channels not in (1, 3):
        raise _error(where, f"channels must be 1 or 3, got {spec.channels!r}")
    channels = int(spec.channels)
    if spec.resize not in RESIZE_MODES:
        raise _error(where, f"resize must be exact or short-side, got {spec.resize!r}")
    if spec.interpolation not in INTERPOLATIONS:
        raise _error(
            where, f"interpolation must be {', '.join(INTERPOLATIONS)}; got {spec.interpolation!r}"
        )
    crop = None if spec.crop is None else _check_pair(spec.crop, "crop", where)
    if spec.resize == "short-side":
        if size[0] != size[1]:
            raise _error(
                where, f"resize=short-side takes one size (the short side), got {_pair_text(size)}"
            )
        if crop is None:
            raise _error(
                where,
                "resize=short-side needs crop= (without a crop, images of different shapes "
                "cannot form one batch)",
            )
    if crop is not None and (crop[0] > size[0] or crop[1] > size[1]):
        raise _error(
            where, f"crop {_pair_text(crop)} is larger than the resized image {_pair_text(size)}"
        )
    mean = _per_channel(spec.mean, "mean", channels, where)
    std = _per_channel(spec.std, "std", channels, where)
    if min(std) <= 0:
        raise _error(where, f"std must be positive, got {_nums(std)}")
    scale = spec.scale
    if scale is not None and (not math.isfinite(scale) or scale <= 0):
        raise _error(where, f"scale must be a positive number, got {scale!r}")
    return TransformSpec(size, channels, mean, std, spec.resize, crop, spec.interpolation,
                         None if scale is None else float(scale), name=spec.name)


def _check_pair(pair: object, name: str, where: str) -> tuple[int, int]:
    try:
        values = tuple(pair)  # type: ignore[arg-type]
        ints = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise _error(where, f"{name} must be N or HxW pixels, got {pair!r}") from None
    if len(ints) != 2 or any(float(v) != i for v, i in zip(values, ints, strict=True)):
        raise _error(where, f"{name} must be N or HxW pixels, got {pair!r}")
    if min(ints) < 1:
        raise _error(where, f"{name} must be at least 1 pixel, got {_pair_text(ints)}")
    return ints  # type: ignore[return-value]


def _per_channel(values: tuple[float, ...], name: str, channels: int, where: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise _error(where, f"{name} must be numbers, got {values!r}") from None
    if len(numbers) == 1:
        numbers *= channels
    if len(numbers) != channels:
        raise _error(
            where,
            f"{name} has {len(values)} values for {channels} channel{'s' if channels > 1 else ''} "
            + (f"(give 1 value or {channels})" if channels > 1 else "(give 1 value)"),
        )
    if not all(math.isfinite(v) for v in numbers):
        raise _error(where, f"{name} must be finite numbers, got {_nums(numbers)}")
    return numbers
