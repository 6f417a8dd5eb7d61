"""Gradient baselines as the TSD repository's ``code/unsupervise_adapt.py`` builds them.

That script (github.com/SakurajimaMaiii/TSD) puts the whole model in train mode once
(``algorithm.train()``), so BatchNorm normalises with each batch's statistics and its
running statistics follow the test data with the layers' momentum; it builds
``torch.optim.Adam(params, lr=args.lr)`` (betas 0.9/0.999, no weight decay, lr 1e-4 by
default) over one parameter group: every parameter (PL), the classifier's (PLC) or the
featurizer's (SHOT-IM); and each ``forward`` takes ``steps`` updates on the batch
(``zero_grad``, ``backward``, ``step``), re-forwarding each time and returning the
outputs of the last forward; ``episodic`` restores the source weights and a fresh
optimizer before each batch.

:class:`ScriptAdapter` is that loop; a subclass gives the parameter group (``update``)
and the loss. The prediction mode (``predict`` / ``features``) is TSD's: eval mode with
BatchNorm on the batch's statistics, running statistics untouched.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from protoview.core.adapt._checks import method_parameters
from protoview.core.adapt.base import Adapter, train_only, use_batch_statistics
from protoview.core.adapt.params import EPISODIC, LR, STEPS, Param, checked, with_default

#: The script's learning rate (``--lr``, default 1e-4).
SCRIPT_LR = with_default(LR, 1e-4, help="Adam's learning rate (the TSD script's 1e-4)")


class ScriptAdapter(Adapter):
    """Adam over one parameter group, whole model in train mode, ``steps`` updates a batch."""

    update: ClassVar[str] = "all"
    params: ClassVar[tuple[Param, ...]] = (SCRIPT_LR, STEPS, EPISODIC)
    batch_statistics = True  # train mode: BatchNorm on the batch's statistics (pl, plc, shot_im)

    def __init__(
        self, model: nn.Module, lr: float = 1e-4, steps: int = 1, episodic: bool = False
    ) -> None:
        super().__init__(model)
        self.lr, self.steps, self.episodic = checked(
            self.params, lr=lr, steps=steps, episodic=episodic
        )
        named = method_parameters(self.model, self.update, self.method)
        self.updated_parameter_names = tuple(name for name, _ in named)
        self._params = [p for _, p in named]
        self.optimizer = self._build_optimizer()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr)

    def _loss(self, outputs: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        """The loss of one forward's logits (N, C), and how many samples entered it."""
        raise NotImplementedError

    def _update(self, loss: torch.Tensor, selected: int | None) -> None:
        """As the released code: ``zero_grad``, ``backward``, ``step``, whatever the loss."""
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.episodic:
            self._restore_source()
        self.model.train()
        train_only(self.model, self._params)
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self.model(x)
            loss, selected = self._loss(outputs)
            self.last_loss, self.last_selected = float(loss.detach()), selected
            self._update(loss, selected)
        return outputs.detach()

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_batch_statistics(self.model)
        z = self.model.featurizer(x)
        return z, self.model.classifier(z)
