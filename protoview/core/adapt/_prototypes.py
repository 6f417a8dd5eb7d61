"""What RMT and SANTA share, from their authors' toolkit (mariodoebler/test-time-adaptation
8b2ed63, ``methods/rmt.py`` and ``methods/santa.py``): class-wise source prototypes, the
projector, and the contrastive loss that pulls each test feature and its augmented view
towards the nearest source prototype (SupCon's, as the authors integrate it)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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
