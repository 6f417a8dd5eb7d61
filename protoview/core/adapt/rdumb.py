"""RDumb (Press et al., NeurIPS 2023): ETA with a full reset every ``reset_every`` updates.

"RDumb: A simple approach that questions our progress in continual test-time adaptation".
The authors' code (github.com/oripress/CCC, commit 656dec36b8f5b4dbf64fe44c73a9a1326b9588ff,
``models/rdumb.py``) is EATA's entropy minimisation without the Fisher regulariser (ETA,
mr-eggplant/EATA) that puts back the source weights, a fresh optimiser and no moving
average of the kept samples' probabilities every 1000 updates. The toolkit
(mariodoebler/test-time-adaptation 8b2ed63, whose ``rdumb.yaml`` files run its ``EATA``
with ``FISHER_ALPHA: 0`` and ``MODEL.RESET_AFTER_NUM_UPDATES: 1000``; ``TTAMethod.forward``
counts every update and calls ``reset()`` after each 1000th, and ``EATA.reset`` clears the
moving average) does the same. Oracles: ``tests/oracles/toolkit_basic_reference.py`` and
``tests/oracles/rdumb_reference.py``.

:class:`RDumb` is protoview's :class:`~protoview.core.adapt.eata.EATA` with
``fisher_alpha = 0`` (so each update is the authors' ETA update, number for number) plus:

- after every ``reset_every``-th update (counted over batches and ``steps``; ``0`` never),
  the source weights, a fresh optimiser and no moving average; the batch's returned logits
  are those of the forward before the reset. The count survives snapshot / restore and
  starts again at :meth:`reset` (a new run);
- ``episodic`` clears the moving average too (the toolkit's ``EATA.reset``; protoview's
  EATA keeps it, as the EATA authors' episodic mode does);
- it adapts the scale and shift of BatchNorm, LayerNorm and GroupNorm layers (the toolkit's
  ``collect_params``), so it runs on GroupNorm / LayerNorm models too; the authors adapt
  ``BatchNorm2d`` only (the same numbers on a model whose norm layers are BatchNorm);
- ``optimizer``: ``sgd`` (default: the authors' ``SGD(lr, momentum=0.9)``), ``nesterov``
  (the toolkit's ImageNet-C / CCC / DomainNet files: its SGD has ``OPTIM.NESTEROV True`` by
  default) or ``adam`` (its CIFAR-10/100-C files, with ``lr=1e-3``).

Defaults are the authors' (lr 0.00025, ``d_margin`` 0.05, ``e_margin`` ``0.4 ln C``, reset
every 1000), which are the toolkit's ImageNet-C / CCC ``rdumb.yaml`` but for its Nesterov
momentum. The toolkit's other files: CIFAR-10-C ``optimizer=adam, lr=1e-3, d_margin=0.4``;
CIFAR-100-C the same with ``d_margin=0.1``; DomainNet-126 ``optimizer=nesterov,
d_margin=0.1``. Other differences between the toolkit's EATA and the authors' that do not
change these numbers: the toolkit keeps the model in eval mode (BatchNorm on batch
statistics), the authors and protoview in train mode (differs with dropout or stochastic
depth); the toolkit's ``reset()`` leaves its update count alone, so with its
``reset_each_shift`` setting the periodic resets fall at multiples of 1000 counted from the
run's start, not from the last domain's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from protoview.core.adapt._toolkit import build_optimizer, norm_parameters, optimizer_param
from protoview.core.adapt.eata import EATA
from protoview.core.adapt.params import EPISODIC, LR, STEPS, Param, checked, with_default


class RDumb(EATA):
    """ETA (EATA without the Fisher regulariser) reset to the source every ``reset_every``."""

    method = "rdumb"
    summary = (
        "ETA entropy minimisation reset to the source model every 1000 updates (Press et al., "
        "NeurIPS 2023), equal to the authors' code (oripress/CCC 656dec3) and the toolkit's "
        "(mariodoebler/test-time-adaptation 8b2ed63)"
    )
    params = (
        with_default(LR, 0.00025, help="the optimiser's learning rate (the authors' 0.00025)"),
        Param("e_margin", None, "entropy margin E_0 of reliable samples; none = 0.4 ln C",
              low=0.0, low_open=True, optional=True),
        Param("d_margin", 0.05, "cosine margin of non-redundant samples", low=0.0,
              low_open=True),
        Param("reset_every", 1000, "updates between two resets to the source model",
              kind="int", low=1, special=((0, "never"),), window=True,
              window_range=(0, 1_000_000)),
        optimizer_param("sgd", "sgd (the authors': momentum 0.9), nesterov (the toolkit's "
                        "ImageNet files) or adam (its CIFAR files)"),
        STEPS,
        EPISODIC,
    )  # fmt: skip

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.00025,
        e_margin: float | None = None,
        d_margin: float = 0.05,
        reset_every: int = 1000,
        optimizer: str = "sgd",
        steps: int = 1,
        episodic: bool = False,
    ) -> None:
        self.reset_every, self.optimizer_name = checked(
            self.params, reset_every=reset_every, optimizer=optimizer
        )
        super().__init__(
            model, lr=lr, e_margin=e_margin, d_margin=d_margin, fisher_alpha=0.0,
            steps=steps, episodic=episodic,
        )  # fmt: skip

    def _adapted_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return norm_parameters(self.model, self.method)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.optimizer_name, self._params, self.lr)

    # ---- state ------------------------------------------------------------------------------
    def _clear_run_state(self) -> None:
        super()._clear_run_state()
        self.performed_updates = 0  # the toolkit's count of updates since the run began
        self.resets = 0  # periodic resets so far

    def _restore_source(self) -> None:
        """Source weights, a fresh optimiser and no moving average (RDumb's reset)."""
        super()._restore_source()
        self.current_model_probs = None

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "updates": (self.performed_updates, self.resets)}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        super()._load_extra_state(extra)
        assert extra is not None
        self.performed_updates, self.resets = extra["updates"]

    # ---- adaptation -------------------------------------------------------------------------
    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        outputs = super()._forward_and_adapt(x)
        self.performed_updates += 1
        if self.reset_every > 0 and self.performed_updates % self.reset_every == 0:
            self._restore_source()
            self.resets += 1
        return outputs
