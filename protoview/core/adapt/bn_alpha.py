"""BN-α and BN-EMA: BatchNorm statistics from the test batches, no gradient.

Ported from mariodoebler/test-time-adaptation (commit 8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1,
``classification/methods/norm.py`` ``BNAlpha`` / ``BNEMA`` with ``methods/bn.py``
``AlphaBatchNorm`` / ``EMABatchNorm``; oracle: ``tests/oracles/toolkit_basic_reference.py``).

- :class:`BNAlpha` (Schneider et al., "Improving robustness against common corruptions by
  covariate shift adaptation", NeurIPS 2020): every BatchNorm layer normalises with
  ``(1 - alpha) * source + alpha * batch`` statistics, mean and variance alike, where the
  batch's are what a ``BatchNorm2d(momentum=1.0)`` records of it: its mean and its
  *unbiased* variance. Scale and shift stay the source's; the rest of the model is in eval
  mode; nothing is kept between batches, so ``predict`` is the same computation. ``alpha``
  0.1 is the toolkit's ``_C.BN.ALPHA`` (and every one of its ``norm_alpha.yaml`` files,
  which run it with batch size 1: a convolutional layer still has ``H * W`` values per
  channel). ``alpha = 1`` is BN on the test batch with its unbiased variance, ``0`` the
  source model.
- :class:`BNEMA` (the toolkit's ``norm_ema``): each batch first runs through the whole model
  in train mode (BatchNorm's running statistics move towards the batch's with the layers'
  own momentum; that output is thrown away), then in eval mode with the moved statistics:
  that second output is the prediction. ``predict`` is the eval pass alone.

Deviations (none changes the numbers on a model whose BatchNorm layers are ``BatchNorm2d``):
every ``_BatchNorm`` layer (1d/3d too) takes part, where the toolkit's ``AlphaBatchNorm``
replaces ``BatchNorm2d`` layers only (the others stay on source statistics). The authors'
own ``BayesianBatchNorm`` (bethgelab/robustness ``robusta/batchnorm/bn.py``) weighs with
``prior * source + (1 - prior) * batch``: the toolkit's ``alpha`` is ``1 - prior``, equal
but for the rounding of ``1 - prior`` (``prior = 0.9`` gives ``0.09999999999999998``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from protoview.core.adapt._checks import require_batchnorm
from protoview.core.adapt.base import Adapter, batchnorm_layers
from protoview.core.adapt.params import Param, checked
from protoview.errors import ParameterError

_TOOLKIT = "mariodoebler/test-time-adaptation 8b2ed63"


def _require_running_statistics(model: nn.Module, method: str) -> list[_BatchNorm]:
    """The model's BatchNorm layers; each must hold source running statistics."""
    require_batchnorm(model, method)
    layers = []
    for name, layer in batchnorm_layers(model):
        if layer.running_mean is None or layer.running_var is None:
            raise ParameterError(
                "model",
                f"{method!r} needs the source running statistics and BatchNorm layer "
                f"{name!r} has none (track_running_stats=False)",
            )
        layers.append(layer)
    return layers


def _alpha_forward(layer: _BatchNorm, alpha: float, x: torch.Tensor) -> torch.Tensor:
    """``AlphaBatchNorm.forward``: the batch's statistics as ``BatchNorm(momentum=1)``
    records them (mean, unbiased variance), mixed with the layer's running ones."""
    batch_mean = torch.zeros_like(layer.running_mean)
    batch_var = torch.ones_like(layer.running_var)
    F.batch_norm(x, batch_mean, batch_var, None, None, True, 1.0, 1e-5)
    running_mean = (1 - alpha) * layer.running_mean + alpha * batch_mean
    running_var = (1 - alpha) * layer.running_var + alpha * batch_var
    return F.batch_norm(x, running_mean, running_var, layer.weight, layer.bias, False, 0, layer.eps)


@contextlib.contextmanager
def _alpha_normalised(layers: list[_BatchNorm], alpha: float) -> Iterator[None]:
    """Each layer's forward is :func:`_alpha_forward` for the duration (put back on exit)."""
    try:
        for layer in layers:
            layer.forward = functools.partial(_alpha_forward, layer, alpha)
        yield
    finally:
        for layer in layers:
            if "forward" in layer.__dict__:
                del layer.forward


class BNAlpha(Adapter):
    """BatchNorm on ``(1 - alpha) * source + alpha * test-batch`` statistics; no gradient."""

    method = "bn_alpha"
    summary = (
        "BatchNorm on (1 - alpha) source + alpha test-batch statistics (Schneider et al., "
        f"NeurIPS 2020), equal to the toolkit's BNAlpha ({_TOOLKIT})"
    )
    params = (
        Param("alpha", 0.1, "weight of the test batch's statistics (the toolkit's BN.ALPHA)",
              low=0.0, high=1.0, window=True, decimals=3),
    )  # fmt: skip

    def __init__(self, model: nn.Module, alpha: float = 0.1) -> None:
        super().__init__(model)
        self._layers = _require_running_statistics(self.model, self.method)
        (self.alpha,) = checked(self.params, alpha=alpha)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._features(x)[1]

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        with _alpha_normalised(self._layers, self.alpha):
            z = self.model.featurizer(x)
            return z, self.model.classifier(z)


class BNEMA(Adapter):
    """A train-mode pass moves BatchNorm's running statistics; the eval pass predicts."""

    method = "bn_ema"
    summary = (
        "BatchNorm's running statistics follow the test batches with the layers' momentum, "
        f"predictions use them (the toolkit's BN-EMA), equal to its BNEMA ({_TOOLKIT})"
    )
    params = ()

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        _require_running_statistics(self.model, self.method)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.model.train()
            self.model(x)
            return self._features(x)[1]

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
