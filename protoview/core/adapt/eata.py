"""EATA (Niu et al., ICML 2022): efficient anti-forgetting test-time adaptation.

Ported from the authors' ``eata.py`` and ``main.py`` (github.com/mr-eggplant/EATA, commit
f739b3668cc7617e9b9f1979c1a358497a3472c3; oracle: ``tests/oracles/eata_reference.py``).
Each step, on BatchNorm scale and shift (SGD, lr 0.00025, momentum 0.9; the whole model in
train mode, BatchNorm on batch statistics, running statistics never updated, as Tent):

1. reliable samples: entropy ``H < e_margin`` (the authors' ``0.4 * ln C``);
2. non-redundant samples: ``|cos(m, softmax_i)| < d_margin`` against ``m``, the moving
   average (0.9) of the probabilities of the samples kept so far (from the second batch);
3. ``loss = mean_i H_i * exp(e_margin - H_i)`` over the kept samples, plus the Fisher
   regulariser ``fisher_alpha * sum_k F_k (theta_k - theta0_k)^2`` (Eqn. 8-9); no update
   when no sample is kept (the loss is then ``NaN`` with ``last_selected = 0``).

The Fisher information: the authors compute it once, before adapting, on ``fisher_size``
(2000) clean *source* images: for each batch, the squared gradient of the cross-entropy
against the model's own argmax, averaged over the batches; ``theta0`` are the weights at
that time. :meth:`EATA.compute_fisher` does exactly that on batches you supply (source
data, when you have it). Without it, protoview takes the Fisher from the first
``fisher_batches`` *test* batches as they arrive, each with the source weights and before
its update, and at step ``k <= fisher_batches`` uses the average over the ``k`` batches
seen so far (after ``fisher_batches`` steps it is what the authors' loop gives on those
batches). ``fisher_alpha = 0`` is ETA (no regulariser, no Fisher).

Deviations from the authors' code (none changes the numbers on a model whose BatchNorm
layers are ``BatchNorm2d``): every ``_BatchNorm`` layer (1d/3d too) adapts; the margins
are resolved from the model's class count (``None``); a model without BatchNorm (ViT, Swin,
ConvNeXt) adapts its LayerNorm / GroupNorm scale and shift in eval mode, as the toolkit's
EATA (mariodoebler/test-time-adaptation 8b2ed63; the authors' code adapts BatchNorm
only); the Fisher may come from test batches (above). As in the authors' code, ``episodic`` restores weights and optimizer but
keeps the moving average ``m``; :meth:`reset` (a new run) clears everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._checks import (
    entropy_training_mode,
    method_parameters,
    require_norm_layers,
)
from protoview.core.adapt.base import (
    Adapter,
    kept_flags,
    softmax_entropy,
    train_only,
    use_batch_statistics,
)
from protoview.core.adapt.params import EPISODIC, LR, STEPS, Param, checked, with_default
from protoview.core.heads import scored_class_count
from protoview.errors import ParameterError

Fishers = dict[str, list[torch.Tensor]]  # name -> [fisher, theta0], as the authors store it


def default_margin(num_classes: int) -> float:
    """The authors' entropy margin ``ln(C) * 0.40`` (EATA's E_0, SAR's e_0)."""
    return math.log(num_classes) * 0.40


def update_model_probs(
    current_model_probs: torch.Tensor | None, new_probs: torch.Tensor
) -> torch.Tensor | None:
    """The authors' moving average (0.9) of the mean probability vector of kept samples."""
    if current_model_probs is None:
        if new_probs.size(0) == 0:
            return None
        with torch.no_grad():
            return new_probs.mean(0)
    if new_probs.size(0) == 0:
        return current_model_probs
    with torch.no_grad():
        return 0.9 * current_model_probs + (1 - 0.9) * new_probs.mean(0)


class EATA(Adapter):
    """EATA / ETA on BatchNorm affine parameters (see the module docstring)."""

    method = "eata"
    summary = (
        "entropy minimisation on reliable, non-redundant samples with a Fisher regulariser "
        "(Niu et al., ICML 2022), equal to the authors' code (mr-eggplant/EATA f739b36)"
    )
    batch_statistics = True  # use_batch_statistics in step and prediction
    params = (
        with_default(LR, 0.00025, help="SGD's learning rate (the authors' 0.00025)"),
        Param("e_margin", None, "entropy margin E_0 of reliable samples; none = 0.4 ln C",
              low=0.0, low_open=True, optional=True),
        Param("d_margin", 0.05, "cosine margin of non-redundant samples", low=0.0,
              low_open=True),
        Param("fisher_alpha", 2000.0, "weight of the Fisher regulariser; 0 = ETA", low=0.0),
        Param("fisher_batches", 1, "test batches the Fisher information is taken from",
              kind="int", low=1),
        STEPS,
        EPISODIC,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.00025,
        e_margin: float | None = None,
        d_margin: float = 0.05,
        fisher_alpha: float = 2000.0,
        fisher_batches: int = 1,
        steps: int = 1,
        episodic: bool = False,
    ) -> None:
        super().__init__(model)
        named = self._adapted_parameters()
        (
            self.lr, self.e_margin, self.d_margin, self.fisher_alpha, self.fisher_batches,
            self.steps, self.episodic,
        ) = checked(
            EATA.params, lr=lr, e_margin=e_margin, d_margin=d_margin, fisher_alpha=fisher_alpha,
            fisher_batches=fisher_batches, steps=steps, episodic=episodic,
        )  # fmt: skip
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()
        self._supplied: Fishers | None = None
        self._clear_run_state()

    def _adapted_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The authors' ``collect_params``: BatchNorm scale and shift (LayerNorm / GroupNorm on
        a model without BatchNorm, as the toolkit; a subclass may widen)."""
        require_norm_layers(self.model, self.method)
        return method_parameters(self.model, "affine", self.method)

    # ---- state ------------------------------------------------------------------------------
    def _clear_run_state(self) -> None:
        self.current_model_probs: torch.Tensor | None = None
        self.num_samples_update_1 = 0  # reliable samples so far
        self.num_samples_update_2 = 0  # reliable and non-redundant samples so far
        self.fishers: Fishers | None = self._supplied
        self._fisher_sum: dict[str, torch.Tensor] = {}
        self._fisher_seen = 0

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self._params, self.lr, momentum=0.9)

    def reset(self) -> None:
        """Source weights, fresh optimizer, no moving average; a supplied Fisher is kept."""
        super().reset()
        self._clear_run_state()

    def _extra_state(self) -> dict[str, Any]:
        return {
            "probs": self.current_model_probs,
            "counts": (self.num_samples_update_1, self.num_samples_update_2),
            "fishers": self.fishers,
            "fisher_sum": self._fisher_sum,
            "fisher_seen": self._fisher_seen,
        }

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.current_model_probs = extra["probs"]
        self.num_samples_update_1, self.num_samples_update_2 = extra["counts"]
        self.fishers, self._fisher_sum = extra["fishers"], extra["fisher_sum"]
        self._fisher_seen = extra["fisher_seen"]

    def _configure(self) -> None:
        use_batch_statistics(self.model, entropy_training_mode(self.model))
        train_only(self.model, self._params)

    # ---- Fisher -----------------------------------------------------------------------------
    def compute_fisher(self, batches: Iterable[torch.Tensor]) -> None:
        """The authors' Fisher loop on ``batches`` (N_i, ...) of source data, current weights.

        Call it before adapting, on the source model, as the authors do; :meth:`reset` keeps
        it. Raises :class:`ParameterError` (``where="fisher"``) for no batch.
        """
        xs = [self._prepare(x) for x in batches]
        if not xs:
            raise ParameterError("fisher", "no batch given to compute the Fisher information")
        fishers: Fishers = {}
        with kept_flags(self.model), torch.enable_grad():
            self._configure()
            for p in self._params:
                p.grad = None
            for iter_, x in enumerate(xs, start=1):
                outputs = self.model(x)
                _, targets = outputs.max(1)
                F.cross_entropy(outputs, targets).backward()
                for name, param in self.model.named_parameters():
                    if param.grad is not None:
                        fisher = param.grad.data.clone().detach() ** 2
                        if iter_ > 1:
                            fisher = fisher + fishers[name][0]
                        if iter_ == len(xs):
                            fisher = fisher / iter_
                        fishers[name] = [fisher, param.data.clone().detach()]
                for p in self._params:
                    p.grad = None
        self._supplied = self.fishers = fishers

    def _accumulate_test_fisher(self, x: torch.Tensor) -> None:
        """Add batch ``x``'s squared gradient at the source weights; average so far."""
        names = self.updated_parameter_names
        source = {n: self._source_state[n].detach().clone().requires_grad_(True) for n in names}
        outputs = torch.func.functional_call(self.model, source, (x,), strict=False)
        _, targets = outputs.max(1)
        grads = torch.autograd.grad(F.cross_entropy(outputs, targets), list(source.values()))
        self._fisher_seen += 1
        for name, grad in zip(names, grads, strict=True):
            square = grad.detach() ** 2
            self._fisher_sum[name] = (
                square + self._fisher_sum[name] if name in self._fisher_sum else square
            )
        k = self._fisher_seen
        self.fishers = {
            n: [self._fisher_sum[n] / k, self._source_state[n].detach().clone()] for n in names
        }

    # ---- adaptation -------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._restore_source()
        self._configure()
        want_fisher = self.fisher_alpha > 0 and self._supplied is None
        if want_fisher and self._fisher_seen < self.fisher_batches:
            self._accumulate_test_fisher(x)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs.detach()

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model(x)
        e_margin = self.e_margin
        if e_margin is None:
            e_margin = default_margin(scored_class_count(self.model, outputs.shape[1]))
        entropys = softmax_entropy(outputs)
        filter_ids_1 = torch.where(entropys < e_margin)
        ids2 = torch.where(filter_ids_1[0] > -0.1)
        entropys = entropys[filter_ids_1]
        kept = outputs[filter_ids_1]
        if self.current_model_probs is not None:
            cosine = F.cosine_similarity(
                self.current_model_probs.unsqueeze(dim=0), kept.softmax(1), dim=1
            )
            filter_ids_2 = torch.where(torch.abs(cosine) < self.d_margin)
            entropys = entropys[filter_ids_2]
            ids2 = filter_ids_2
            probs = update_model_probs(self.current_model_probs, kept[filter_ids_2].softmax(1))
        else:
            probs = update_model_probs(self.current_model_probs, kept.softmax(1))
        coeff = 1 / (torch.exp(entropys.clone().detach() - e_margin))
        entropys = entropys.mul(coeff)
        loss = entropys.mean(0)
        if self.fisher_alpha > 0 and self.fishers is not None:
            ewc_loss: Any = 0
            for name, param in self.model.named_parameters():
                if name in self.fishers:
                    fisher, theta0 = self.fishers[name]
                    ewc_loss += self.fisher_alpha * (fisher * (param - theta0) ** 2).sum()
            loss = loss + ewc_loss
        selected = int(ids2[0].numel())
        self.last_loss, self.last_selected = float(loss.detach()), selected
        if selected != 0:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad()
        self.num_samples_update_2 += int(entropys.size(0))
        self.num_samples_update_1 += int(filter_ids_1[0].size(0))
        self.current_model_probs = probs
        return outputs

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
