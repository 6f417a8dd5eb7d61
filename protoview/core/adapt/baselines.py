"""Baselines with TSD's interface (``step(x) -> logits``, ``predict``, ``reset``) and the factory.

- :class:`NoAdapt`: the source model in eval mode; changes nothing.
- :class:`BNAdapt`: BatchNorm layers normalise with the test batch's statistics (train mode
  under ``no_grad``, so their running statistics follow the test data with the layers'
  momentum); every other module stays in eval mode; no gradient. ``predict``: batch
  statistics again, without touching the running ones (after a short pass the running
  statistics still mix in much of the source's: after ``k`` steps of momentum 0.1 they
  keep ``0.9**k`` of them).
- :class:`Tent` (Wang et al., ICLR 2021, as in its code and the TSD repo): minimise the mean
  prediction entropy over BatchNorm scale and shift with Adam; BatchNorm always uses batch
  statistics and never updates its running ones (Tent sets ``track_running_stats=False``).
  ``steps`` updates per batch (the logits of the last forward are returned, as in Tent's
  code); ``episodic`` resets before each batch. ``predict``: batch statistics again.
- :class:`T3A` (Iwasawa & Matsuo, NeurIPS 2021, DomainBed's ``T3A``): supports start as the
  head's rows; each batch joins the memory, the ``filter_K`` lowest-entropy supports per
  predicted class are kept, and the prediction is
  ``z @ normalize(normalize(S).T @ labels, dim=0)``. Eval mode, no gradient. ``variant``:
  ``reference`` is the TSD repository's ``T3A``, whose ``filter_K = -1`` branch is dead
  code (the ``[:-1]`` slice drops each class's highest-entropy support, as in its TSD);
  ``corrected`` keeps every support for ``-1``, as DomainBed does. Other ``filter_K`` values
  give the same numbers in both.

The registry :data:`METHODS` also holds PL / PLC (:mod:`~protoview.core.adapt.pseudo_label`),
SHOT-IM (:mod:`~protoview.core.adapt.shot`), EATA, SAR and LAME (their own modules).

BatchNorm here means every ``_BatchNorm`` layer (1d/2d/3d), not only ``BatchNorm2d``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._checks import check_lr as _check_lr
from protoview.core.adapt._checks import check_steps as _check_steps
from protoview.core.adapt._checks import check_variant
from protoview.core.adapt._checks import require_batchnorm as _require_batchnorm
from protoview.core.adapt.base import (
    Adapter,
    SupportMemory,
    batchnorm_layers,
    select_parameters,
    softmax_entropy,
    train_only,
    use_batch_statistics,
)
from protoview.core.adapt.eata import EATA
from protoview.core.adapt.lame import LAME
from protoview.core.adapt.pseudo_label import PseudoLabel, PseudoLabelClassifier
from protoview.core.adapt.sar import SAR
from protoview.core.adapt.shot import SHOTIM
from protoview.core.adapt.tsd import TSDAdapter, TSDConfig
from protoview.errors import ParameterError


class NoAdapt(Adapter):
    """The source model, eval mode, nothing changes."""

    method = "none"

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._features(x)[1]

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)


class BNAdapt(NoAdapt):
    """Test-batch BatchNorm statistics; running statistics follow with the layers' momentum."""

    method = "bn"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        _require_batchnorm(self.model, self.method)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        for _, layer in batchnorm_layers(self.model):
            layer.train()
        with torch.no_grad():
            return self.model(x)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)


class Tent(Adapter):
    """Entropy minimisation on BatchNorm scale and shift (Adam, betas 0.9/0.999)."""

    method = "tent"

    def __init__(
        self, model: nn.Module, lr: float = 1e-3, steps: int = 1, episodic: bool = False
    ) -> None:
        super().__init__(model)
        _require_batchnorm(self.model, self.method)
        self.lr, self.steps, self.episodic = _check_lr(lr), _check_steps(steps), bool(episodic)
        named = select_parameters(self.model, "affine")
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._restore_source()
        use_batch_statistics(self.model, whole_model_training=True)
        train_only(self.model, self._params)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            with torch.enable_grad():
                outputs = self.model(x)
                loss = softmax_entropy(outputs).mean(0)
            self.last_loss = float(loss.detach())
            if math.isfinite(self.last_loss):
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
        return outputs.detach()

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)


class T3A(Adapter):
    """Template adjustment: prototypes from entropy-filtered supports; no gradient."""

    method = "t3a"

    def __init__(
        self,
        model: nn.Module,
        filter_K: int = 100,  # noqa: N803 - the paper's name
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        if (
            isinstance(filter_K, bool)
            or not isinstance(filter_K, int)
            or filter_K == 0
            or filter_K < -1
        ):
            raise ParameterError(
                "filter_K", f"must be an integer >= 1, or -1 for all, got {filter_K!r}"
            )
        self.filter_K = filter_K
        self.variant = check_variant(variant)
        memory, self.num_classes = SupportMemory.from_head(self.model.classifier, with_scores=False)
        self._source_memory = memory
        self.memory = memory.clone()

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.model.eval()
            z = self.model.featurizer(x)
            self.memory = self.memory.to(z.device)
            self.memory.append(z, self.model.classifier(z))
            self.memory.select(self.filter_K, legacy_minus_one=self.variant == "reference")
            return self._template_logits(z)

    def _template_logits(self, z: torch.Tensor) -> torch.Tensor:
        weights = F.normalize(self.memory.supports, dim=1).T @ self.memory.labels
        return z @ F.normalize(weights, dim=0)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        z = self.model.featurizer(x)
        self.memory = self.memory.to(z.device)
        return z, self._template_logits(z)


METHODS: dict[str, type[Adapter]] = {
    "none": NoAdapt,
    "bn": BNAdapt,
    "tent": Tent,
    "t3a": T3A,
    "tsd": TSDAdapter,
    "pl": PseudoLabel,
    "plc": PseudoLabelClassifier,
    "shot_im": SHOTIM,
    "eata": EATA,
    "sar": SAR,
    "lame": LAME,
}


def adapter_defaults(method: str) -> dict[str, Any]:
    """The parameters ``make_adapter(method, ...)`` accepts, with their defaults."""
    if method not in METHODS:
        raise ParameterError(
            "method", f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if method == "tsd":
        return {f.name: f.default for f in dataclasses.fields(TSDConfig)}
    signature = inspect.signature(METHODS[method].__init__)
    return {
        name: p.default for name, p in signature.parameters.items() if name not in ("self", "model")
    }


def make_adapter(method: str, model: nn.Module, **params: Any) -> Adapter:
    """Build an adapter by name: one of :data:`METHODS` (``"tsd"``, ``"tent"``, ``"t3a"``,
    ``"bn"``, ``"none"``, ``"pl"``, ``"plc"``, ``"shot_im"``, ``"eata"``, ``"sar"``, ``"lame"``).

    ``params`` are the method's own (see :func:`adapter_defaults`); an unknown one raises
    :class:`ParameterError` naming it.
    """
    accepted = adapter_defaults(method)
    for name in params:
        if name not in accepted:
            allowed = ", ".join(accepted) or "none"
            raise ParameterError(name, f"not a parameter of {method!r} (accepted: {allowed})")
    if method == "tsd":
        return TSDAdapter(model, TSDConfig(**params))
    return METHODS[method](model, **params)
