"""PL and PLC: hard pseudo-labels above a confidence threshold (the TSD repository's
``PseudoLabel``), reference and corrected.

Each step: ``scores = softmax(outputs)``, ``py, y' = max(scores)``, ``mask = py > beta``,
``loss = cross_entropy(outputs[mask], y'[mask])``, one Adam update (see
:mod:`protoview.core.adapt._script` for the optimiser, the train mode and ``steps`` /
``episodic``). ``pl`` updates every parameter, ``plc`` the classifier's only (the
featurizer's BatchNorm statistics still follow the test batches, as in the script).

``reference`` reproduces the released code number for number, including its one flaw: a
batch where no prediction clears ``beta`` makes the cross-entropy a mean over nothing,
``NaN``. Its gradient is zero, so the weights survive, but Adam still steps: its moments
decay and the parameters keep moving along the old momentum. ``last_loss`` records that
``NaN`` and ``last_selected`` is 0, which the run's divergence guard accepts.
``corrected`` skips the update on such a batch (no Adam step: moments and step count stay)
and records a loss of 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt._script import SCRIPT_LR, ScriptAdapter
from protoview.core.adapt.params import EPISODIC, STEPS, VARIANT, Param, checked


class PseudoLabel(ScriptAdapter):
    """PL: cross-entropy on confident hard pseudo-labels, every parameter adapts."""

    method = "pl"
    update = "all"
    summary = (
        "cross-entropy on pseudo-labels above a confidence beta, every parameter (Lee, "
        "ICML-W 2013), equal to the TSD repository's PL (a79a34e)"
    )
    params = (
        SCRIPT_LR,
        Param("beta", 0.9, "confidence a prediction must exceed to become a pseudo-label",
              low=0.0, high=1.0, high_open=True),
        STEPS,
        EPISODIC,
        VARIANT,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-4,
        beta: float = 0.9,
        steps: int = 1,
        episodic: bool = False,
        variant: str = "reference",
    ) -> None:
        self.beta, self.variant = checked(self.params, beta=beta, variant=variant)
        super().__init__(model, lr=lr, steps=steps, episodic=episodic)

    def _loss(self, outputs: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        scores = F.softmax(outputs, 1)
        py, y_prime = torch.max(scores, 1)
        mask = py > self.beta
        selected = int(mask.sum())
        if selected == 0 and self.variant == "corrected":
            return outputs.new_zeros(()), 0
        return F.cross_entropy(outputs[mask], y_prime[mask]), selected

    def _update(self, loss: torch.Tensor, selected: int | None) -> None:
        if selected == 0 and self.variant == "corrected":
            return
        super()._update(loss, selected)


class PseudoLabelClassifier(PseudoLabel):
    """PLC: PL with only the classifier's parameters in the optimiser."""

    method = "plc"
    update = "head"
    summary = "PL on the classifier's parameters only, equal to the TSD repository's PLC (a79a34e)"
