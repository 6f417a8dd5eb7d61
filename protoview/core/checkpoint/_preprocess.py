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
#: benchmark) with CIFAR-100's statistics (``utils/data.py`` ``iCIFAR100``; on CIFAR-10 data
#: its ``iCIFAR10``'s: :data:`HOME_DATA_PREPROCESS`).
BUILTIN_PREPROCESS: dict[str, str | Callable[[], TransformSpec]] = {
    "protoview-demo-cnn": _demo_transform,
    "wrn28_10": "size=32,mean=0,0,0,std=1,1,1",
    **{f"cifar_resnet{d}": "cifar100" for d in (20, 32, 44, 56, 110)},
}


#: Built-in architecture -> {data kind (the DATA spelling's first word): the transform its
#: home project uses on those data}. PyCIL normalises each dataset with its own statistics
#: (``utils/data.py``: ``iCIFAR10`` (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010),
#: ``iCIFAR100`` CIFAR-100's): a PyCIL model on CIFAR-10(-C) data gets ``iCIFAR10``'s.
HOME_DATA_PREPROCESS: dict[str, dict[str, str]] = {
    **{f"cifar_resnet{d}": {"cifar10": "cifar10", "cifar10c": "cifar10"}
       for d in (20, 32, 44, 56, 110)},
}


def home_data_transform(arch: str, data: str) -> tuple[TransformSpec, str] | None:
    """(transform, source) a built-in architecture's home project uses on ``data`` (a DATA
    spelling) when it is not the architecture's own default; None otherwise."""
    target = arch.split(" ", 1)[0]
    kind = data.strip().split(":", 1)[0].lower()
    text = HOME_DATA_PREPROCESS.get(target, {}).get(kind)
    if text is None:
        return None
    option = parse_preprocess(text)
    assert option is not None
    project = "PyCIL's iCIFAR10 statistics" if target.startswith("cifar_resnet") else text
    return option.apply(DEFAULT), f"built-in, {project} for {kind} data"


def model_transform(
    stored: TransformSpec | None, spec: ArchSpec | None, model: nn.Module | None,
    sha256: str = "", notes: list[str] | None = None,
) -> tuple[TransformSpec | None, str]:
    """(the model's own transform or None, its source) — see the module docstring.

    sha256: the checkpoint file's; a torchvision weights file is recognised by it (their
    names carry its first 8 hex digits), so that e.g. ResNet-50's IMAGENET1K_V1 gets its
    own resize 256 rather than the default V2's 232. notes: where to say which weights'
    preprocessing was taken.
    """
    if stored is not None:
        return stored, "checkpoint"
    found = timm_transform(model) if model is not None else None
    if found is not None:
        return found, "timm config"
    if spec is not None and spec.kind == "torchvision":
        found, which = torchvision_transform(spec.target, sha256)
        if found is not None:
            if notes is not None:
                notes.append(which)
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


def torchvision_transform(name: str, sha256: str = "") -> tuple[TransformSpec | None, str]:
    """The ``transforms()`` of torchvision's weights for ``name`` (no download), and a note
    saying which: the weights whose file this is (``sha256`` matches the hash prefix in
    their file name), else the default weights."""
    try:
        from torchvision.models import get_model_weights

        weights = list(get_model_weights(name))
        default = get_model_weights(name).DEFAULT
    except Exception:  # noqa: BLE001 - no weights for this name
        return None, ""
    chosen = next((w for w in weights if _url_hash(w.url) and sha256.lower().startswith(_url_hash(w.url))), None)
    if chosen is not None:
        which = f"preprocessing of torchvision's {name} {chosen.name} weights: this file is theirs (sha256 {sha256[:8]}...)"
    else:
        chosen = default
        others = [w.name for w in weights if w is not default and _spec_of(w) != _spec_of(default)]
        which = (f"preprocessing of torchvision's default {name} weights ({default.name})"
                 + (f"; weights trained like {', '.join(others)} differ: pass --preprocess"
                    f" (e.g. imagenet)" if others else ""))
    spec = _spec_of(chosen)
    return (None, "") if spec is None else (spec, which)


def _url_hash(url: str) -> str:
    """The sha256 prefix torch.hub puts in a weights file's name (``resnet50-0676ba61.pth``)."""
    stem = url.rsplit("/", 1)[-1].split(".", 1)[0]
    tail = stem.rsplit("-", 1)[-1]
    return tail.lower() if len(tail) >= 6 and all(c in "0123456789abcdefABCDEF" for c in tail) else ""


def _spec_of(weights: Any) -> TransformSpec | None:
    try:
        preset: Any = weights.transforms()
        crop = int(preset.crop_size[0])
        side = int(preset.resize_size[0])
        interpolation = str(preset.interpolation.value)
        spec = TransformSpec(
            (side, side), 3, tuple(preset.mean), tuple(preset.std), "short-side", (crop, crop),
            interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear",
        )
        return check_spec(spec, "torchvision weights")
    except Exception:  # noqa: BLE001 - another kind of preset (video, segmentation, ...)
        return None
