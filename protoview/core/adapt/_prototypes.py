"""What RMT and SANTA share, from their authors' toolkit (mariodoebler/test-time-adaptation
8b2ed63, ``methods/rmt.py`` and ``methods/santa.py``): class-wise source prototypes, the
projector, and the contrastive loss that pulls each test feature and its augmented view
towards the nearest source prototype (SupCon's, as the authors integrate it)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.adapt.base import Adapter, kept_flags
from protoview.errors import ParameterError

#: The authors' cap on the source features read for the prototypes.
PROTOTYPE_SAMPLES = 100_000


@torch.no_grad()
def source_prototypes(model: nn.Module, loader: Any, device: torch.device, method: str) -> torch.Tensor:
    """(C, 1, D) mean source feature of each class (the model as configured by the caller),
    over the loader's batches until more than :data:`PROTOTYPE_SAMPLES` are read.

    Raises ParameterError (``--source-data``) for a class without source samples (whose
    prototype is a mean of nothing, NaN, in the released code)."""
    features, labels, seen = [], [], 0
    for data in loader:
        x, y = data[0].to(device, torch.float32), data[1]
        z = model.featurizer(x)
        features.append(z.view(z.shape[:2]).cpu())
        labels.append(y.cpu().to(torch.float32))
        seen += len(z)
        if seen > PROTOTYPE_SAMPLES:
            break
    features_src, labels_src = torch.cat(features), torch.cat(labels)
    num_classes = int(model.classifier(features_src[:1].to(device)).shape[1])
    rows = []
    for i in range(num_classes):
        mask = labels_src == i
        if not bool(mask.any()):
            raise ParameterError("--source-data", f"the source data have no sample of class {i}: "
                                                  f"{method}'s source prototypes need every class")
        rows.append(features_src[mask].mean(dim=0, keepdim=True))
    return torch.cat(rows).to(device).unsqueeze(1)


def projector(channels: int, dim: int, device: torch.device) -> nn.Module:
    """The authors' projector, Linear-ReLU-Linear (random initialisation: torch's generator)."""
    return nn.Sequential(nn.Linear(channels, dim), nn.ReLU(), nn.Linear(dim, dim)).to(device)


def prototype_contrast(
    prototypes: torch.Tensor, features_test: torch.Tensor, features_aug_test: torch.Tensor,
    projection: nn.Module, temperature: float,
) -> torch.Tensor:
    """The contrastive loss of the authors' ``loss_calculation``: each test feature's nearest
    source prototype (cosine), the feature and its augmented view form a positive set."""
    n, dim = features_test.shape[0], features_test.shape[1]
    with torch.no_grad():
        dist = F.cosine_similarity(
            x1=prototypes.repeat(1, n, 1),
            x2=features_test.view(1, n, dim).repeat(prototypes.shape[0], 1, 1),
            dim=-1,
        )
        _, indices = dist.topk(1, largest=True, dim=0)
        indices = indices.squeeze(0)
    features = torch.cat([
        prototypes[indices], features_test.view(n, 1, dim), features_aug_test.view(n, 1, dim),
    ], dim=1)  # fmt: skip
    return supcon_loss(features, projection, temperature)


def supcon_loss(features: torch.Tensor, projection: nn.Module, temperature: float) -> torch.Tensor:
    """SupCon's loss as the authors integrate it (``contrast_mode="all"``, no labels)."""
    device = features.device
    batch_size = features.shape[0]
    mask = torch.eye(batch_size, dtype=torch.float32).to(device)
    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    contrast_feature = projection(contrast_feature)
    contrast_feature = F.normalize(contrast_feature, p=2, dim=1)
    anchor_feature, anchor_count = contrast_feature, contrast_count
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()
    mask = mask.repeat(anchor_count, contrast_count)
    logits_mask = torch.scatter(
        torch.ones_like(mask), 1, torch.arange(batch_size * anchor_count).view(-1, 1).to(device), 0,
    )  # fmt: skip
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    loss = -(temperature / temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size).mean()


class SourcePrototypeAdapter(Adapter):
    """What RMT and SANTA share around the functions above: labelled source data give the
    class-wise prototypes and the projector (in the authors' order: prototypes, then the
    projector's random initialisation, then its parameter group in the optimiser), a
    subclass's :meth:`_after_source` (RMT's warm-up) and the saved state the authors' reset
    returns to; each step: the prototypes are required, an episodic reset loads that state
    (``reference``: the saved optimizer state itself, as the released reset does; see
    :mod:`~protoview.core.adapt.rmt`), then ``steps`` updates of :meth:`_update`.

    A subclass sets ``self.lr``, ``projection_dim``, ``temperature``, ``steps``,
    ``episodic``, ``variant`` and ``self._params`` / ``optimizer`` in its ``__init__``, and
    implements :meth:`_configure` and :meth:`_update`.
    """

    def _start_source_state(self) -> None:
        self.projector: nn.Module | None = None
        self.prototypes: torch.Tensor | None = None
        self._ready: dict[str, Any] | None = None

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self._params, lr=self.lr, betas=(0.9, 0.999), weight_decay=0.0)

    def _configure(self) -> None:  # pragma: no cover - each method's own
        raise NotImplementedError

    def _update(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - each method's own
        raise NotImplementedError

    def _before_source(self, loader: Any) -> None:
        """Before the prototypes are read (RMT opens its replay iterator here)."""

    def _after_source(self, loader: Any) -> None:
        """After the projector joined the optimiser (RMT's warm-up)."""

    def _ready_state(self) -> dict[str, Any]:
        """The state a reset returns to (a subclass adds its own models)."""
        assert self.projector is not None
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "projector": copy.deepcopy(self.projector.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def _load_ready(self, ready: dict[str, Any]) -> None:
        """Put back what :meth:`_ready_state` saved, but the optimiser (a subclass adds)."""
        self.model.load_state_dict(ready["model"])
        assert self.projector is not None
        self.projector.load_state_dict(ready["projector"])

    def use_source(self, loader: Any) -> None:
        """Source prototypes and the projector, then :meth:`_after_source`."""
        self._before_source(loader)
        with kept_flags(self.model):
            self._configure()
            self.prototypes = source_prototypes(self.model, loader, self.device, self.method.upper())
        self.projector = projector(self.prototypes.shape[-1], self.projection_dim, self.device)
        self.optimizer.add_param_group(
            {"params": self.projector.parameters(), "lr": self.optimizer.param_groups[0]["lr"]}
        )
        self._after_source(loader)
        self._ready = self._ready_state()

    def _restore_source(self, shared_optimizer_state: bool = False) -> None:
        """The authors' reset: back to the state saved after the source data were taken (the
        source model before). ``shared_optimizer_state``: load the saved optimizer state
        itself, as the released episodic reset does."""
        if self._ready is None:
            super()._restore_source()
            return
        self._load_ready(self._ready)
        saved = self._ready["optimizer"]
        self.optimizer.load_state_dict(saved if shared_optimizer_state else copy.deepcopy(saved))

    def _extra_state(self) -> dict[str, Any]:
        return {"projector": None if self.projector is None else self.projector.state_dict()}

    def _load_extra_state(self, extra: dict[str, Any] | None) -> None:
        assert extra is not None
        if self.projector is not None and extra["projector"] is not None:
            self.projector.load_state_dict(extra["projector"])

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.prototypes is None:
            raise self.missing_source_data()
        if self.episodic:
            self._restore_source(shared_optimizer_state=self.variant == "reference")
        self._configure()
        outputs = x.new_empty(0)
        for _ in range(self.steps):
            outputs = self._update(x)
        return outputs.detach()

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of CoTTA's augmentations for the batch, on its pixels."""
        from protoview.core.adapt.augment import tta_transforms

        return self.pixels.apply(tta_transforms(int(x.shape[-2])), x)
