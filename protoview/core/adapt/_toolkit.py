"""Pieces the methods ported from mariodoebler/test-time-adaptation share (RPL, RDumb, ROID,
CMF, RMT, SANTA, GTTA, CoTTA).

The toolkit (commit 8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1) builds every method's
optimiser in ``TTAMethod.setup_optimizer`` from its config (``conf.py``: ``OPTIM.METHOD``
``Adam``, ``LR`` 1e-3, ``BETA`` 0.9, ``MOMENTUM`` 0.9, ``DAMPENING`` 0, ``NESTEROV`` True,
``WD`` 0) and adapts the scale and shift of the normalisation layers (``collect_params`` of
RPL and EATA: BatchNorm1d/2d, LayerNorm, GroupNorm). :data:`OPTIMIZER` names the three
optimisers its configuration files use:

- ``adam``: ``Adam(lr, betas=(0.9, 0.999), weight_decay=0)``, the conf default and its
  CIFAR-10/100-C files;
- ``nesterov``: ``SGD(lr, momentum=0.9, dampening=0, weight_decay=0, nesterov=True)``, its
  ImageNet-C / CCC / DomainNet files (``METHOD: SGD`` with the default ``NESTEROV: True``);
- ``sgd``: ``SGD(lr, momentum=0.9)``, the authors' (EATA's, RDumb's and RPL's in
  oripress/CCC), the toolkit's with ``OPTIM.NESTEROV False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from protoview.core.adapt.params import Param
from protoview.errors import ParameterError

NORM_LAYERS = (_BatchNorm, nn.LayerNorm, nn.GroupNorm)
OPTIMIZERS: tuple[str, ...] = ("sgd", "nesterov", "adam")


def optimizer_param(default: str, help_text: str) -> Param:
    """The ``optimizer`` choice (see the module docstring) with a method's default."""
    return Param("optimizer", default, help_text, kind="choice", choices=OPTIMIZERS)


def build_optimizer(
    choice: str, params: Sequence[nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    """The toolkit's ``setup_optimizer`` for ``choice`` (momentum / beta1 0.9, no decay)."""
    if choice == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    nesterov = choice == "nesterov"
    return torch.optim.SGD(
        params, lr=lr, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=nesterov
    )


def norm_parameters(
    model: nn.Module, method: str, layers: tuple[type[nn.Module], ...] = NORM_LAYERS
) -> list[tuple[str, nn.Parameter]]:
    """Scale and shift of every BatchNorm, LayerNorm and GroupNorm layer (the toolkit's
    ``collect_params`` of RPL and EATA; ``layers``: another set, ROID's), with their names in
    ``model.named_parameters()``.

    Raises :class:`ParameterError` (``where="method"``) when the model has none.
    """
    chosen = [
        (f"{name}.{pname}" if name else pname, p)
        for name, m in model.named_modules()
        if isinstance(m, layers)
        for pname, p in m.named_parameters(recurse=False)
        if pname in ("weight", "bias")
    ]
    if not chosen:
        raise ParameterError(
            "method",
            f"{method!r} adapts the scale and shift of BatchNorm, LayerNorm or GroupNorm "
            "layers and the model has none; choose t3a, lame, pl, shot_im or none",
        )
    return chosen


def weights_and_biases(model: nn.Module, method: str) -> list[tuple[str, nn.Parameter]]:
    """Every module's own ``weight`` and ``bias``, in ``named_modules`` order (the toolkit's
    and CoTTA's ``collect_params`` after enabling every gradient: RMT, GTTA, CoTTA).

    Raises :class:`ParameterError` (``where="method"``) when the model has none.
    """
    chosen = [
        (f"{name}.{pname}" if name else pname, p)
        for name, m in model.named_modules()
        for pname, p in m.named_parameters(recurse=False)
        if pname in ("weight", "bias")
    ]
    if not chosen:
        raise ParameterError(
            "method", f"{method!r} adapts the weights and biases of the model's layers and "
            "the model has none"
        )  # fmt: skip
    return chosen


def symmetric_cross_entropy(
    x: torch.Tensor, x_ema: torch.Tensor, alpha: float = 0.5
) -> torch.Tensor:
    """The toolkit's ``SymmetricCrossEntropy`` (per sample): (N, C), (N, C) logits -> (N,)."""
    return -(1 - alpha) * (x_ema.softmax(1) * x.log_softmax(1)).sum(1) - alpha * (
        x.softmax(1) * x_ema.log_softmax(1)
    ).sum(1)


def ema(mine: torch.Tensor, other: torch.Tensor, momentum: float) -> torch.Tensor:
    """The toolkit's ``ema_update_model`` for one tensor: ``m * mine + (1 - m) * other``."""
    return momentum * mine + (1 - momentum) * other


class SourceBatches:
    """Labelled source batches drawn one at a time, the loader started again when it ends
    (the authors' ``next(self.src_loader_iter)`` / ``StopIteration``: RMT's replay, GTTA).
    ``iter`` is taken when created, as the authors open theirs."""

    def __init__(self, loader: Any) -> None:
        self.loader, self._iter = loader, iter(loader)

    def next(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x float32 on ``device``, y as the loader gives it)."""
        try:
            batch = next(self._iter)
        except StopIteration:
            self._iter = iter(self.loader)
            batch = next(self._iter)
        return batch[0].to(device, torch.float32), batch[1]
