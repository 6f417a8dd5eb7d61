"""The parts of a model an adapter touches: its BatchNorm and affine normalisation layers,
the parameters it updates (:func:`select_parameters`), its device, copies of its state, and
the train/eval, ``requires_grad`` and BatchNorm tracking flags a call sets and
:func:`kept_flags` puts back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from protoview.core.adapt.params import UPDATE_CHOICES
from protoview.errors import ParameterError


def batchnorm_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """All BatchNorm layers (1d/2d/3d/sync) of ``model`` with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)]


def affine_norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The normalisation layers whose scale and shift entropy methods adapt.

    BatchNorm layers (Tent's choice, the authors' and the TSD repository's); on a model
    without BatchNorm (a ViT, Swin or ConvNeXt) its LayerNorm and GroupNorm layers, as the
    toolkit's Tent and EATA collect them (mariodoebler/test-time-adaptation 8b2ed63,
    ``collect_params``; on a model with both kinds the toolkit takes both, here BatchNorm
    only: on such models Tent stays equal to its reference code).
    """
    found: list[tuple[str, nn.Module]] = list(batchnorm_layers(model))
    if not found:
        found = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm))
        ]
    return found


def select_parameters(model: nn.Module, update: str) -> list[tuple[str, nn.Parameter]]:
    """The parameters an adapter updates, with their names in ``model.named_parameters()``.

    ``update``: ``"all"`` every parameter; ``"affine"`` the scale and shift of the
    normalisation layers (:func:`affine_norm_layers`: BatchNorm's, or LayerNorm's and
    GroupNorm's on a model without BatchNorm; Tent's choice); ``"body"`` the featurizer's;
    ``"head"`` the classifier's.
    Raises :class:`ParameterError` (``where="update"``) for an unknown choice or none found.
    """
    if update == "all":
        chosen = list(model.named_parameters())
    elif update == "affine":
        chosen = [
            (f"{name}.{pname}", p)
            for name, m in affine_norm_layers(model)
            for pname, p in m.named_parameters(recurse=False)
            if pname in ("weight", "bias")
        ]
    elif update in ("body", "head"):
        part = "featurizer" if update == "body" else "classifier"
        chosen = [(f"{part}.{n}", p) for n, p in getattr(model, part).named_parameters()]
    else:
        raise ParameterError(
            "update", f"unknown choice {update!r}; choose one of {', '.join(UPDATE_CHOICES)}"
        )
    if not chosen:
        what = (
            "BatchNorm, LayerNorm or GroupNorm layers with scale and shift"
            if update == "affine"
            else "parameters"
        )
        raise ParameterError(
            "update", f"update={update!r} selects nothing: the model has no {what}"
        )
    return chosen


def check_split_model(model: Any) -> nn.Module:
    """Return ``model`` if it has a ``featurizer`` and a ``classifier`` module, else raise."""
    ok = isinstance(model, nn.Module) and all(
        isinstance(getattr(model, part, None), nn.Module) for part in ("featurizer", "classifier")
    )
    if not ok:
        raise ParameterError(
            "model", "adapters need a SplitModel (a featurizer and a classifier module)"
        )
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for an empty model."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def clone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached copy of a ``state_dict`` (same devices)."""
    return {k: v.detach().clone() for k, v in state.items()}


def tensors_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """True when every floating tensor holds only finite values."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point() and t.numel()]
    return bool(torch.stack(flags).all()) if flags else True


def use_batch_statistics(model: nn.Module, whole_model_training: bool = False) -> None:
    """BatchNorm normalises with each batch's own statistics and leaves its running ones alone.

    The other modules go to train mode when ``whole_model_training`` else to eval mode.
    Call it inside :func:`kept_flags`, which puts the flags back.
    """
    model.train(whole_model_training)
    for _, layer in batchnorm_layers(model):
        layer.train()
        layer.track_running_stats = False


def train_only(model: nn.Module, params: Sequence[nn.Parameter]) -> None:
    """Gradients for ``params`` only: every other parameter of ``model`` is frozen."""
    chosen = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)


@contextlib.contextmanager
def kept_flags(model: nn.Module) -> Iterator[None]:
    """Put back every module's train/eval mode, ``requires_grad`` and BN tracking flag on exit."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    tracking = [(m, m.track_running_stats) for _, m in batchnorm_layers(model)]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in tracking:
            m.track_running_stats = flag
