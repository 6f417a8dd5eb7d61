"""Model checks shared by the adapters: each failure is one ParameterError naming it.

A parameter's value is checked by its declaration (:mod:`protoview.core.adapt.params`);
these check what a method needs of the model.
"""

from __future__ import annotations

from torch import nn

from protoview.core.adapt.base import affine_norm_layers, batchnorm_layers, select_parameters
from protoview.errors import ParameterError


def require_batchnorm(model: nn.Module, method: str) -> None:
    """Refuse a model without BatchNorm for a method that adapts BatchNorm layers."""
    if not batchnorm_layers(model):
        raise ParameterError(
            "method",
            f"{method!r} adapts BatchNorm layers and the model has none; "
            "choose tsd, t3a, lame, pl, plc, shot_im or none",
        )


def require_norm_layers(model: nn.Module, method: str) -> None:
    """Refuse a model without normalisation layers for a method adapting their scale and shift."""
    if not any(
        isinstance(getattr(m, "weight", None), nn.Parameter) for _, m in affine_norm_layers(model)
    ):
        raise ParameterError(
            "method",
            f"{method!r} adapts the scale and shift of BatchNorm layers (LayerNorm or "
            "GroupNorm on a model without BatchNorm) and the model has none; "
            "choose tsd, t3a, lame, pl, plc, shot_im or none",
        )


def entropy_training_mode(model: nn.Module) -> bool:
    """Whether Tent / EATA put the whole model in train mode: yes on a model with BatchNorm
    (the authors' ``model.train()``), no on one without (a ViT, Swin, ConvNeXt: the toolkit's
    ``model.eval()``, so that stochastic depth and dropout stay off)."""
    return bool(batchnorm_layers(model))


def method_parameters(model: nn.Module, update: str, method: str) -> list[tuple[str, nn.Parameter]]:
    """:func:`select_parameters` for a method whose parameter group is fixed: an empty
    group is reported against ``method`` (the user chose the method, not ``update``)."""
    try:
        return select_parameters(model, update)
    except ParameterError as exc:
        what = {
            "all": "parameters",
            "affine": "normalisation layers' scale and shift",
            "body": "featurizer parameters",
            "head": "classifier parameters",
        }[update]
        raise ParameterError(
            "method", f"{method!r} adapts the model's {what} and the model has none"
        ) from exc
