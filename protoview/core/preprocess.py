"""How an image becomes the model's input: :class:`TransformSpec`, the presets, ``--preprocess``.

A transform is an explicit value: printed by ``protoview info``, stored in snapshots and
feature files, and part of the feature-cache key. It is never guessed from the data's
range. Steps, in order (as torchvision's ``Resize`` / ``CenterCrop`` / ``ToTensor`` /
``Normalize``):

1. pixels to [0, 1]: 8-bit by 1/255, 16-bit by 1/65535, float data divided by ``scale``
   (default 1; float data outside [0, 1] are refused, never rescaled by a guess);
2. channels converted to ``channels`` (grey <-> RGB, alpha dropped);
3. resized: ``resize="exact"`` to ``size`` = (H, W), or ``resize="short-side"``: the
   shorter side to ``size[0]``, the aspect ratio kept; with ``interpolation``;
4. center-cropped to ``crop`` = (H, W) when given;
5. normalised: ``(x - mean) / std`` per channel.

:func:`TransformSpec.none` (``--preprocess none``) skips all of it: the data already are
the model's inputs and go in as they are.

The ``--preprocess`` option (also the window's open dialog)::

    none | imagenet | domainbed | cifar10 | cifar100          a preset alone
    cifar10,size=40                                          a preset with fields changed
    size=32,mean=0.5,std=0.25                                fields over the model's own
    fields: size=N|HxW  resize=exact|short-side  crop=N|HxW  channels=1|3
            mean=M[,M,M]  std=S[,S,S]  interpolation=bilinear|bicubic|nearest  scale=S
"""

from __future__ import annotations

import dataclasses
import difflib
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


# ---------------------------------------------------------------------------- the option
@dataclass(frozen=True)
class PreprocessOption:
    """A parsed ``--preprocess``: a preset (or none) and/or fields that override.

    text: as given; preset: the named preset or None; fields: field name -> value (already
    converted), applied over the preset, or over the model's own transform when no preset.
    """

    text: str
    preset: TransformSpec | None = None
    fields: tuple[tuple[str, object], ...] = ()

    @property
    def complete(self) -> bool:
        """True when it does not depend on the model's own transform."""
        given = {k for k, _ in self.fields}
        return self.preset is not None or {"size", "mean", "std"} <= given

    def apply(self, base: TransformSpec) -> TransformSpec:
        """The transform: the fields over the preset (or over ``base``), validated."""
        start = self.preset if self.preset is not None else base
        if not self.fields:
            return check_spec(start)
        if start.is_none:
            start = DEFAULT
        values = dict(self.fields)
        channels = values.get("channels", start.channels)
        for key in ("mean", "std"):
            if key not in values and len(getattr(start, key)) not in (1, channels):
                raise _error(
                    OPTION, f"channels={channels} needs mean= and std= for {channels} channel(s) too"
                )
        if "size" in values and "resize" not in values and "crop" not in values:
            values.update(resize="exact", crop=None)  # a new size alone: resize to it exactly
        spec = dataclasses.replace(start, name="", **values)  # type: ignore[arg-type]
        return check_spec(spec)


_FIELDS = ("size", "resize", "crop", "channels", "mean", "std", "interpolation", "scale")


def parse_preprocess(text: str | None) -> PreprocessOption | None:
    """Parse ``--preprocess`` (see the module docstring); None for None or blank.

    Raises
    ------
    ParameterError
        ``where="--preprocess"``: unknown preset or field, a value that is not a number,
        a size of 0, channels other than 1 or 3, ... (each in one line).
    """
    if text is None:
        return None
    raw = str(text).strip()
    if not raw:
        return None
    preset: TransformSpec | None = None
    fields: dict[str, list[str]] = {}
    last: str | None = None
    for position, token in enumerate(t.strip() for t in raw.split(",")):
        if not token:
            continue
        if "=" in token:
            key, _, value = token.partition("=")
            key = key.strip().lower().replace("_", "-")
            key = "interpolation" if key == "interp" else key
            if key not in _FIELDS:
                raise _error(OPTION, f"unknown field {key!r}{_close(key, _FIELDS)}; fields: {', '.join(_FIELDS)}")
            if key in fields:
                raise _error(OPTION, f"{key} is given twice")
            fields[key], last = [value.strip()], key
        elif position == 0:
            preset = _preset(token)
        elif last in ("mean", "std"):
            fields[last].append(token)  # mean=0.5,0.4,0.3: the values go on
        else:
            raise _error(OPTION, f"{token!r} is not a field (name=value) in {raw!r}")
    if preset is not None and preset.is_none and fields:
        raise _error(OPTION, "none takes no fields (it feeds the data to the model as they are)")
    converted = tuple((key, _convert(key, values)) for key, values in fields.items())
    option = PreprocessOption(raw, preset, converted)
    if option.complete:
        option.apply(DEFAULT)  # all of it is known: check it whole now
    else:  # the rest comes from the model: check what can be checked without it
        channels = dict(converted).get("channels")
        for key, value in converted:
            if key not in ("mean", "std"):
                continue
            if channels is None and len(value) not in (1, 3):  # type: ignore[arg-type]
                raise _error(
                    OPTION, f"{key} has {len(value)} values; give 1 value, or one per channel (1 or 3)"  # type: ignore[arg-type]
                )
            _per_channel(value, key, channels or (1 if len(value) == 1 else 3), OPTION)  # type: ignore[arg-type]
    return option


def _close(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _preset(token: str) -> TransformSpec:
    name = token.strip().lower()
    if name not in PRESETS:
        raise _error(
            OPTION,
            f"unknown preset {token!r}{_close(name, preset_names())}; choose {', '.join(PRESETS)} "
            "or give fields (size=32,mean=...,std=...)",
        )
    return PRESETS[name]


def _convert(key: str, values: list[str]) -> object:
    text = ",".join(values).strip().strip("()[]")
    if key in ("mean", "std"):
        return tuple(_float(key, v) for v in text.replace("/", ",").split(",") if v.strip())
    if key in ("size", "crop"):
        if key == "crop" and text.lower() == "none":
            return None
        parts = text.lower().replace("*", "x").split("x")
        if len(parts) > 2 or len(values) > 1:
            raise _error(OPTION, f"{key} must be N or HxW pixels, got {text!r}")
        numbers = tuple(_int(key, p) for p in parts)
        pair = numbers * 2 if len(numbers) == 1 else numbers
        if min(pair) < 1:
            raise _error(OPTION, f"{key} must be at least 1 pixel, got {text!r}")
        return pair
    if key == "channels":
        channels = _int(key, text)
        if channels not in (1, 3):
            raise _error(OPTION, f"channels must be 1 or 3, got {text!r}")
        return channels
    if key == "resize":
        mode = text.lower().replace("_", "-").replace("shortside", "short-side")
        if mode not in RESIZE_MODES:
            raise _error(OPTION, f"resize must be exact or short-side, got {text!r}")
        return mode
    if key == "interpolation":
        mode = text.lower()
        if mode not in INTERPOLATIONS:
            raise _error(OPTION, f"interpolation must be {', '.join(INTERPOLATIONS)}; got {text!r}")
        return mode
    scale = _float(key, text)
    if scale <= 0:
        raise _error(OPTION, f"scale must be a positive number, got {text!r}")
    return scale


def _float(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(OPTION, f"{key} must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise _error(OPTION, f"{key} must be a finite number, got {text.strip()!r}")
    return value


def _int(key: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _error(OPTION, f"{key} must be a whole number, got {text.strip()!r}") from None


def resolve_preprocess(
    option: str | PreprocessOption | TransformSpec | None,
    base: TransformSpec | None,
    base_source: str,
) -> tuple[TransformSpec, str]:
    """(transform, source): the option over the model's own transform ``base``.

    ``base`` None means the model says nothing: :data:`DEFAULT` with source ``"default"``.
    The source is ``"option"`` for a preset or a complete set of fields, ``"option over
    <source>"`` for fields that change part of the model's own.
    """
    if base is None:
        base, base_source = DEFAULT, "default"
    if option is None or option == "":
        return check_spec(base, "transform"), base_source
    if isinstance(option, TransformSpec):
        return check_spec(option), "option"
    parsed = parse_preprocess(option) if isinstance(option, str) else option
    if parsed is None:
        return check_spec(base, "transform"), base_source
    spec = parsed.apply(base)
    return spec, "option" if parsed.complete else f"option over {base_source}"


def default_warning(model: str) -> str:
    """The one-line warning when nothing says how ``model`` wants its inputs."""
    return (
        f"no preprocessing is known for {model}: using the default ({DEFAULT.describe()}); "
        f"say what the model expects with {OPTION} (none, {', '.join(n for n in PRESETS if n != 'none')}, "
        "or fields such as size=32,mean=0.5,std=0.25)"
    )
