"""The model contract every loader produces: ``featurizer`` + ``classifier``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from protoview.core.heads import HeadInfo
from protoview.core.preprocess import TransformSpec

__all__ = ["ModelInfo", "SplitModel", "TransformSpec"]


@dataclass
class ModelInfo:
    """What was found in a checkpoint (printed by ``protoview info``)."""

    path: str
    format: str
    arch: str
    head: HeadInfo
    param_count: int
    sha256: str
    transform: TransformSpec | None = None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    #: where ``transform`` came from: option, checkpoint, timm config, torchvision weights,
    #: built-in, default (see :mod:`protoview.core.preprocess`)
    transform_source: str = ""
    #: how proxies per class were decided: stored, option, inferred, assumed ("" for linear heads)
    nb_proxy_from: str = ""
    #: what the checkpoint says about its training data: ``dataset`` (e.g. DomainBed's
    #: ``"PACS"``) and ``test_envs`` (the held-out domains), when it says
    trained_on: dict[str, Any] = field(default_factory=dict)
    #: the order of the head's classes when it is not the data's: ``"pycil"`` (PyCIL's seeded
    #: order, not applied), or the order applied (``"PyCIL's, seed 1993"``); "" for none known
    class_order: str = ""

    def describe(self) -> str:
        lines = [
            f"file:        {self.path}",
            f"format:      {self.format}",
            f"arch:        {self.arch}",
            f"head:        {self.head.describe()}",
            f"classes:     {self.head.num_classes}",
            f"proxies:     {self.head.num_proxies} ({self.head.nb_proxy} per class)",
            f"parameters:  {self.param_count:,}",
            f"sha256:      {self.sha256}",
        ]
        if self.transform is not None:
            t = self.transform
            if t.input_size is not None:
                h, w = t.input_size
                lines.append(f"input:       {t.channels}x{h}x{w}, mean {t.mean}, std {t.std}")
            source = f" (from: {self.transform_source})" if self.transform_source else ""
            lines.append(f"preprocess:  {t.describe()}{source}")
        lines += [f"note:        {n}" for n in self.notes]
        return "\n".join(lines)


class SplitModel(nn.Module):
    """A classifier split in two: ``logits = classifier(featurizer(x))``.

    featurizer: maps a batch of inputs to ``(N, D)`` features.
    classifier: maps ``(N, D)`` features to ``(N, C)`` logits (a tensor, never a dict).
    """

    def __init__(self, featurizer: nn.Module, classifier: nn.Module, info: ModelInfo | None = None):
        super().__init__()
        self.featurizer = featurizer
        self.classifier = classifier
        self.info = info

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.featurizer(x))
