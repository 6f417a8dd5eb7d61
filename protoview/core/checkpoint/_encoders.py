"""Self-supervised encoders as their authors save them: the backbone, its projection head and
its prototypes, without a classifier.

Layouts (after the DDP ``module.`` prefix is stripped), each read in its authors' code:

- SwAV / DeepCluster-v2 (facebookresearch/swav ``src/resnet50.py``, saved by
  ``main_swav.py`` / ``main_deepclusterv2.py`` as ``{"epoch", "state_dict", "optimizer"}``):
  the backbone under torchvision's names, ``projection_head`` (a Linear, or
  Linear-BN-ReLU-Linear) and ``prototypes`` (a bias-free Linear, or ``MultiPrototypes``:
  ``prototypes.prototypes{i}``);
- MoCo / PCL (salesforce/PCL ``pcl/builder.py``, ``main_pcl.py``: ``{"epoch", "arch",
  "state_dict", "optimizer"}``): ``encoder_q`` (a torchvision model whose ``fc`` is the
  projection: a Linear, or Linear-ReLU-Linear with ``--mlp``), ``encoder_k``, ``queue``;
- SimSiam (facebookresearch/simsiam ``simsiam/builder.py``): ``encoder`` (``fc`` = the
  3-layer projector, Linear-BN-ReLU-Linear-BN-ReLU-Linear-BN) and ``predictor``;
- DINO (facebookresearch/dino ``main_dino.py``: ``{"student", "teacher", "optimizer",
  "epoch", "args", "dino_loss"}``): each a ``MultiCropWrapper`` state, ``backbone.*``
  (torchvision or DINO's ViT, whose names are timm's) and ``head.*`` (``DINOHead``: ``mlp``
  with GELU, then L2-normalisation, then the weight-normalised ``last_layer``, whose rows
  are its prototypes);
- a plain backbone: a torchvision / timm model's weights without its ``fc`` / ``head``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from protoview.core.checkpoint._build import Assembled, _has_meta, fit_report
from protoview.core.checkpoint._build import _load as load_weights
from protoview.core.checkpoint._layout import remap_state, strip_prefix
from protoview.core.checkpoint._split import apply_split, find_split
from protoview.core.checkpoint.archs import ArchSpec
from protoview.core.model import EncoderInfo, ProjectionHead
from protoview.errors import CheckpointError, ParameterError


@dataclass
class EncoderParts:
    """A self-supervised checkpoint taken apart (see the module docstring).

    backbone: the backbone's weights under the architecture's names; projection: the
    projection head's weights (keys relative to it; empty: none); activation: between its
    layers (``"relu"``, DINO's ``"gelu"``); normalize: the projection is L2-normalised;
    prototypes: the prototype matrices (K_i, P), effective weights.
    """

    method: str
    backbone: dict[str, torch.Tensor]
    projection: dict[str, torch.Tensor] = field(default_factory=dict)
    activation: str = "relu"
    normalize: bool = True
    prototypes: list[torch.Tensor] = field(default_factory=list)
    used: str = ""
    ignored: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- layouts
def split_encoder(state: dict[str, torch.Tensor], where: str | os.PathLike[str],
                  method_hint: str = "") -> EncoderParts | None:
    """The encoder layout of a cleaned state_dict, or None when it is none of them."""
    keys = list(state)
    if any(k.startswith("encoder_q.") for k in keys):
        return _moco(state)
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("predictor.") for k in keys):
        return _simsiam(state)
    if any(k.startswith("head.last_layer.") for k in keys) and any(k.startswith("backbone.") for k in keys):
        return _dino(state, where)
    if method_hint == "DINO" and all(k.startswith("backbone.") for k in keys):
        return EncoderParts("DINO", remap_state(state, strip_prefix("backbone.")))
    if any(k.startswith(("prototypes.", "projection_head.")) for k in keys):
        return _swav(state, where)
    return None


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return remap_state(state, strip_prefix(prefix))


def _without(state: dict[str, torch.Tensor], *prefixes: str) -> dict[str, torch.Tensor]:
    return remap_state(state, lambda k: None if k.startswith(prefixes) else k)


def _moco(state: dict[str, torch.Tensor]) -> EncoderParts:
    query = _part(state, "encoder_q.")
    ignored = [f"encoder_k ({sum(k.startswith('encoder_k.') for k in state)} tensors)"]
    ignored += [k for k in state if not k.startswith(("encoder_q.", "encoder_k."))]
    return EncoderParts("MoCo/PCL", _without(query, "fc."), _part(query, "fc."), "relu", True,
                        used="MoCo/PCL: encoder_q used (its fc is the projection head, "
                             "L2-normalised as the query); the prototypes are k-means of "
                             "each epoch, not saved: protoview cluster computes them",
                        ignored=ignored)


def _simsiam(state: dict[str, torch.Tensor]) -> EncoderParts:
    encoder = _part(state, "encoder.")
    count = sum(k.startswith("predictor.") for k in state)
    return EncoderParts("SimSiam", _without(encoder, "fc."), _part(encoder, "fc."), "relu", False,
                        used="SimSiam: encoder used (its fc is the 3-layer projector)",
                        ignored=[f"predictor ({count} tensors)"])


def _swav(state: dict[str, torch.Tensor], where: str | os.PathLike[str]) -> EncoderParts:
    protos = _part(state, "prototypes.")
    if "weight" in protos:
        sets = [protos["weight"]]
    else:
        index = sorted(int(k[len("prototypes"):].split(".")[0]) for k in protos
                       if k.startswith("prototypes") and k.endswith(".weight"))
        sets = [protos[f"prototypes{i}.weight"] for i in index]
        if protos and not sets:
            raise CheckpointError(where, f"its prototypes.* weights are neither SwAV's Linear nor "
                                         f"MultiPrototypes (keys: {', '.join(list(protos)[:4])})")
    for weight in sets:
        if weight.dim() != 2:
            raise CheckpointError(where, f"its prototypes have shape {list(weight.shape)}, not (K, P)")
    method = "DeepCluster-v2" if len(sets) > 1 else "SwAV"
    used = ("SwAV/DeepCluster-v2 layout: backbone, projection_head, "
            + ("MultiPrototypes (prototypes.prototypes{i})" if len(sets) > 1 else "prototypes"))
    return EncoderParts(method, _without(state, "prototypes.", "projection_head."),
                        _part(state, "projection_head."), "relu", True, sets, used=used)


def _dino(state: dict[str, torch.Tensor], where: str | os.PathLike[str]) -> EncoderParts:
    head = _part(state, "head.")
    last = _part(head, "last_layer.")
    g = last.get("weight_g", last.get("parametrizations.weight.original0"))
    v = last.get("weight_v", last.get("parametrizations.weight.original1"))
    if v is None and "weight" in last:  # a plain Linear last layer
        weight = last["weight"]
    elif v is None or g is None or v.dim() != 2:
        raise CheckpointError(where, f"its head.last_layer is not DINO's weight-normalised "
                                     f"Linear (keys: {', '.join(last) or 'none'})")
    else:
        weight = _weight_normed(g, v)
    return EncoderParts("DINO", _part(state, "backbone."), _part(head, "mlp."), "gelu", True,
                        [weight.detach()], used="DINO")


@torch.no_grad()
def _weight_normed(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The effective weight ``g * v / ||v||`` (norm of each row), computed by torch's own
    weight normalisation (what DINO's ``nn.utils.weight_norm`` last layer computes)."""
    layer = nn.Linear(v.shape[1], v.shape[0], bias=False)
    layer = nn.utils.parametrizations.weight_norm(layer, dim=0)
    original = layer.parametrizations.weight
    original.original0.copy_(g.reshape(-1, 1).float())
    original.original1.copy_(v.float())
    return layer.weight.detach().clone()


# ---------------------------------------------------------------------------- building
def build_mlp(part: dict[str, torch.Tensor], activation: str, where: str | os.PathLike[str],
              name: str) -> nn.Module:
    """The projection head from its weights: a Linear (``weight`` / ``bias``), or a
    Sequential whose numbered entries are Linear (2-D weight) or BatchNorm1d (running
    statistics, affine or not) and whose gaps are the activation."""
    if "weight" in part and part["weight"].dim() == 2:
        layer = nn.Linear(part["weight"].shape[1], part["weight"].shape[0], bias="bias" in part)
        _load_part(layer, part, where, name)
        return layer
    try:
        index = sorted({int(k.split(".", 1)[0]) for k in part})
    except ValueError:
        raise CheckpointError(where, f"its {name} is not a Linear or a Sequential (keys: "
                                     f"{', '.join(list(part)[:4])})") from None
    layers: list[nn.Module] = []
    for i in range(index[-1] + 1):
        own = {k.split(".", 1)[1]: t for k, t in part.items() if k.split(".", 1)[0] == str(i)}
        if not own:
            layers.append(nn.GELU() if activation == "gelu" else nn.ReLU(inplace=True))
        elif "running_mean" in own:
            layers.append(nn.BatchNorm1d(own["running_mean"].shape[0], affine="weight" in own))
        elif own.get("weight") is not None and own["weight"].dim() == 2:
            w = own["weight"]
            layers.append(nn.Linear(w.shape[1], w.shape[0], bias="bias" in own))
        else:
            raise CheckpointError(where, f"layer {i} of its {name} is neither a Linear nor a "
                                         f"BatchNorm1d (keys: {', '.join(own)})")
    mlp = nn.Sequential(*layers)
    _load_part(mlp, part, where, name)
    return mlp


def _load_part(module: nn.Module, part: dict[str, torch.Tensor], where: str | os.PathLike[str],
               name: str) -> None:
    try:
        module.load_state_dict(part, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(where, f"its {name} weights do not load: "
                                     f"{' '.join(str(exc).split())[:200]}") from None


def mlp_widths(mlp: nn.Module) -> tuple[int, int]:
    """(input, output) widths of a projection head built by :func:`build_mlp`."""
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    return linears[0].in_features, linears[-1].out_features


def headless_backbone(state: dict[str, torch.Tensor], spec: ArchSpec,
                      where: str | os.PathLike[str]) -> nn.Module | None:
    """``spec``'s architecture without its head (torchvision's ``fc`` replaced by the
    identity, timm's ``reset_classifier(0)``), loaded with ``state``; None when the weights
    do not fit it exactly (every key, every shape)."""
    for on_meta in (True, False) if spec.is_library else (False,):
        try:
            if on_meta:
                with torch.device("meta"):
                    model = spec.build(None, where=where)
            else:
                model = spec.build(None, where=where)
        except CheckpointError:
            if on_meta:
                continue
            raise
        plan = find_split(model, None)
        backbone = apply_split(model, plan)[0] if plan is not None else model
        if not fit_report(backbone, state).ok:
            return None
        load_weights(backbone, state, on_meta, where)
        if not _has_meta(Assembled(featurizer=backbone)):
            return backbone.eval()
    return None


def backbone_problem(state: dict[str, torch.Tensor], spec: ArchSpec,
                     where: str | os.PathLike[str]) -> str:
    """Why ``state`` does not fit ``spec`` without its head (for the error line)."""
    with torch.device("meta"):
        try:
            model = spec.build(None, where=where)
        except CheckpointError:
            model = None
    if model is None:
        model = spec.build(None, where=where)
    plan = find_split(model, None)
    backbone = apply_split(model, plan)[0] if plan is not None else model
    return fit_report(backbone, state).describe()


def projection_head(parts: EncoderParts, where: str | os.PathLike[str]) -> ProjectionHead | None:
    """The :class:`ProjectionHead` of ``parts`` (None: neither projection nor prototypes),
    checked: each prototype matrix's width equals the projection's output width."""
    if not parts.projection and not parts.prototypes:
        return None
    mlp = build_mlp(parts.projection, parts.activation, where, "projection head") if parts.projection else None
    if mlp is not None:
        out = mlp_widths(mlp)[1]
        for i, weight in enumerate(parts.prototypes):
            if weight.shape[1] != out:
                which = f"prototype set {i}" if len(parts.prototypes) > 1 else "prototypes"
                raise CheckpointError(
                    where, f"its {which} ({weight.shape[0]} x {weight.shape[1]}) do not fit its "
                           f"projection head, whose output is {out}-d: the {parts.method} "
                           "checkpoint is inconsistent")
    return ProjectionHead(mlp.eval() if mlp is not None else None, parts.normalize,
                          parts.prototypes)


def encoder_info(parts: EncoderParts | None, label: str, feature_dim: int,
                 head: ProjectionHead | None, features: str) -> EncoderInfo:
    """What :func:`protoview.core.model.ModelInfo` says of the encoder."""
    if parts is None:
        return EncoderInfo("backbone", label, feature_dim, used="the weights have no "
                           "classifier head: opened as an encoder (features only)",
                           features=features)
    widths = None
    if head is not None and head.mlp is not None:
        widths = mlp_widths(head.mlp)
    protos = tuple(int(head.prototypes(i).shape[0]) for i in range(head.prototype_sets)) if head else ()
    return EncoderInfo(parts.method, label, feature_dim, widths, protos, parts.used,
                       tuple(parts.ignored), features)


@torch.no_grad()
def backbone_dim(backbone: nn.Module, size: tuple[int, int] | None, channels: int | None,
                 where: str | os.PathLike[str]) -> int:
    """The backbone's feature width D from a test input (the transform's size, else 224 and 32)."""
    from protoview.core.checkpoint._split import probe_input

    failure = "no test input"
    for tried in [size] if size is not None else [(224, 224), (32, 32)]:
        x = probe_input(backbone, tried, channels)
        try:
            out = backbone(x)
        except Exception as exc:  # noqa: BLE001 - an input it does not take: try the next
            failure = f"{type(exc).__name__} on a test input of shape {list(x.shape)}"
            continue
        if isinstance(out, torch.Tensor) and out.dim() >= 2:
            return int(out.flatten(1).shape[1])
        failure = f"it gives {type(out).__name__}, not (N, D) features"
    raise CheckpointError(where, f"the backbone does not run ({failure}); check --arch and "
                                 "--preprocess (the input size)", needs=("arch", "preprocess"))


def check_projection_input(head: ProjectionHead | None, dim: int, method: str,
                           where: str | os.PathLike[str]) -> None:
    if head is not None and head.mlp is not None and mlp_widths(head.mlp)[0] != dim:
        raise CheckpointError(where, f"its {method} projection head takes "
                                     f"{mlp_widths(head.mlp)[0]}-d features but the backbone "
                                     f"gives {dim}-d: wrong --arch?", needs=("arch",))


def check_features_option(features: str, head: ProjectionHead | None,
                          where: str | os.PathLike[str]) -> None:
    """``--features projection`` needs a projection head (or the prototypes' own space)."""
    if features not in ("backbone", "projection"):
        raise ParameterError("--features", f"must be backbone or projection, got {features!r}")
    if features == "projection" and (head is None or head.mlp is None):
        raise ParameterError("--features", f"projection: {os.fspath(where)} has no projection "
                                           "head (a plain backbone); use --features backbone")
