"""CMF (Lee et al., ICLR 2024, "Becoming robust: continual model fusion"): ROID's loss with
a hidden model fused by a Kalman-style filter.

Ported from the toolkit (github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1: ``classification/methods/cmf.py``, with
``base.py``, ``utils/losses.py``, ``utils/misc.py``, ``conf.py``'s ``_C.ROID`` and
``_C.CMF``, ``cfgs/*/cmf.yaml``; oracle: ``tests/oracles/roid_cmf_reference.py``). The
model, the adapted parameters (norm layers' scale and shift), the loss, the optimiser and
the prior correction are ROID's (:mod:`~protoview.core.adapt.roid`, with its
``use_*``, ``momentum_probs`` and ``temperature``); ROID's weight ensembling with the
source is replaced, after each optimiser step, by (all with no gradient):

1. predict: the hidden model (a copy of the source at first; every parameter)
   ``h = alpha * h + (1 - alpha) * theta_source``; ``v = alpha^2 v + q'`` with
   ``q' = q * (trainable parameters) / 38400``;
2. update: ``beta = (1 - q') / (v + 1 - q')``, raised to 0.89 at least and set to 1 from
   0.9999 on; ``v = beta v``; ``h = beta * h + (1 - beta) * theta`` (skipped at beta 1);
3. fuse: ``theta = gamma * theta + (1 - gamma) * h`` for the adapted parameters
   (``post_type=lp``, the default; ``op`` fuses with the predicted ``h`` of step 1).

With few adapted parameters (a small model) the default ``q`` makes ``beta`` 1: the hidden
model only follows the source and CMF is ROID (``momentum_src = gamma``) up to rounding.

``step`` returns ROID's prior-corrected logits of the batch (the model before the update),
as the toolkit does. ``hidden_var`` is ``v``; the hidden model's parameters are kept with
the state (snapshots, reset).

``reference`` is the toolkit's code number for number, with its flaws:

- ``post_type=op`` is the same as ``lp``: the predicted model of step 1 is the hidden
  model itself (``ema_update_model`` changes it in place and returns it), so step 2 has
  already moved it when step 3 reads it. ``corrected`` fuses with a copy taken after step 1.
- ``episodic`` (the toolkit's ``reset()``) restores the weights, the hidden model and the
  optimiser but keeps ``v`` (``hidden_var`` is not part of the saved state); ``corrected``
  sets it back to 0, as at the start.
- ROID's: ``use_weighting=False`` with ``use_consistency=True`` fails (refused;
  ``corrected`` weights every sample 1).

Not ported: the ``ResNetDomainNet126`` case, mixed precision, the single-sample sliding
window and the debug logging of the energies (``kernel``), as for ROID.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from protoview.core.adapt._toolkit import ema
from protoview.core.adapt.params import EPISODIC, STEPS, VARIANT, Param, checked
from protoview.core.adapt.roid import COMMON, ROID

POST_TYPES = ("lp", "op")


class CMF(ROID):
    """CMF on normalisation layers (see the module docstring)."""

    method = "cmf"
    summary = (
        "ROID's weighted loss with a hidden model fused by a Kalman-style filter "
        "(Lee et al., ICLR 2024), equal to the authors' code "
        "(mariodoebler/test-time-adaptation 8b2ed63)"
    )
    params = (
        *COMMON,
        Param("alpha", 0.99, "predict step: share of the hidden model kept (the rest from "
              "the source)", low=0.0, high=1.0),
        Param("gamma", 0.99, "fusion: share of the adapted weights kept (the rest from the "
              "hidden model)", low=0.0, high=1.0),
        Param("q", 0.005, "process noise, scaled by trainable parameters / 38400", low=0.0),
        Param("post_type", "lp", "fuse with the updated (lp) or the predicted (op) hidden "
              "model; the reference's op is lp", kind="choice", choices=POST_TYPES),
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
        temperature: float = 1 / 3,
        batch_size: int | None = None,
        alpha: float = 0.99,
        gamma: float = 0.99,
        q: float = 0.005,
        post_type: str = "lp",
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        super(ROID, self).__init__(model)
        (
            self.optimizer_name, self.lr, self.use_weighting, self.use_consistency,
            self.use_prior_correction, self.momentum_probs, self.temperature, self.batch_size,
            self.alpha, self.gamma, self.q, self.post_type, self.steps, self.episodic,
            self.variant,
        ) = checked(
            self.params, optimizer=optimizer, lr=lr, use_weighting=use_weighting,
            use_consistency=use_consistency, use_prior_correction=use_prior_correction,
            momentum_probs=momentum_probs, temperature=temperature, batch_size=batch_size,
            alpha=alpha, gamma=gamma, q=q, post_type=post_type, steps=steps, episodic=episodic,
            variant=variant,
        )  # fmt: skip
        self._all = list(self.model.parameters())
        self._all_source = [p.detach().clone() for p in self._all]
        self._init_common()
        trainable = sum(p.numel() for p in self._params)
        self.scaled_q = self.q * (trainable / 38400)
        where = {id(p): i for i, p in enumerate(self._all)}
        self._hidden_index = [where[id(p)] for p in self._params]

    # ---- state ------------------------------------------------------------------------------
    def _clear_run_state(self) -> None:
        super()._clear_run_state()
        self.hidden = [p.clone() for p in self._all_source]
        self.hidden_var: float = 0
        self.beta: float | None = None

    def _recover(self) -> None:
        """The toolkit's ``reset()``: ROID's, and the hidden model back to the source;
        ``v`` kept (``reference``) or cleared (``corrected``)."""
        super()._recover()
        self.hidden = [p.clone() for p in self._all_source]
        if self.variant == "corrected":
            self.hidden_var = 0

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "hidden": self.hidden,
            "hidden_var": self.hidden_var,
            "beta": self.beta,
        }

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        super()._load_extra_state(extra)
        assert extra is not None
        self.hidden, self.hidden_var = extra["hidden"], extra["hidden_var"]
        self.beta = extra["beta"]

    # ---- the filter -------------------------------------------------------------------------
    def _merge(self) -> None:
        """The toolkit's ``bayesian_filtering`` (see the module docstring)."""
        alpha, gamma, q = self.alpha, self.gamma, self.scaled_q
        if alpha < 1.0:  # 1. predict
            pairs = zip(self.hidden, self._all_source, strict=True)
            self.hidden = [ema(h, s, alpha) for h, s in pairs]
        recovered = list(self.hidden)  # tensors are replaced below, never changed in place
        self.hidden_var = alpha**2 * self.hidden_var + q  # 2. update
        r = 1 - q
        beta = r / (self.hidden_var + r)
        beta = beta if beta > 0.89 else 0.89
        beta = beta if beta < 0.9999 else 1.0
        self.beta = beta
        self.hidden_var = beta * self.hidden_var
        if beta < 1.0:
            pairs = zip(self.hidden, self._all, strict=True)
            self.hidden = [ema(h, p.data, beta) for h, p in pairs]
        fuse_with = (
            recovered if self.post_type == "op" and self.variant == "corrected" else self.hidden
        )
        if gamma < 1.0:  # 3. fuse
            for p, i in zip(self._params, self._hidden_index, strict=True):
                p.data = ema(p.data, fuse_with[i], gamma)

    def hidden_state(self) -> dict[str, torch.Tensor]:
        """The hidden model's parameters by name (as ``model.named_parameters()``)."""
        names = [name for name, _ in self.model.named_parameters()]
        return dict(zip(names, self.hidden, strict=True))
