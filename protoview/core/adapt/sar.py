"""SAR (Niu et al., ICLR 2023): sharpness-aware and reliable entropy minimisation.

Ported from the authors' ``sar.py`` and ``sam.py`` (github.com/mr-eggplant/SAR, commit
20f6e24b17525f34503510afccedc0629b67b7c4; oracle: ``tests/oracles/sar_reference.py``).
Each step, on the scale and shift of the normalisation layers (BatchNorm, LayerNorm,
GroupNorm, skipping a ResNet's ``layer4`` and a ViT's last blocks and final norm, as the
authors' ``collect_params``), the whole model in train mode with BatchNorm on batch
statistics (running statistics never updated):

1. forward; keep the reliable samples (entropy ``< margin_e0``, the authors' ``0.4 ln C``);
   backward their mean entropy;
2. SAM's first step: ``theta + rho * g / ||g||`` (``rho`` 0.05);
3. forward again, keep the samples still reliable there, backward their mean entropy;
   SAM's second step: back to ``theta`` and one SGD step (lr 0.00025, momentum 0.9) with
   that gradient;
4. model recovery: the moving average (0.9) of the second loss below ``reset_constant``
   (0.2) means collapse: back to the source weights.

``last_loss`` is the first forward's loss, ``last_selected`` the reliable samples of that
forward (0: the loss is the mean of nothing, ``NaN``, and SGD steps on its momentum alone,
as in the authors' code); ``recoveries`` counts model recoveries.

``reference`` reproduces the authors' code number for number, including three flaws of
its recovery: the threshold is the literal ``0.2`` (``reset_constant_em`` is stored and
never read), the moving average survives the reset (``self.ema = ema`` runs after
``reset()`` cleared it, so a collapsed run resets again at every following step until
the average climbs back), and SGD's momentum survives it too (``SAM.load_state_dict``
restores SAM's own state, not its base optimiser's). ``corrected`` compares with
``reset_constant`` and clears the moving average and the momentum on recovery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from protoview.core.adapt.base import Adapter, softmax_entropy, train_only, use_batch_statistics
from protoview.core.adapt.eata import default_margin
from protoview.core.adapt.params import (
    EPISODIC,
    LR,
    STEPS,
    VARIANT,
    Param,
    checked,
    with_default,
)
from protoview.core.heads import scored_class_count
from protoview.errors import ParameterError

NORM_LAYERS = (_BatchNorm, nn.LayerNorm, nn.GroupNorm)


def sar_parameters(
    model: nn.Module,
    layers: tuple[type[nn.Module], ...] = NORM_LAYERS,
    method: str = "sar",
    norms: str = "BatchNorm, LayerNorm or GroupNorm",
) -> list[tuple[str, nn.Parameter]]:
    """The authors' ``collect_params``: scale and shift of the norm layers, top layers skipped.

    The tests run on module names relative to the featurizer / classifier (the authors'
    model has no such prefix), so a ViT's final ``norm`` is skipped as intended. ``layers``,
    ``method`` and ``norms``: for another method with the same choice (DeYO's).
    """
    chosen = []
    for name, m in model.named_modules():
        bare = name.split(".", 1)[1] if name.startswith(("featurizer.", "classifier.")) else name
        if any(s in bare for s in ("layer4", "blocks.9", "blocks.10", "blocks.11", "norm.")):
            continue
        if bare in ["norm"] or not isinstance(m, layers):
            continue
        for pname, p in m.named_parameters(recurse=False):
            if pname in ["weight", "bias"]:
                chosen.append((f"{name}.{pname}" if name else pname, p))
    if not chosen:
        raise ParameterError(
            "method",
            f"'{method}' adapts the scale and shift of {norms} layers "
            "(outside a ResNet's layer4 and a ViT's last blocks) and the model has none",
        )
    return chosen


def update_ema(ema: float | None, new_data: float) -> float:
    """The authors' moving average of the second loss."""
    if ema is None:
        return new_data
    return 0.9 * ema + (1 - 0.9) * new_data


class SAR(Adapter):
    """SAR on normalisation layers with SAM + SGD (see the module docstring)."""

    method = "sar"
    summary = (
        "sharpness-aware reliable entropy minimisation with model recovery (Niu et al., "
        "ICLR 2023), equal to the authors' code (mr-eggplant/SAR 20f6e24)"
    )
    batch_statistics = True  # use_batch_statistics (BatchNorm); GroupNorm / LayerNorm: any batch
    params = (
        with_default(LR, 0.00025, help="SGD's learning rate (the authors' 0.00025)"),
        Param("rho", 0.05, "SAM's neighbourhood radius", low=0.0),
        Param("margin_e0", None, "entropy margin of reliable samples; none = 0.4 ln C",
              low=0.0, low_open=True, optional=True),
        Param("reset_constant", 0.2, "loss average below which the model recovers "
              "(corrected only; the reference reads 0.2)", low=0.0),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.00025,
        rho: float = 0.05,
        margin_e0: float | None = None,
        reset_constant: float = 0.2,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.lr, self.rho, self.margin_e0, self.reset_constant, self.steps, self.episodic,
            self.variant,
        ) = checked(
            self.params, lr=lr, rho=rho, margin_e0=margin_e0, reset_constant=reset_constant,
            steps=steps, episodic=episodic, variant=variant,
        )  # fmt: skip
        named = sar_parameters(self.model)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self.ema: float | None = None
        self.recoveries = 0

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self._params, lr=self.lr, momentum=0.9)

    def reset(self) -> None:
        super().reset()
        self.ema, self.recoveries = None, 0

    def _extra_state(self) -> dict[str, Any]:
        return {"ema": self.ema, "recoveries": self.recoveries}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.ema, self.recoveries = extra["ema"], extra["recoveries"]

    # ---- SAM (github.com/davda54/sam, non-adaptive, as SAR uses it) -------------------------
    @torch.no_grad()
    def _first_step(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        with_grad = [p for p in self._params if p.grad is not None]
        grad_norm = torch.norm(torch.stack([(1.0 * p.grad).norm(p=2) for p in with_grad]), p=2)
        scale = self.rho / (grad_norm + 1e-12)
        old = []
        for p in with_grad:
            old.append((p, p.data.clone()))
            e_w = 1.0 * p.grad * scale.to(p)
            p.add_(e_w)
        self.optimizer.zero_grad()
        return old

    @torch.no_grad()
    def _second_step(self, old: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
        saved = {id(p): data for p, data in old}
        for p in self._params:
            if p.grad is not None:
                p.data = saved[id(p)]
        self.optimizer.step()
        self.optimizer.zero_grad()

    # ---- adaptation -------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._recover()
        use_batch_statistics(self.model, whole_model_training=True)
        train_only(self.model, self._params)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs.detach()

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad()
        outputs = self.model(x)
        margin = self.margin_e0
        if margin is None:
            margin = default_margin(scored_class_count(self.model, outputs.shape[1]))
        entropys = softmax_entropy(outputs)
        filter_ids_1 = torch.where(entropys < margin)
        entropys = entropys[filter_ids_1]
        loss = entropys.mean(0)
        self.last_loss, self.last_selected = float(loss.detach()), int(entropys.numel())
        loss.backward()
        old = self._first_step()
        entropys2 = softmax_entropy(self.model(x))
        entropys2 = entropys2[filter_ids_1]
        filter_ids_2 = torch.where(entropys2 < margin)
        loss_second = entropys2[filter_ids_2].mean(0)
        ema = self.ema
        if not np.isnan(loss_second.item()):
            ema = update_ema(ema, loss_second.item())
        loss_second.backward()
        self._second_step(old)
        reference = self.variant == "reference"
        threshold = 0.2 if reference else self.reset_constant
        if ema is not None and ema < threshold:
            self.recoveries += 1
            self._recover()
            if not reference:
                ema = None  # the authors' code assigns the stale average after the reset
        self.ema = ema
        return outputs

    def _recover(self) -> None:
        """The authors' ``reset()``: source weights, no moving average. ``reference`` keeps
        SGD's momentum as their ``SAM.load_state_dict`` does; ``corrected`` clears it."""
        if self.variant == "corrected":
            self._restore_source()
        else:
            self.model.load_state_dict(self._source_state)
        self.ema = None

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
