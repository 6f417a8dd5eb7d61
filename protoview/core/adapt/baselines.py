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

Every method, these and the others in their own modules, is listed once in
:mod:`protoview.core.adapt.registry`; each class declares its parameters (``params``).

BatchNorm here means every ``_BatchNorm`` layer (1d/2d/3d), not only ``BatchNorm2d``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._checks import entropy_training_mode, require_norm_layers
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
from protoview.core.adapt.params import (
    EPISODIC,
    FILTER_K,
    LR,
    STEPS,
    VARIANT,
    checked,
    with_default,
)


class NoAdapt(Adapter):
    """The source model, eval mode, nothing changes."""

    method = "none"
    summary = "the source model unchanged, eval mode (the TSD repository's ERM, a79a34e)"
    params = ()
    batch_statistics = False  # eval mode: a batch of one is predicted as in any batch
    per_sample_predictions = True

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
    summary = (
        "BatchNorm on the test batch's statistics (Schneider et al., NeurIPS 2020; "
        "Nado et al., 2020), as the TSD repository's BN (a79a34e)"
    )
    params = ()
    batch_statistics = True  # BatchNorm in train mode: the batch's own statistics
    per_sample_predictions = False

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
    """Entropy minimisation on normalisation scale and shift (Adam, betas 0.9/0.999).

    BatchNorm's, the whole model in train mode, as the TSD repository's Tent; on a model
    without BatchNorm (ViT, Swin, ConvNeXt) LayerNorm's and GroupNorm's with the model in
    eval mode, as the toolkit's Tent (mariodoebler/test-time-adaptation 8b2ed63).
    """

    method = "tent"
    summary = (
        "entropy minimisation on BatchNorm scale and shift (Wang et al., ICLR 2021), "
        "equal to the TSD repository's Tent (a79a34e); on models without BatchNorm "
        "(ViT, Swin, ConvNeXt) LayerNorm / GroupNorm's, equal to the toolkit's (8b2ed63)"
    )
    params = (
        with_default(LR, 1e-3, help="Adam's learning rate (Tent's own; the TSD script: 1e-4)"),
        STEPS,
        EPISODIC,
    )
    batch_statistics = True  # use_batch_statistics in step and prediction

    def __init__(
        self, model: nn.Module, lr: float = 1e-3, steps: int = 1, episodic: bool = False
    ) -> None:
        super().__init__(model)
        require_norm_layers(self.model, self.method)
        self.lr, self.steps, self.episodic = checked(
            self.params, lr=lr, steps=steps, episodic=episodic
        )
        named = select_parameters(self.model, "affine")
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._restore_source()
        use_batch_statistics(self.model, entropy_training_mode(self.model))
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
    summary = (
        "template adjustment from entropy-filtered supports, no gradient (Iwasawa & Matsuo, "
        "NeurIPS 2021), equal to the TSD repository's T3A (a79a34e)"
    )
    params = (
        FILTER_K,
        with_default(VARIANT, "reference", help="reference = the TSD repository's (filter_K=-1 "
                      "drops one support per class), corrected = DomainBed's (-1 keeps all)"),
    )  # fmt: skip
    batch_statistics = False  # eval mode; the supports grow one sample at a time alike
    per_sample_predictions = True  # eval-mode features against the current templates

    def __init__(
        self,
        model: nn.Module,
        filter_K: int = 100,  # noqa: N803 - the paper's name
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        self.filter_K, self.variant = checked(self.params, filter_K=filter_K, variant=variant)
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
