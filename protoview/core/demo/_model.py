"""The demo's small CNN: a BatchNorm featurizer (8x8 grey images -> 64-d) and a head.

The featurizer is a plain ``nn.Sequential`` that reads top to bottom::

    conv3x3(1 -> 32)  - BatchNorm - ReLU        8x8
    conv3x3(32 -> 64) - BatchNorm - ReLU        8x8
    maxpool 2                                   4x4
    conv3x3(64 -> D)  - BatchNorm - ReLU        4x4
    global average pool, flatten                D features

The classifier is ``nn.Linear(D, C)`` (``head="linear"``) or PyCIL's
``CosineLinear(D, C, nb_proxy, to_reduce=True, sigma=sigma)`` (``head="cosine"``).
BatchNorm is there on purpose: test-time adaptation (TSD, Tent) adapts its statistics.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from protoview.core.demo._data import (
    DEMO_HEADS,
    DEMO_TRANSFORM,
)
from protoview.core.heads import CosineLinear
from protoview.core.model import SplitModel
from protoview.errors import ParameterError

DEMO_ARCH = "protoview-demo-cnn"


def build_demo_model(
    head: str = "linear",
    num_classes: int = 10,
    nb_proxy: int = 1,
    feature_dim: int = 64,
    sigma: bool = True,
) -> SplitModel:
    """Build the (untrained) demo CNN.

    Parameters
    ----------
    head:
        ``"linear"`` or ``"cosine"``.
    num_classes:
        C >= 1, the number of logits.
    nb_proxy:
        P >= 1, proxies (weight rows) per class; must be 1 for the linear head.
    feature_dim:
        D >= 1, the feature size (channels of the last convolution).
    sigma:
        cosine head only: whether it has PyCIL's learnable scale ``sigma``.

    Returns
    -------
    SplitModel
        ``featurizer``: ``(N, 1, 8, 8)`` float32 -> ``(N, D)``; ``classifier``:
        ``(N, D)`` -> ``(N, C)`` logits. State dict keys ``featurizer.*`` and
        ``classifier.weight`` + ``classifier.bias`` (linear) / ``classifier.sigma`` (cosine).

    Raises
    ------
    ParameterError
        For an unknown head or a count below 1 (``where`` names the parameter).
    """
    if head not in DEMO_HEADS:
        raise ParameterError(
            "head", f"unknown demo head {head!r}; valid heads: {', '.join(DEMO_HEADS)}"
        )
    check_count("num_classes", num_classes)
    check_count("nb_proxy", nb_proxy)
    check_count("feature_dim", feature_dim)
    if head == "linear" and nb_proxy != 1:
        raise ParameterError(
            "nb_proxy", f"the linear head has one proxy per class, got nb_proxy={nb_proxy}"
        )
    num_classes, nb_proxy, feature_dim = int(num_classes), int(nb_proxy), int(feature_dim)
    featurizer = demo_featurizer(feature_dim)
    if head == "linear":
        classifier: nn.Module = nn.Linear(feature_dim, num_classes)
    else:
        classifier = CosineLinear(
            feature_dim, num_classes, nb_proxy, to_reduce=True, sigma=bool(sigma)
        )
    return SplitModel(featurizer, classifier)


def demo_featurizer(feature_dim: int = 64) -> nn.Sequential:
    """The featurizer alone: ``(N, 1, 8, 8)`` float32 -> ``(N, feature_dim)`` (>= 0, after ReLU)."""
    check_count("feature_dim", feature_dim)
    feature_dim = int(feature_dim)
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, feature_dim, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(feature_dim),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ParameterError(name, f"must be an integer >= 1, got {value!r}")


def demo_inputs(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """Model input from demo images: ``(images - mean) / std`` with ``DEMO_TRANSFORM``.

    Parameters
    ----------
    images: (N, 1, 8, 8) float array in [0, 1].
    device: where the tensor goes (default CPU).

    Returns
    -------
    (N, 1, 8, 8) float32 tensor.
    """
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4 or array.shape[1:] != (1, 8, 8):
        raise ParameterError(
            "images", f"expected demo images of shape (N, 1, 8, 8), got {array.shape}"
        )
    mean, std = DEMO_TRANSFORM.mean[0], DEMO_TRANSFORM.std[0]
    return ((torch.from_numpy(array.copy()) - mean) / std).to(device or "cpu")

