"""RPL (Rusak et al., TMLR 2022, "If your data distribution shifts, use self-learning").

Ported from mariodoebler/test-time-adaptation (commit 8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1,
``classification/methods/rpl.py`` with ``utils/losses.py`` ``GeneralizedCrossEntropy`` and
the ``TTAMethod`` loop of ``methods/base.py``; oracle:
``tests/oracles/toolkit_basic_reference.py``). Each update, on the scale and shift of every
BatchNorm, LayerNorm and GroupNorm layer (the rest of the model in eval mode, BatchNorm on
the batch's statistics, its running statistics never updated):

``loss = mean_i (1 - p_i[y_i] ** q) / q`` with ``y_i = argmax p_i`` the hard pseudo-label
of the same forward (the generalized cross-entropy of Zhang & Sabuncu, 2018; ``q`` 0.8,
the toolkit's ``_C.RPL.Q``), one optimiser step; the logits of that forward are the online
prediction. ``steps`` updates per batch (the last forward's logits are returned),
``episodic`` restores the source weights and a fresh optimiser before each batch.

Defaults: the toolkit's generic ``conf.py`` (``OPTIM.METHOD Adam``, ``LR 1e-3``, ``BETA``
0.9, ``WD 0``), which its CIFAR-10/100-C ``rpl.yaml`` files keep. Its ImageNet-C, CCC,
ImageNet-others and DomainNet-126 files use ``SGD`` with ``LR 0.0005`` and, through the
default ``OPTIM.NESTEROV True``, Nesterov momentum 0.9: ``optimizer="nesterov", lr=0.0005``.
The code the toolkit builds on (oripress/CCC ``models/rpl.py``) uses plain momentum:
``optimizer="sgd", lr=0.0005`` (and adapts only ``BatchNorm2d`` layers, whole model in
train mode: the same numbers on a model without dropout whose norm layers are BatchNorm).

Deviations (none changes the online logits or the adapted weights): every ``_BatchNorm``
layer (3d too) adapts; the toolkit leaves ``BatchNorm1d`` layers in train mode, whose
running statistics then follow the batches (never read); here no running statistics move.
"""

from __future__ import annotations

import torch
from torch import nn

from protoview.core.adapt._toolkit import build_optimizer, norm_parameters, optimizer_param
from protoview.core.adapt.base import Adapter, train_only, use_batch_statistics
from protoview.core.adapt.params import EPISODIC, LR, STEPS, Param, checked, with_default


def generalized_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, q: float
) -> torch.Tensor:
    """Per sample ``(1 - softmax(logits)[i, targets_i] ** q) / q``: (N, C), (N,) -> (N,)."""
    probs = logits.softmax(1)
    return (1.0 - probs.gather(1, targets[:, None]).squeeze(1) ** q) / q


class RPL(Adapter):
    """Generalized cross-entropy on hard pseudo-labels over the norm layers' scale and shift."""

    method = "rpl"
    summary = (
        "generalized cross-entropy on hard pseudo-labels over the norm layers' scale and shift "
        "(Rusak et al., TMLR 2022), equal to the toolkit's RPL "
        "(mariodoebler/test-time-adaptation 8b2ed63)"
    )
    params = (
        with_default(LR, 1e-3, help="the optimiser's learning rate (the toolkit's conf: 1e-3; "
                     "its ImageNet files: 0.0005)"),
        Param("q", 0.8, "exponent q of the generalized cross-entropy (the toolkit's RPL.Q)",
              low=0.0, high=1.0, low_open=True, window=True),
        optimizer_param("adam", "adam (the toolkit's conf), nesterov (its ImageNet files: "
                        "SGD, Nesterov momentum 0.9) or sgd (momentum 0.9, oripress/CCC)"),
        STEPS,
        EPISODIC,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        q: float = 0.8,
        optimizer: str = "adam",
        steps: int = 1,
        episodic: bool = False,
    ) -> None:
        super().__init__(model)
        named = norm_parameters(self.model, self.method)
        self.lr, self.q, self.optimizer_name, self.steps, self.episodic = checked(
            self.params, lr=lr, q=q, optimizer=optimizer, steps=steps, episodic=episodic
        )
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.optimizer_name, self._params, self.lr)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._restore_source()
        use_batch_statistics(self.model)
        train_only(self.model, self._params)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self.model(x)
            labels = outputs.argmax(dim=1)
            loss = generalized_cross_entropy(outputs, labels, self.q).mean(0)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            self.last_loss = float(loss.detach())
        return outputs.detach()

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
