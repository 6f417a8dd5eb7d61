"""Splitting a whole model into a featurizer and a classifier head.

Conventions, tried in order (an explicit ``split`` overrides them all):

1. attribute pairs ``featurizer``/``classifier``, ``backbone``/``fc``, ``backbone``/``head``,
   ``convnet``/``fc``: the featurizer is the first attribute itself;
2. timm models (``forward_features`` + ``get_classifier`` + ``reset_classifier``): the head
   is ``get_classifier()``, the featurizer the model after ``reset_classifier(0)``;
3. ``fc`` (torchvision ResNet & co.), ``classifier`` (a Linear, or the last layer of a
   ``Sequential``: VGG, MobileNet, EfficientNet, ConvNeXt), ``heads.head`` (ViT), ``head``
   (Swin): the featurizer is the model with the head replaced by ``nn.Identity``.

``split`` is ``"featurizer_attr:head_attr"`` (two dotted attribute paths) or the dotted
path of the head alone (``"head.fc"``, ``"classifier.6"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from protoview.errors import ParameterError

_PAIRS = (("featurizer", "classifier"), ("backbone", "fc"), ("backbone", "head"), ("convnet", "fc"))


@dataclass(frozen=True)
class SplitPlan:
    """Where to cut: the head's dotted path, and the featurizer's (None: the model minus the head).

    how: a short description for the notes (``"fc (torchvision convention)"``).
    """

    head_path: str
    featurizer_path: str | None
    how: str
    timm: bool = False


def find_split(model: nn.Module, split: str | None, *, scripted: bool = False) -> SplitPlan | None:
    """The split plan for ``model`` (None when no convention applies).

    scripted: a TorchScript module; its submodules cannot be replaced, so only attribute
    pairs (and a ``"a:b"`` override) apply.
    Raises ParameterError (``--split``) when the override names missing attributes.
    """
    if split:
        return _override(model, split, scripted)
    for feat, head in _PAIRS:
        if _child(model, feat) is not None and _child(model, head) is not None:
            return SplitPlan(head, feat, f"{feat}/{head} attributes")
    if scripted:
        return None
    if all(callable(getattr(model, a, None)) for a in ("forward_features", "get_classifier", "reset_classifier")):
        path = _path_of(model, model.get_classifier())
        if path is not None:
            return SplitPlan(path, None, f"{path} (timm get_classifier)", timm=True)
    if _child(model, "fc") is not None:
        return SplitPlan("fc", None, "fc (torchvision convention)")
    classifier = _child(model, "classifier")
    if classifier is not None:
        if isinstance(classifier, (nn.Sequential, nn.ModuleList)) and len(classifier) > 0:
            weighted = [str(i) for i, m in enumerate(classifier) if isinstance(getattr(m, "weight", None), torch.Tensor)]
            last = weighted[-1] if weighted else str(len(classifier) - 1)
            return SplitPlan(f"classifier.{last}", None, f"classifier.{last} (last layer of classifier)")
        return SplitPlan("classifier", None, "classifier (torchvision convention)")
    heads = _child(model, "heads")
    if heads is not None and _child(heads, "head") is not None:
        return SplitPlan("heads.head", None, "heads.head (torchvision ViT convention)")
    if _child(model, "head") is not None:
        return SplitPlan("head", None, "head attribute")
    return None


def _override(model: nn.Module, split: str, scripted: bool) -> SplitPlan:
    feat, sep, head = split.partition(":")
    if sep:
        for path in (feat, head):
            _require(model, path, split)
        return SplitPlan(head, feat, f"--split {split}")
    _require(model, split, split)
    if scripted:
        raise ParameterError(
            "--split", f"{split!r}: a TorchScript module cannot have its head replaced; give FEATURIZER_ATTR:HEAD_ATTR"
        )
    return SplitPlan(split, None, f"--split {split}")


def _require(model: nn.Module, path: str, split: str) -> None:
    if not path or get_submodule(model, path) is None:
        children = ", ".join(name for name, _ in model.named_children()) or "none"
        raise ParameterError("--split", f"{split!r}: the model has no submodule {path!r} (its top-level submodules: {children})")


def _child(model: nn.Module, name: str) -> nn.Module | None:
    value = getattr(model, name, None) if name in dict(model.named_children()) else None
    return value if isinstance(value, nn.Module) else None


def get_submodule(model: nn.Module, path: str) -> nn.Module | None:
    """The submodule at a dotted path, or None."""
    module = model
    for part in path.split("."):
        children = dict(module.named_children())
        if part not in children:
            return None
        module = children[part]
    return module


def _path_of(model: nn.Module, target: object) -> str | None:
    for name, module in model.named_modules():
        if module is target and name:
            return name
    return None


def replace_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` at the dotted ``path`` of ``model`` (works for Sequential indices too)."""
    parent_path, _, name = path.rpartition(".")
    parent = get_submodule(model, parent_path) if parent_path else model
    assert parent is not None
    setattr(parent, name, new)


def apply_split(model: nn.Module, plan: SplitPlan) -> tuple[nn.Module, nn.Module]:
    """Cut ``model`` (in place) into ``(featurizer, head)`` following ``plan``."""
    head = get_submodule(model, plan.head_path)
    assert head is not None
    if plan.featurizer_path is not None:
        featurizer = get_submodule(model, plan.featurizer_path)
        assert featurizer is not None
        return featurizer, head
    if plan.timm:
        model.reset_classifier(0)
    else:
        replace_submodule(model, plan.head_path, nn.Identity())
    return model, head


# ---------------------------------------------------------------------------- probing
def probe_input(model: nn.Module, size: tuple[int, int] | None, channels: int | None) -> torch.Tensor:
    """A random batch of one the model should accept: ``(1, C, H, W)`` for conv nets (C from
    the first Conv2d when not given; H, W from the transform or 224), ``(1, D)`` for MLPs."""
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    if isinstance(first, nn.Linear) and size is None:
        return torch.randn(1, first.in_features, generator=generator).to(device)
    if channels is None:
        channels = first.in_channels if isinstance(first, nn.Conv2d) else 3
    height, width = size or (224, 224)
    return torch.randn(1, channels, height, width, generator=generator).to(device)


def as_tensor_output(out: object, key: str) -> torch.Tensor | None:
    """A model's output as a tensor: dict outputs (PyCIL) give their ``key`` entry."""
    if isinstance(out, dict):
        out = out.get(key)
    return out if isinstance(out, torch.Tensor) else None


class DictOutputFeaturizer(nn.Module):
    """Wraps a featurizer that returns ``{'features': (N, D), ...}`` (PyCIL convnets)."""

    def __init__(self, inner: nn.Module, key: str = "features") -> None:
        super().__init__()
        self.inner = inner
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[self.key]
