"""Writing an encoder with a linear probe as a protoview checkpoint: the backbone's weights and
the probe in the architecture's own head slot (torchvision's ``fc``, timm's ``head``), so
that every command opens it as a classifier (its rows are the proxies; adaptation runs)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from protoview.core.atomic import atomic_path
from protoview.core.checkpoint._layout import PROTOVIEW_FORMAT, PROTOVIEW_VERSION
from protoview.core.checkpoint._split import find_split
from protoview.core.checkpoint.archs import resolve_arch
from protoview.errors import ParameterError


def write_probe_checkpoint(path: str | os.PathLike[str], model: Any, head: nn.Linear, *,
                           class_names: list[str] | None = None, transform: Any = None) -> str:
    """Write ``model``'s backbone with ``head`` as its classifier to ``path`` (atomically).

    model: an encoder opened with ``--features backbone`` (its featurizer is the
    architecture without its head); head: ``nn.Linear(D, C)`` on its features; transform:
    the preprocessing the probe was trained with (stored, so the checkpoint gets it again).
    Returns the head's slot (``"fc"``). Raises ParameterError naming ``--out`` when the
    model cannot be written so (projection features, a user-file architecture).
    """
    info = model.info
    encoder = getattr(info, "encoder", None)
    if encoder is None or model.feature_space != "backbone":
        raise ParameterError("--out", "a probe checkpoint needs an encoder opened with --features "
                                      "backbone (the probe then sits in its architecture's head)")
    if not encoder.arch_name:
        raise ParameterError("--out", f"{info.arch} is a user file, which a checkpoint may not "
                                      "name: the probe cannot be written as a checkpoint")
    spec = resolve_arch(encoder.arch_name, where="--out")
    with torch.device("meta"):
        skeleton = spec.build(None, where="--out")
    plan = find_split(skeleton, None)
    if plan is None or plan.featurizer_path is not None:
        raise ParameterError("--out", f"{info.arch} has no head slot to hold the probe")
    state = {k: v.detach().cpu() for k, v in model.featurizer.state_dict().items()}
    state[f"{plan.head_path}.weight"] = head.weight.detach().cpu().float()
    state[f"{plan.head_path}.bias"] = head.bias.detach().cpu().float()
    meta: dict[str, Any] = {"format": PROTOVIEW_FORMAT, "version": PROTOVIEW_VERSION,
                            "arch": encoder.arch_name,
                            "probe_of": {"checkpoint": info.path, "sha256": info.sha256,
                                         "method": encoder.method}}
    if class_names:
        meta["class_names"] = [str(n) for n in class_names]
    if transform is not None:
        meta["transform"] = "none" if transform.is_none else {
            "size": list(transform.size), "channels": transform.channels,
            "mean": list(transform.mean), "std": list(transform.std), "resize": transform.resize,
            "crop": None if transform.crop is None else list(transform.crop),
            "interpolation": transform.interpolation, "scale": transform.scale}
    with atomic_path(path) as tmp:
        torch.save({"protoview": meta, "state_dict": state}, tmp)
    return plan.head_path
