"""Small random models and batches for the adaptation oracle tests (EATA, SAR, LAME)."""

from __future__ import annotations

import torch
from torch import nn

from protoview.core.heads import CosineLinear
from protoview.core.model import SplitModel

DIM = 16


def tiny_model(
    classes: int = 10, head: str = "linear", sharp: float = 1.0, seed: int = 0, norm: str = "bn"
) -> SplitModel:
    """A CNN with BatchNorm2d (``norm="bn"``) or GroupNorm + LayerNorm (``"gn"``); ``sharp``
    scales the head so that some predictions are confident (entropy filters keep some)."""
    torch.manual_seed(seed)
    if norm == "bn":
        n1, n2 = nn.BatchNorm2d(8), nn.BatchNorm2d(DIM)
    else:
        n1, n2 = nn.GroupNorm(2, 8), nn.GroupNorm(4, DIM)
    featurizer = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), n1, nn.ReLU(),
        nn.Conv2d(8, DIM, 3, padding=1), n2, nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    if norm != "bn":
        featurizer.append(nn.LayerNorm(DIM))
    if head == "linear":
        classifier = nn.Linear(DIM, classes)
        with torch.no_grad():
            classifier.weight.mul_(sharp)
    else:
        classifier = CosineLinear(DIM, classes, nb_proxy=2, to_reduce=True)
        classifier.sigma.data.fill_(8.0 * sharp)
    model = SplitModel(featurizer, classifier)
    with torch.no_grad():  # source running statistics unlike the test batches' ones
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def without_norm_layers(model: SplitModel) -> SplitModel:
    """``model`` with its BatchNorm / GroupNorm / LayerNorm layers replaced by identities."""
    norms = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
    for i, m in enumerate(model.featurizer):
        if isinstance(m, norms):
            model.featurizer[i] = nn.Identity()
    return model


def batches(n: int, size: int = 32, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 3, 6, 6, generator=g) * 2 + 0.5 for _ in range(n)]


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def moved(model: nn.Module, source: nn.Module) -> float:
    return max(
        (p - s).abs().max().item()
        for p, s in zip(model.parameters(), source.parameters(), strict=True)
    )
