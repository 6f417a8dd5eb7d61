"""Pieces the methods ported from mariodoebler/test-time-adaptation share (RPL, RDumb).

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


def norm_parameters(model: nn.Module, method: str) -> list[tuple[str, nn.Parameter]]:
    """Scale and shift of every BatchNorm, LayerNorm and GroupNorm layer (the toolkit's
    ``collect_params`` of RPL and EATA), with their names in ``model.named_parameters()``.

    Raises :class:`ParameterError` (``where="method"``) when the model has none.
    """
    chosen = [
        (f"{name}.{pname}" if name else pname, p)
        for name, m in model.named_modules()
        if isinstance(m, NORM_LAYERS)
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
