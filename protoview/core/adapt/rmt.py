"""RMT (Döbler, Marsden & Yang, CVPR 2023): the robust mean teacher.

Ported from its authors' toolkit (github.com/mariodoebler/test-time-adaptation, commit
8b2ed63, ``classification/methods/rmt.py``; oracle: ``tests/oracles/rmt_reference.py``).
Every weight and bias of the model is adapted (Adam, lr 1e-3), the model in eval mode with
BatchNorm on the test batch's statistics. It needs **labelled source data** (the run's
``--source-data``), as the authors' code loads them:

1. before adapting: class-wise **source prototypes** (the mean source feature of each class,
   over at most 100,000 source samples), a projector (Linear-ReLU-Linear to
   ``projection_dim``) and a **warm-up** of the mean teacher on ``warmup_samples`` source
   samples (symmetric cross-entropy between student and teacher, the learning rate rising
   linearly to ``lr``);
2. each test batch: symmetric cross-entropy of the student (on the batch and on one
   augmented view: CoTTA's augmentations, in pixel space) against the EMA teacher; a
   contrastive loss pulling each test feature and its augmented view towards its nearest
   source prototype (SupCon, temperature 0.1); cross-entropy on a labelled source batch
   (source replay, ``lambda_ce_src``); then the teacher's EMA (0.999) over every parameter.

The prediction is the ensemble ``student + teacher`` logits of the batch before the update,
as the authors' ``forward`` returns it; the map shows the student's features.

Differences from the authors' code, none changing a number: the prototypes and the warm-up
are computed each time instead of cached under ``CKPT_DIR``; a source class without samples
(whose prototype is the mean of nothing, NaN, in the released code) is refused with one
line. A reset (episodic, or a new run) goes back to the state after the warm-up, as the
authors' ``reset``.

One flaw of the released code, kept by ``reference`` and fixed by ``corrected``: the
episodic reset loads the saved optimizer state with ``Optimizer.load_state_dict``, which
keeps the saved tensors (Adam's step counts and moments) instead of copying them, so every
update after the first reset also advances the saved state: later resets restore a
growing step count and moving moments, and episodic RMT is not episodic for its optimizer.
``corrected`` loads a copy (a new run always starts from a copy). The source batches continue where they were after a snapshot is
restored (the loader's position is not part of a snapshot).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._prototypes import SourcePrototypeAdapter, prototype_contrast
from protoview.core.adapt._toolkit import (
    SourceBatches,
    ema,
    symmetric_cross_entropy,
    weights_and_biases,
)
from protoview.core.adapt.base import kept_flags, use_batch_statistics
from protoview.core.adapt.params import (
    EPISODIC,
    LR,
    STEPS,
    VARIANT,
    Param,
    checked,
    with_default,
)


class RMT(SourcePrototypeAdapter):
    """The robust mean teacher (see the module docstring)."""

    method = "rmt"
    summary = (
        "robust mean teacher: symmetric cross-entropy to an EMA teacher, contrastive "
        "alignment with source prototypes, source replay (Döbler et al., CVPR 2023), equal "
        "to the authors' code (mariodoebler/test-time-adaptation 8b2ed63); needs --source-data"
    )
    needs_source = "labelled source data (its source prototypes, warm-up and replay)"
    params = (
        with_default(LR, 1e-3, help="Adam's learning rate (the authors' 1e-3)"),
        Param("lambda_ce_src", 1.0, "weight of the source replay's cross-entropy "
              "(0: no replay; the prototypes still need source data)", low=0.0),
        Param("lambda_ce_trg", 1.0, "weight of the self-training loss", low=0.0),
        Param("lambda_cont", 1.0, "weight of the contrastive loss", low=0.0),
        Param("warmup_samples", 50000, "source samples of the mean teacher's warm-up "
              "(0: none)", kind="int", low=0),
        Param("temperature", 0.1, "the contrastive loss's temperature", low=0.0,
              low_open=True),
        Param("projection_dim", 128, "the projector's output dimension", kind="int", low=1),
        Param("momentum", 0.999, "the teacher's EMA momentum", low=0.0, high=1.0),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        lambda_ce_src: float = 1.0,
        lambda_ce_trg: float = 1.0,
        lambda_cont: float = 1.0,
        warmup_samples: int = 50000,
        temperature: float = 0.1,
        projection_dim: int = 128,
        momentum: float = 0.999,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.lambda_ce_src, self.lambda_ce_trg, self.lambda_cont,
            self.warmup_samples, self.temperature, self.projection_dim, self.momentum,
            self.steps, self.episodic, self.variant,
        ) = checked(
            self.params, lr=lr, lambda_ce_src=lambda_ce_src, lambda_ce_trg=lambda_ce_trg,
            lambda_cont=lambda_cont, warmup_samples=warmup_samples, temperature=temperature,
            projection_dim=projection_dim, momentum=momentum, steps=steps, episodic=episodic,
            variant=variant,
        )  # fmt: skip
        named = weights_and_biases(self.model, self.method)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self.teacher = copy.deepcopy(self.model)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self._start_source_state()
        self._source: SourceBatches | None = None

    # ---- configuration ------------------------------------------------------------------------
    def _configure(self) -> None:
        """The authors' ``configure_model``: eval mode, BatchNorm on batch statistics,
        gradients for every parameter (the teacher takes no gradient)."""
        use_batch_statistics(self.model)
        self.model.requires_grad_(True)
        use_batch_statistics(self.teacher)

    # ---- source data -------------------------------------------------------------------------
    def _before_source(self, loader: Any) -> None:
        self._source = SourceBatches(loader)  # replay's, opened first

    def _after_source(self, loader: Any) -> None:
        """The mean teacher's warm-up, the learning rate rising to ``lr``."""
        warmup_steps = self.warmup_samples // loader.batch_size
        if warmup_steps > 0:
            with kept_flags(self.model), torch.enable_grad():
                self._configure()
                self._warm_up(warmup_steps)

    def _warm_up(self, warmup_steps: int) -> None:
        for i in range(warmup_steps):
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * (i + 1) / warmup_steps
            assert self._source is not None
            imgs_src, _ = self._source.next(self.device)
            outputs = self.model(imgs_src)
            outputs_ema = self.teacher(imgs_src)
            loss = symmetric_cross_entropy(outputs, outputs_ema).mean(0)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            self._update_teacher()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    @torch.no_grad()
    def _update_teacher(self) -> None:
        """The toolkit's ``ema_update_model(..., update_all=True)``."""
        if self.momentum < 1.0:
            for mean, param in zip(self.teacher.parameters(), self.model.parameters(), strict=True):
                mean.data = ema(mean.data, param.data, self.momentum)

    # ---- reset and snapshots -----------------------------------------------------------------
    def _ready_state(self) -> dict[str, Any]:
        return {**super()._ready_state(), "teacher": copy.deepcopy(self.teacher.state_dict())}

    def _load_ready(self, ready: dict[str, Any]) -> None:
        super()._load_ready(ready)
        self.teacher.load_state_dict(ready["teacher"])

    def _restore_source(self, shared_optimizer_state: bool = False) -> None:
        super()._restore_source(shared_optimizer_state)
        if self._ready is None:  # before the source data: the teacher is the source model
            self.teacher.load_state_dict(self.model.state_dict())

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "teacher": self.teacher.state_dict()}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        super()._load_extra_state(extra)
        assert extra is not None
        self.teacher.load_state_dict(extra["teacher"])

    def state_bytes(self) -> int:
        own = super().state_bytes()
        return own + sum(t.numel() * t.element_size() for t in self.teacher.state_dict().values())

    # ---- adaptation --------------------------------------------------------------------------
    def _update(self, x: torch.Tensor) -> torch.Tensor:
        outputs, loss = self._loss(x)
        self.last_loss = float(loss.detach())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self._update_teacher()
        return outputs

    def _loss(self, imgs_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The authors' ``loss_calculation``."""
        assert self.prototypes is not None
        features_test = self.model.featurizer(imgs_test)
        outputs_test = self.model.classifier(features_test)
        features_aug_test = self.model.featurizer(self._augment(imgs_test))
        outputs_aug_test = self.model.classifier(features_aug_test)
        outputs_ema = self.teacher(imgs_test)
        assert self.projector is not None
        loss_contrastive = prototype_contrast(
            self.prototypes, features_test, features_aug_test, self.projector, self.temperature
        )
        loss_self_training = (
            0.5 * symmetric_cross_entropy(outputs_test, outputs_ema)
            + 0.5 * symmetric_cross_entropy(outputs_aug_test, outputs_ema)
        ).mean(0)
        loss = self.lambda_ce_trg * loss_self_training + self.lambda_cont * loss_contrastive
        if self.lambda_ce_src > 0:
            assert self._source is not None
            imgs_src, labels_src = self._source.next(self.device)
            outputs_src = self.model.classifier(self.model.featurizer(imgs_src))
            loss_ce_src = F.cross_entropy(outputs_src, labels_src.to(self.device).long())
            loss += self.lambda_ce_src * loss_ce_src
        return outputs_test + outputs_ema, loss

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._configure()
        z = self.model.featurizer(x)
        return z, self.model.classifier(z) + self.teacher(x)

