"""The model's own preprocessing, from the best source there is.

Order (the first that says wins; ``--preprocess`` overrides them all, see
:func:`protoview.core.preprocess.resolve_preprocess`):

1. ``checkpoint``: the file's own metadata (a protoview checkpoint's ``transform``,
   DomainBed's ``model_input_shape``);
2. ``timm config``: a timm model's pretrained config (``timm.data.resolve_data_config``,
   turned into timm's evaluation transform: resize ``floor(size / crop_pct)``, center crop);
3. ``torchvision weights``: the ``transforms()`` of the architecture's default torchvision
   weights (metadata only: nothing is downloaded);
4. ``built-in``: a built-in architecture's own (:data:`BUILTIN_PREPROCESS`);
5. nothing: the caller falls back to the default and warns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from protoview.core.checkpoint.archs import ArchSpec
from protoview.core.preprocess import DEFAULT, TransformSpec, check_spec, parse_preprocess


def _demo_transform() -> TransformSpec:
    from protoview.core.demo import DEMO_TRANSFORM  # lazy: only this architecture needs the demo

    return DEMO_TRANSFORM


#: Built-in architecture name -> its ``--preprocess`` text (or a function returning the
#: transform). Add one line with each built-in architecture (``archs.BUILTIN_ARCHS``).
#: RobustBench models take pixels in [0, 1] (mean 0, std 1); PyCIL normalises CIFAR-100 (its
#: benchmark) with CIFAR-100's statistics (``utils/data.py`` ``iCIFAR100``; a model trained
#: by PyCIL on CIFAR-10 needs ``--preprocess cifar10``).
BUILTIN_PREPROCESS: dict[str, str | Callable[[], TransformSpec]] = {
    "protoview-demo-cnn": _demo_transform,
    "wrn28_10": "size=32,mean=0,0,0,std=1,1,1",
    **{f"cifar_resnet{d}": "cifar100" for d in (20, 32, 44, 56, 110)},
}


def model_transform(
    stored: TransformSpec | None, spec: ArchSpec | None, model: nn.Module | None
) -> tuple[TransformSpec | None, str]:
    """(the model's own transform or None, its source) — see the module docstring."""
    if stored is not None:
        return stored, "checkpoint"
    found = timm_transform(model) if model is not None else None
    if found is not None:
        return found, "timm config"
    if spec is not None and spec.kind == "torchvision":
        found = torchvision_transform(spec.target)
        if found is not None:
            return found, "torchvision weights"
    if spec is not None and spec.kind == "builtin" and spec.target in BUILTIN_PREPROCESS:
        own = BUILTIN_PREPROCESS[spec.target]
        if callable(own):
            return check_spec(own(), "built-in"), "built-in"
        option = parse_preprocess(own)
        assert option is not None
        return option.apply(DEFAULT), "built-in"
    return None, "default"


def timm_transform(model: nn.Module) -> TransformSpec | None:
    """timm's evaluation transform for ``model`` (None when it has no pretrained config)."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict):
        return None
    try:
        from timm.data import resolve_data_config

        cfg = {**cfg, **resolve_data_config({}, model=model)}
    except Exception:  # noqa: BLE001 - no timm (or an old one): read the config as it is
        pass
    try:
        channels, height, width = (int(v) for v in cfg["input_size"])
        mean, std = tuple(float(m) for m in cfg["mean"]), tuple(float(s) for s in cfg["std"])
        crop_pct = float(cfg.get("crop_pct") or 0.875)  # timm's DEFAULT_CROP_PCT
        interpolation = str(cfg.get("interpolation") or "bilinear")
        crop_mode = str(cfg.get("crop_mode") or "center")
    except (KeyError, TypeError, ValueError):
        return None
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bicubic" if interpolation == "random" else "bilinear"
    if height == width and crop_mode != "squash":  # timm: Resize(short side), CenterCrop
        side = int(math.floor(height / crop_pct))
        size, resize = (side, side), "short-side"
    else:
        size, resize = (int(height / crop_pct), int(width / crop_pct)), "exact"
    spec = TransformSpec(size, channels, mean, std, resize, (height, width), interpolation)
    try:
        return check_spec(spec, "timm config")
    except Exception:  # noqa: BLE001 - a config we cannot follow: say nothing rather than wrong
        return None


def torchvision_transform(name: str) -> TransformSpec | None:
    """The ``transforms()`` of torchvision's default weights for ``name`` (no download)."""
    try:
        from torchvision.models import get_model_weights

        preset: Any = get_model_weights(name).DEFAULT.transforms()
        crop = int(preset.crop_size[0])
        side = int(preset.resize_size[0])
        interpolation = str(preset.interpolation.value)
        spec = TransformSpec(
            (side, side), 3, tuple(preset.mean), tuple(preset.std), "short-side", (crop, crop),
            interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear",
        )
        return check_spec(spec, "torchvision weights")
    except Exception:  # noqa: BLE001 - no weights for this name, or another kind of preset
        return None
