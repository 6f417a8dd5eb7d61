"""ROID (Marsden et al., WACV 2024): universal test-time adaptation through weight
ensembling, diversity weighting and prior correction.

Ported from the toolkit its authors wrote and released it in
(github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1: ``classification/methods/roid.py``, ``base.py``,
``utils/losses.py``, ``utils/misc.py``, ``conf.py``'s ``_C.ROID``, ``cfgs/*/roid.yaml``;
oracle: ``tests/oracles/roid_cmf_reference.py``). The model runs in eval mode with
BatchNorm1d/2d on the batch's statistics (running statistics never read); the scale and
shift of BatchNorm1d/2d, LayerNorm and GroupNorm layers adapt. Each step:

1. forward the batch: logits ``z`` (N, C), probabilities ``p``;
2. weights (``use_weighting``): diversity ``w_div = 1 - cos(p_ema, p_i)`` and certainty
   ``w_cert = -H(p_i)``, each min-max normalised over the batch; samples with ``w_div``
   below its mean get weight 0 and leave the loss, the others
   ``exp(w_div * w_cert / temperature)``; ``p_ema`` (uniform at first) follows the
   batch's mean ``p`` with momentum ``momentum_probs``;
3. loss: the soft likelihood ratio ``-sum_c p_c log(p_c / (1 - p_c) + 1e-5)`` (``p``
   clipped at 0.99) times the weights, summed over the kept samples, divided by the
   batch size; plus (``use_consistency``) the symmetric cross-entropy between the kept
   samples' logits and those of one augmented view of them (the toolkit's
   ``get_tta_transforms(padding_mode="reflect", cotta_augs=False)``, one draw for the
   batch, applied to pixels: see :mod:`~protoview.core.adapt.augment`), weighted alike;
4. one optimiser step (Adam, lr 1e-3, the toolkit's default and its CIFAR configs; its
   ImageNet configs: ``optimizer=sgd``, lr 0.00025, momentum 0.9, Nesterov);
5. weight ensembling: ``theta = momentum_src * theta + (1 - momentum_src) * theta_source``
   for the adapted parameters;
6. prior correction (``use_prior_correction``): with the batch's mean probability
   ``pi``, ``s = max(1/N, 1/C) / max(pi)``, the step's logits ``z`` (from step 1, before
   the update) are multiplied by ``(pi + s) / (1 + s C)``.

``step`` returns those prior-corrected logits, as the toolkit returns them for the online
prediction (it multiplies the *logits* by the smoothed prior, not the probabilities: its
code, reproduced as is). ``predict`` / ``features`` use the current weights, batch
statistics and the same prior correction on the batch given. ``last_loss`` is the step's
loss, ``last_selected`` the samples that entered it.

The toolkit divides the loss sums by its configured ``TEST.BATCH_SIZE``, also for a short
last batch: ``batch_size=None`` (the default) divides by the largest batch this run has
seen (a stream's batch size), which is that; a number sets it.

``reference`` is the toolkit's code number for number. Its flaw: with
``use_weighting=False`` and ``use_consistency=True`` it fails (the consistency loss reads
the weighting's mask and weights, never defined then); ``reference`` refuses that
combination, ``corrected`` runs it with every sample kept at weight 1. Not ported: the
toolkit's ``ResNetDomainNet126`` case (it removes WeightNorm hooks before copying that
model; protoview copies weights, not modules), its mixed precision and its single-sample
sliding window (a batch needs 2 samples here: the min-max weights of one sample are 0/0).
BatchNorm1d layers in the toolkit run in train mode and so update running statistics they
never read; here they are left alone (the outputs are the same).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._toolkit import ema, norm_parameters, symmetric_cross_entropy
from protoview.core.adapt.augment import tta_transforms
from protoview.core.adapt.base import Adapter, softmax_entropy, train_only
from protoview.core.adapt.params import EPISODIC, LR, STEPS, VARIANT, Param, checked, with_default
from protoview.errors import ParameterError

#: The layers whose scale and shift ROID and CMF adapt (the toolkit's ``collect_params``).
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
OPTIMIZERS = ("adam", "sgd")


def soft_likelihood_ratio(logits: torch.Tensor, clip: float = 0.99, eps: float = 1e-5):
    """The toolkit's ``SoftLikelihoodRatio``: (N, C) logits -> (N,) loss."""
    probs = logits.softmax(1)
    probs = torch.clamp(probs, min=0.0, max=clip)
    return -(probs * torch.log((probs / (torch.ones_like(probs) - probs)) + eps)).sum(1)


@torch.no_grad()
def prior_corrected(outputs: torch.Tensor) -> torch.Tensor:
    """The toolkit's prior correction, in place on ``outputs`` (N, C) logits (returned)."""
    prior = outputs.softmax(1).mean(0)
    smooth = max(1 / outputs.shape[0], 1 / outputs.shape[1]) / torch.max(prior)
    smoothed_prior = (prior + smooth) / (1 + smooth * outputs.shape[1])
    outputs *= smoothed_prior
    return outputs


COMMON = (
    Param("optimizer", "adam", "adam (the toolkit's default, CIFAR configs) or sgd (its "
          "ImageNet configs: momentum 0.9, Nesterov)", kind="choice", choices=OPTIMIZERS),
    with_default(LR, 1e-3, help="learning rate (the toolkit's 1e-3 with Adam; 0.00025 with "
                 "SGD in its ImageNet configs)"),
    Param("use_weighting", True, "certainty and diversity weighting of the samples", kind="bool"),
    Param("use_consistency", True, "consistency loss with an augmented view", kind="bool"),
    Param("use_prior_correction", True, "correct the predictions by the batch's class prior",
          kind="bool"),
    Param("momentum_probs", 0.9, "momentum of the class-probability average (diversity)",
          low=0.0, high=1.0),
    Param("temperature", 1 / 3, "temperature of the sample weights", low=0.0, low_open=True),
    Param("batch_size", None, "divisor of the loss sums (the toolkit's TEST.BATCH_SIZE); "
          "none = the largest batch seen", kind="int", low=1, optional=True),
)  # fmt: skip


class ROID(Adapter):
    """ROID on normalisation layers (see the module docstring)."""

    method = "roid"
    summary = (
        "certainty- and diversity-weighted soft likelihood ratio with consistency, weight "
        "ensembling and prior correction (Marsden et al., WACV 2024), equal to the authors' "
        "code (mariodoebler/test-time-adaptation 8b2ed63)"
    )
    params = (
        *COMMON[:6],
        Param("momentum_src", 0.99, "weight ensembling: share of the adapted weights kept "
              "(the rest from the source)", low=0.0, high=1.0),
        *COMMON[6:],
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        optimizer: str = "adam",
        lr: float = 1e-3,
        use_weighting: bool = True,
        use_consistency: bool = True,
        use_prior_correction: bool = True,
        momentum_probs: float = 0.9,
        momentum_src: float = 0.99,
        temperature: float = 1 / 3,
        batch_size: int | None = None,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super().__init__(model)
        (
            self.optimizer_name, self.lr, self.use_weighting, self.use_consistency,
            self.use_prior_correction, self.momentum_probs, self.momentum_src,
            self.temperature, self.batch_size, self.steps, self.episodic, self.variant,
        ) = checked(
            self.params, optimizer=optimizer, lr=lr, use_weighting=use_weighting,
            use_consistency=use_consistency, use_prior_correction=use_prior_correction,
            momentum_probs=momentum_probs, momentum_src=momentum_src, temperature=temperature,
            batch_size=batch_size, steps=steps, episodic=episodic, variant=variant,
        )  # fmt: skip
        self._init_common()

    def _init_common(self) -> None:
        if self.variant == "reference" and self.use_consistency and not self.use_weighting:
            raise ParameterError(
                "use_weighting",
                f"the authors' {self.method} fails with use_weighting=false and "
                "use_consistency=true (its consistency loss reads the weighting's mask); "
                "choose variant=corrected to run it",
            )
        named = norm_parameters(self.model, self.method, NORM_LAYERS)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self._source_params = [p.detach().clone() for p in self._params]
        self.optimizer = self._build_optimizer()
        self._clear_run_state()

    # ---- state ------------------------------------------------------------------------------
    def _clear_run_state(self) -> None:
        self.class_probs_ema: torch.Tensor | None = None  # uniform at the first batch
        self.largest_batch = 0

    def _build_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(
                self._params, lr=self.lr, momentum=0.9, dampening=0.0, weight_decay=0.0,
                nesterov=True,
            )  # fmt: skip
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    def reset(self) -> None:
        super().reset()
        self._clear_run_state()

    def _recover(self) -> None:
        """The toolkit's ``reset()`` (``episodic``): source weights, fresh optimiser,
        uniform class probabilities."""
        self._restore_source()
        self.class_probs_ema = None

    def _extra_state(self) -> dict[str, Any]:
        return {"class_probs_ema": self.class_probs_ema, "largest_batch": self.largest_batch}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        self.class_probs_ema, self.largest_batch = extra["class_probs_ema"], extra["largest_batch"]

    # ---- adaptation -------------------------------------------------------------------------
    def _configure(self) -> None:
        """The toolkit's ``configure_model``: eval mode, BatchNorm1d/2d on batch statistics."""
        self.model.eval()
        for m in self.model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.train()
                m.track_running_stats = False
        train_only(self.model, self._params)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] < 2:
            raise ParameterError(
                "batch", f"{self.method!r} needs batches of at least 2 samples (its "
                "weights are normalised over the batch), got 1",
            )  # fmt: skip
        self.largest_batch = max(self.largest_batch, int(x.shape[0]))
        if self.episodic:
            self._recover()
        self._configure()
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._forward_and_adapt(x)
        return outputs

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        outputs, loss = self._loss(x)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.last_loss = float(loss.detach())
        with torch.no_grad():
            self._merge()
            if self.use_prior_correction:
                prior_corrected(outputs)
        return outputs

    def _loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model(x)
        keep, weights = slice(None), None
        if self.use_weighting:
            with torch.no_grad():
                if self.class_probs_ema is None:
                    classes = outputs.shape[1]
                    self.class_probs_ema = 1 / classes * torch.ones(classes).to(outputs.device)
                weights_div = 1 - F.cosine_similarity(
                    self.class_probs_ema.unsqueeze(dim=0), outputs.softmax(1), dim=1
                )
                weights_div = (weights_div - weights_div.min()) / (
                    weights_div.max() - weights_div.min()
                )
                mask = weights_div < weights_div.mean()
                weights_cert = -softmax_entropy(outputs)
                weights_cert = (weights_cert - weights_cert.min()) / (
                    weights_cert.max() - weights_cert.min()
                )
                weights = torch.exp(weights_div * weights_cert / self.temperature)
                weights[mask] = 0.0
                m, batch_probs = self.momentum_probs, outputs.softmax(1).mean(0)
                self.class_probs_ema = m * self.class_probs_ema + (1 - m) * batch_probs
            keep = ~mask
        divisor = self.batch_size if self.batch_size is not None else self.largest_batch
        loss_out = soft_likelihood_ratio(outputs)
        if weights is not None:
            loss_out = loss_out * weights
            loss_out = loss_out[keep]
        self.last_selected = int(loss_out.shape[0])
        loss = loss_out.sum() / divisor
        if self.use_consistency:
            outputs_aug = self.model(self._augment(x[keep]))
            sce = symmetric_cross_entropy(outputs_aug, outputs[keep])
            if weights is not None:
                sce = sce * weights[keep]
            loss += sce.sum() / divisor
        return outputs, loss

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of the toolkit's ROID augmentations on the pixels of ``x``."""
        size = tuple(int(s) for s in x.shape[-2:])
        return self.pixels.apply(
            tta_transforms(size, padding_mode="reflect", cotta_augs=False), x
        )

    def _merge(self) -> None:
        """Weight ensembling with the source model (the toolkit's ``ema_update_model``)."""
        if self.momentum_src < 1.0:
            for p, source in zip(self._params, self._source_params, strict=True):
                p.data = ema(p.data, source, self.momentum_src)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._configure()
        z = self.model.featurizer(x)
        logits = self.model.classifier(z)
        if self.use_prior_correction:
            prior_corrected(logits)
        return z, logits
