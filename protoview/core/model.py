"""The model contract every loader produces: ``featurizer`` + ``classifier``.

A self-supervised encoder (SwAV, DeepCluster-v2, MoCo / PCL, SimSiam, DINO, a plain
backbone) has no classifier: its ``classifier`` is a :class:`~protoview.core.heads.NoHead`
(``(N, 0)`` logits) and ``has_head`` is False. Its projection head and prototypes, when
the checkpoint has them, are :attr:`SplitModel.projection` (:class:`ProjectionHead`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from protoview.core.heads import HeadInfo
from protoview.core.preprocess import TransformSpec

__all__ = ["EncoderInfo", "ModelInfo", "ProjectionHead", "SplitModel", "TransformSpec"]

#: the spaces an encoder's features can be taken in (``--features``)
FEATURE_SPACES = ("backbone", "projection")


@dataclass
class EncoderInfo:
    """What a self-supervised checkpoint holds besides its backbone.

    method: ``"SwAV"``, ``"DeepCluster-v2"``, ``"MoCo/PCL"``, ``"SimSiam"``, ``"DINO"`` or
    ``"backbone"`` (weights without a head); backbone: the architecture's label;
    feature_dim: the backbone's D; projection: (input, output) widths of the projection
    head, or None; prototypes: the row count of each prototype set (SwAV: one, DeepCluster-v2:
    several, DINO: the last layer's); used / ignored: which parts of the file were used
    and which not (MoCo's ``encoder_k`` and queue, SimSiam's predictor, DINO's student);
    features: the space the features are taken in (``backbone`` or ``projection``).
    """

    method: str
    backbone: str
    feature_dim: int = 0
    projection: tuple[int, int] | None = None
    prototypes: tuple[int, ...] = ()
    used: str = ""
    ignored: tuple[str, ...] = ()
    features: str = "backbone"
    #: the architecture's name as resolved (a checkpoint may name it; "" for a user file)
    arch_name: str = ""

    def summary(self) -> str:
        """One line: ``"SwAV: resnet50 backbone, projection head 2048→128, 3000 prototypes"``."""
        parts = [f"{self.backbone} backbone ({self.feature_dim}-d)" if self.feature_dim
                 else f"{self.backbone} backbone"]
        if self.projection is not None:
            parts.append(f"projection head {self.projection[0]}→{self.projection[1]}")
        if len(self.prototypes) == 1:
            parts.append(f"{self.prototypes[0]} prototypes")
        elif self.prototypes:
            sets = " + ".join(str(k) for k in self.prototypes)
            parts.append(f"{len(self.prototypes)} prototype sets ({sets}; set 0 shown)")
        return f"{self.method}: " + ", ".join(parts)

    def lines(self) -> list[str]:
        out = [self.summary()]
        if self.used:
            out.append(self.used)
        if self.ignored:
            out.append("ignored: " + ", ".join(self.ignored))
        where = ("the projection head's output" if self.features == "projection"
                 else "the backbone's output")
        out.append(f"features: {self.features} ({where})")
        return out



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
    #: a self-supervised encoder's parts (None for a classifier)
    encoder: EncoderInfo | None = None

    def describe(self) -> str:
        lines = [
            f"file:        {self.path}",
            f"format:      {self.format}",
            f"arch:        {self.arch}",
            f"head:        {self.head.describe()}",
        ]
        if self.head.kind != "none":
            lines += [
                f"classes:     {self.head.num_classes}",
                f"proxies:     {self.head.num_proxies} ({self.head.nb_proxy} per class)",
            ]
        if self.encoder is not None:
            lines += [f"encoder:     {line}" for line in self.encoder.lines()]
        lines += [f"parameters:  {self.param_count:,}", f"sha256:      {self.sha256}"]
        if self.transform is not None:
            t = self.transform
            if t.input_size is not None:
                h, w = t.input_size
                lines.append(f"input:       {t.channels}x{h}x{w}, mean {t.mean}, std {t.std}")
            source = f" (from: {self.transform_source})" if self.transform_source else ""
            lines.append(f"preprocess:  {t.describe()}{source}")
        lines += [f"note:        {n}" for n in self.notes]
        return "\n".join(lines)


class ProjectionHead(nn.Module):
    """A self-supervised encoder's projection head and prototypes, as its authors run them.

    ``forward(h)`` maps backbone features ``(N, D)`` to the projection ``(N, P)``:
    ``mlp(h)``, L2-normalised when ``normalize`` (SwAV's ``forward_head`` with
    ``l2norm``, DINO's ``DINOHead``, MoCo's ``q``). ``scores(z)`` gives the prototype
    scores ``(N, K)`` = ``z @ prototypes[index].T``: SwAV's ``self.prototypes(x)``, DINO's
    ``last_layer(x)`` (its weight-normalised matrix, computed once as torch's
    ``weight_norm`` computes it: ``g * v / ||v||`` per row).

    mlp: the projection head (None: the identity); prototypes: the prototype matrices
    ``(K_i, P)``, one per set (none for MoCo / SimSiam).
    """

    def __init__(self, mlp: nn.Module | None, normalize: bool,
                 prototypes: list[torch.Tensor] | tuple[torch.Tensor, ...] = ()) -> None:
        super().__init__()
        self.mlp = mlp
        self.normalize = bool(normalize)
        self.prototype_sets = len(prototypes)
        for i, weight in enumerate(prototypes):
            self.register_buffer(f"prototypes{i}", weight.detach().float().clone())

    def prototypes(self, index: int = 0) -> torch.Tensor:
        """The ``index``-th prototype matrix ``(K, P)``."""
        return getattr(self, f"prototypes{index}")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = h if self.mlp is None else self.mlp(h)
        return torch.nn.functional.normalize(z, dim=1, p=2) if self.normalize else z

    def scores(self, z: torch.Tensor, index: int = 0) -> torch.Tensor:
        """``(N, K)`` prototype scores of projections ``z`` (N, P)."""
        return z @ self.prototypes(index).T


class ProjectedFeaturizer(nn.Module):
    """``--features projection``: the backbone followed by the projection head."""

    def __init__(self, backbone: nn.Module, projection: ProjectionHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return self.projection(h.flatten(1) if h.ndim > 2 else h)


class SplitModel(nn.Module):
    """A classifier split in two: ``logits = classifier(featurizer(x))``.

    featurizer: maps a batch of inputs to ``(N, D)`` features.
    classifier: maps ``(N, D)`` features to ``(N, C)`` logits (a tensor, never a dict); a
        :class:`~protoview.core.heads.NoHead` (``C = 0``) for an encoder.
    projection: an encoder's projection head and prototypes (None: none).
    feature_space: ``"backbone"`` (the featurizer is the backbone; ``projection`` maps its
        features further) or ``"projection"`` (the featurizer ends with ``projection``: the
        features are already in the prototypes' space).
    """

    def __init__(self, featurizer: nn.Module, classifier: nn.Module, info: ModelInfo | None = None,
                 projection: ProjectionHead | None = None, feature_space: str = "backbone"):
        super().__init__()
        self.featurizer = featurizer
        self.classifier = classifier
        self.info = info
        self.projection = projection
        self.feature_space = feature_space

    @property
    def has_head(self) -> bool:
        """False for an encoder without a classifier (its logits have 0 columns)."""
        from protoview.core.heads import NoHead

        return not isinstance(self.classifier, NoHead)

    @property
    def has_prototypes(self) -> bool:
        return self.projection is not None and self.projection.prototype_sets > 0

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Features (N, D) in the prototypes' space: themselves when they are already
        (``feature_space == "projection"``), else through the projection head."""
        if self.projection is None:
            raise ValueError("the model has no projection head")
        return features if self.feature_space == "projection" else self.projection(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.featurizer(x))
