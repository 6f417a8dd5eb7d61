"""SANTA (Chakrabarty, Sreenivas & Biswas, TMLR 2023): source anchoring and target alignment.

Ported from the toolkit it was released in (github.com/mariodoebler/test-time-adaptation,
commit 8b2ed63, ``classification/methods/santa.py``; oracle:
``tests/oracles/santa_reference.py``). It adapts the scale and shift of every BatchNorm,
LayerNorm and GroupNorm layer (Adam, lr 1e-3), the model in eval mode with BatchNorm on the
test batch's statistics. It needs **labelled source data** (``--source-data``) for its
class-wise source prototypes (the mean source feature of each class, at most 100,000
samples), as the authors load them. Each batch:

- self-training against the **source anchor** (the source model, frozen): cross-entropy of
  the anchor's outputs under the student's predictions on the batch and on one augmented
  view (CoTTA's augmentations, in pixel space), half each;
- a contrastive loss pulling each test feature and its augmented view towards its nearest
  source prototype (as RMT's, :mod:`protoview.core.adapt._prototypes`).

The prediction is the student's logits before the update, as the authors' code returns.
Differences from the released code, none changing a number: the prototypes are computed
each time (not cached under ``CKPT_DIR``); a source class without samples is refused with
one line (the released code would take a NaN prototype). ``reference`` keeps the released
episodic reset's flaw (RMT's too): ``Optimizer.load_state_dict`` keeps the saved tensors, so
the updates after the first reset advance the saved Adam state; ``corrected`` loads a copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from protoview.core.adapt._prototypes import SourcePrototypeAdapter, prototype_contrast
from protoview.core.adapt._toolkit import norm_parameters
from protoview.core.adapt.base import use_batch_statistics
from protoview.core.adapt.params import (
    EPISODIC,
    LR,
    STEPS,
    VARIANT,
    Param,
    checked,
    with_default,
)


def aug_cross_entropy(
    x: torch.Tensor, x_aug: torch.Tensor, x_ema: torch.Tensor, alpha: float = 0.5
) -> torch.Tensor:
    """The toolkit's ``AugCrossEntropy`` (per sample)."""
    return -(1 - alpha) * (x.softmax(1) * x_ema.log_softmax(1)).sum(1) - alpha * (
        x_aug.softmax(1) * x_ema.log_softmax(1)
    ).sum(1)


class SANTA(SourcePrototypeAdapter):
    """Source anchoring and target alignment (see the module docstring)."""

    method = "santa"
    summary = (
        "self-training against the frozen source model plus contrastive alignment with source "
        "prototypes (Chakrabarty et al., TMLR 2023), equal to the toolkit it was released in "
        "(mariodoebler/test-time-adaptation 8b2ed63); needs --source-data"
    )
    needs_source = "labelled source data (its source prototypes)"
    params = (
        with_default(LR, 1e-3, help="Adam's learning rate (the toolkit's 1e-3)"),
        Param("lambda_ce_trg", 1.0, "weight of the self-training loss", low=0.0),
        Param("lambda_cont", 1.0, "weight of the contrastive loss", low=0.0),
        Param("temperature", 0.1, "the contrastive loss's temperature", low=0.0,
              low_open=True),
        Param("projection_dim", 128, "the projector's output dimension", kind="int", low=1),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        lambda_ce_trg: float = 1.0,
        lambda_cont: float = 1.0,
        temperature: float = 0.1,
        projection_dim: int = 128,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.lambda_ce_trg, self.lambda_cont, self.temperature,
            self.projection_dim, self.steps, self.episodic, self.variant,
        ) = checked(
            self.params, lr=lr, lambda_ce_trg=lambda_ce_trg, lambda_cont=lambda_cont,
            temperature=temperature, projection_dim=projection_dim, steps=steps,
            episodic=episodic, variant=variant,
        )  # fmt: skip
        named = norm_parameters(self.model, self.method)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self.anchor = copy.deepcopy(self.model)
        for p in self.anchor.parameters():
            p.requires_grad_(False)
        self._start_source_state()

    def _configure(self) -> None:
        """The authors' ``configure_model``: eval mode, BatchNorm on batch statistics,
        gradients for the norm layers only (the anchor takes none)."""
        use_batch_statistics(self.model)
        self.model.requires_grad_(False)
        for p in self._params:
            p.requires_grad_(True)
        use_batch_statistics(self.anchor)

    # ---- adaptation --------------------------------------------------------------------------
    def _update(self, x: torch.Tensor) -> torch.Tensor:
        outputs, loss = self._loss(x)
        self.last_loss = float(loss.detach())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return outputs

    def _loss(self, imgs_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The authors' ``loss_calculation``."""
        assert self.prototypes is not None and self.projector is not None
        features_test = self.model.featurizer(imgs_test)
        outputs_test = self.model.classifier(features_test)
        features_aug_test = self.model.featurizer(self._augment(imgs_test))
        outputs_aug_test = self.model.classifier(features_aug_test)
        outputs_anchor = self.anchor(imgs_test)
        loss_contrastive = prototype_contrast(
            self.prototypes, features_test, features_aug_test, self.projector, self.temperature
        )
        loss_self_training = aug_cross_entropy(outputs_test, outputs_aug_test, outputs_anchor)
        loss = self.lambda_ce_trg * loss_self_training.mean(0) + self.lambda_cont * loss_contrastive
        return outputs_test, loss

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
