"""Assembling a self-supervised encoder or a plain backbone (weights without a head) from a
checkpoint: the backbone its weights fit, its projection head and prototypes, the
SplitModel whose classifier is ``NoHead`` (see :mod:`._encoders` for the layouts)."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from protoview.core.checkpoint._arch_choice import arch_spec, timm_twin
from protoview.core.checkpoint._build import Assembled
from protoview.core.checkpoint._encoders import (
    EncoderParts,
    backbone_dim,
    backbone_problem,
    check_features_option,
    check_projection_input,
    encoder_info,
    headless_backbone,
    mlp_widths,
    projection_head,
    split_encoder,
)
from protoview.core.checkpoint._layout import Contents
from protoview.core.checkpoint._preprocess import model_transform
from protoview.core.checkpoint.archs import ArchSpec
from protoview.core.heads import NoHead
from protoview.core.model import EncoderInfo, ProjectedFeaturizer, SplitModel, TransformSpec
from protoview.errors import CheckpointError


def plain_backbone(
    contents: Contents, spec: ArchSpec, split: str | None, path: str | os.PathLike[str],
    notes: list[str], sha256: str,
) -> tuple[str, Assembled, TransformSpec | None, str] | None:
    """A plain backbone (a model's weights without its head, as MoCo's and SimSiam's
    ``main_lincls.py`` strip them), when the weights fit ``spec`` (or its timm twin) minus
    its head (found by the split conventions) exactly; None otherwise."""
    if split or contents.state is None:
        return None
    return fitting_backbone(contents, contents.state, spec, path, notes, sha256, probing=True)


def fitting_backbone(
    contents: Contents, state: dict[str, Any], spec: ArchSpec, path: str | os.PathLike[str],
    notes: list[str], sha256: str, *, probing: bool = False,
) -> tuple[str, Assembled, TransformSpec | None, str] | None:
    """The backbone of ``spec`` (or its timm twin) that ``state`` fits exactly, with its
    preprocessing; None when neither fits. An architecture that cannot be built is skipped
    when ``probing`` (a guess: the classifier's own error then speaks) or when it is the
    twin; else its error is raised."""
    for candidate in (spec, timm_twin(spec, path)):
        if candidate is None:
            continue
        try:
            backbone = headless_backbone(state, candidate, path)
        except CheckpointError:
            if probing or candidate is not spec:
                continue
            raise
        if backbone is not None:
            own, source = model_transform(contents.transform, candidate, backbone, sha256, notes)
            return candidate.label, Assembled(featurizer=backbone, arch_name=file_nameable(candidate)), own, source
    return None


def file_nameable(spec: ArchSpec) -> str:
    """``spec``'s name when a checkpoint file may name it (not a user file), else "";
    torchvision's and timm's with their library's prefix (a bare name may be both)."""
    if spec.kind == "file":
        return ""
    return f"{spec.kind}:{spec.target}" if spec.kind in ("torchvision", "timm") else spec.name


def encoder_parts(contents: Contents, arch: str | None, path: str | os.PathLike[str],
                   notes: list[str]) -> EncoderParts | None:
    """The self-supervised layout of the file's state_dict (see :mod:`._encoders`), its
    architecture taken from the file when ``--arch`` does not say; None for a classifier."""
    if contents.state is None:
        return None
    parts = split_encoder(contents.state, path, contents.encoder_method)
    if parts is None:
        return None
    if not contents.format.startswith(parts.method):
        contents.format = f"{parts.method} checkpoint ({contents.format})"
    if contents.encoder_used:
        parts.used = contents.encoder_used
        parts.ignored = [*contents.encoder_ignored, *parts.ignored]
    if not arch and not contents.arch and contents.file_arch is not None:
        contents.arch, contents.arch_note = contents.file_arch
    return parts


def assemble_encoder(
    contents: Contents, parts: EncoderParts, arch: str | None,
    path: str | os.PathLike[str], notes: list[str], sha256: str,
) -> tuple[str, Assembled, TransformSpec | None, str]:
    """The backbone of a self-supervised checkpoint, built from ``--arch`` (or the file's)."""
    spec = arch_spec(contents, arch, path, notes)
    found = fitting_backbone(contents, parts.backbone, spec, path, notes, sha256)
    if found is not None:
        return found
    problem = backbone_problem(parts.backbone, spec, path)
    raise CheckpointError(path, f"the {parts.method} backbone's weights do not fit architecture "
                                f"{spec.label} without its head: {problem}", needs=("arch",))


def finish_encoder(
    backbone: nn.Module, parts: EncoderParts | None, label: str,
    transform: TransformSpec | None, features: str, path: str | os.PathLike[str], notes: list[str],
) -> tuple[SplitModel, EncoderInfo]:
    """The encoder as a SplitModel: featurizer = the backbone (``--features backbone``) or
    the backbone + projection head (``projection``), classifier = NoHead."""
    size = None if transform is None else (transform.input_size or transform.size)
    channels = None if transform is None else transform.channels
    dim = backbone_dim(backbone, size, channels, path)  # type: ignore[arg-type]
    head = projection_head(parts, path) if parts is not None else None
    method = parts.method if parts is not None else "backbone"
    check_projection_input(head, dim, method, path)
    check_features_option(features, head, path)
    if features == "projection":
        assert head is not None and head.mlp is not None
        featurizer: nn.Module = ProjectedFeaturizer(backbone, head)
        out = mlp_widths(head.mlp)[1]
    else:
        featurizer, out = backbone, dim
    model = SplitModel(featurizer, NoHead(out), projection=head, feature_space=features).eval()
    info = encoder_info(parts, label, dim, head, features)
    if features == "backbone" and info.prototypes and info.projection is not None:
        notes.append(f"its {info.prototypes[0]} prototypes live in the projection head's "
                     f"{info.projection[1]}-d output space, not in the backbone's: they are not "
                     "placed on the map of backbone features (--features projection shows them)")
    return model, info
