"""What a loaded checkpoint holds: its format, its state_dict (cleaned) or a whole module.

Recognised payloads: protoview checkpoints (``{"protoview": {...}, "state_dict": ...}``),
PyCIL (``{"tasks", "model_state_dict"}`` / ``{"tasks", "convnet", "fc"}``), DomainBed / TSD
(``{"args", "model_dict"}``), nested dicts (``state_dict`` / ``model_state_dict`` /
``model`` / ``model_dict``), flat state_dicts, safetensors (optionally with protoview
metadata), TorchScript modules and (trusted) pickled modules.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from protoview.core.checkpoint._dino_file import dino_arch, is_dino_payload, pick_dino
from protoview.core.checkpoint._read import RawCheckpoint
from protoview.core.model import TransformSpec
from protoview.core.preprocess import check_spec, parse_preprocess
from protoview.errors import CheckpointError, ParameterError

PROTOVIEW_FORMAT = "protoview-checkpoint"
PROTOVIEW_VERSION = 1
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "model_dict")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile
# (featurizer prefix, head prefixes in order of preference)
_SPLIT_LAYOUTS = (
    ("featurizer.", ("classifier.fc.", "classifier.")),
    ("convnet.", ("fc.",)),
    ("backbone.", ("fc.", "head.", "classifier.")),
)


@dataclass
class Contents:
    """A checkpoint interpreted (see the module docstring)."""

    format: str
    state: dict[str, torch.Tensor] | None = None
    module: nn.Module | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    arch_note: str | None = None
    transform: TransformSpec | None = None
    class_names: list[str] | None = None
    stored_nb_proxy: int | None = None
    notes: list[str] = field(default_factory=list)
    trained_on: dict[str, Any] = field(default_factory=dict)
    class_order: str = ""  # "pycil": the head's classes follow PyCIL's seeded order
    #: what the file says of a self-supervised encoder: the method (``"DINO"``), which of
    #: its networks was used, what was ignored, and the architecture it names (``arch``
    #: of MoCo / PCL / SimSiam saves, DINO's ``args``), adopted only for an encoder layout
    encoder_method: str = ""
    encoder_used: str = ""
    encoder_ignored: list[str] = field(default_factory=list)
    file_arch: tuple[str, str] | None = None


@dataclass(frozen=True)
class Layout:
    """How a state_dict is organised: ``flat`` (one model) or featurizer + head prefixes."""

    feature_prefix: str | None = None
    head_prefix: str | None = None

    @property
    def is_split(self) -> bool:
        return self.feature_prefix is not None


def interpret(raw: RawCheckpoint, where: str | os.PathLike[str], dino_weights: str | None = None) -> Contents:
    """Recognise the payload's format and extract a clean float32 state_dict or a module.

    dino_weights: which network of a DINO checkpoint (``teacher``, ``student``, None: the
    teacher when there is one)."""
    payload = raw.payload
    if raw.container == "TorchScript":
        contents = Contents("TorchScript archive", module=payload)
    elif raw.container == "safetensors":
        contents = Contents("safetensors", state=payload)
        meta = (raw.metadata or {}).get("protoview")
        if meta is not None:
            contents.format = "safetensors with protoview metadata"
            _apply_protoview_meta(contents, _parse_json_meta(meta, where), where)
    else:
        contents = _interpret_object(payload, where, raw.container, dino_weights=dino_weights)
        if raw.container == "torch.save (legacy)":
            contents.format += " (legacy torch.save)"
    contents.notes[:0] = raw.notes
    if contents.state is not None:
        contents.state = clean_state(contents.state, contents.notes, where)
    return contents


def _interpret_object(payload: Any, where: str | os.PathLike[str], container: str, depth: int = 0,
                      dino_weights: str | None = None) -> Contents:
    if isinstance(payload, nn.Module):
        return Contents("pickled module (trusted)", module=payload)
    if not isinstance(payload, dict):
        raise CheckpointError(where, f"holds a {type(payload).__name__}, not a state_dict or a model")
    if isinstance(payload.get("protoview"), dict):
        contents = Contents("protoview checkpoint", state=_tensor_dict(payload.get("state_dict"), "state_dict", where))
        _apply_protoview_meta(contents, payload["protoview"], where)
        return contents
    if "tasks" in payload and ("model_state_dict" in payload or {"convnet", "fc"} <= payload.keys()):
        return _pycil(payload, where)
    if "model_dict" in payload and ("args" in payload or "model_hparams" in payload):
        return _domainbed(payload, where)
    if depth == 0 and is_dino_payload(payload):
        return _dino(payload, where, dino_weights)
    for key in _NESTED_KEYS:
        if isinstance(payload.get(key), dict) and not payload[key]:
            raise CheckpointError(where, f"the {key!r} entry is empty (no weights)")
        if key in payload and isinstance(payload[key], (dict, nn.Module)) and depth < 3:
            inner = _interpret_object(payload[key], where, container, depth + 1)
            inner.notes.append(f"weights taken from the checkpoint's {key!r} entry")
            if isinstance(payload.get("arch"), str) and inner.file_arch is None:
                # the ImageNet example's save (MoCo, PCL, SimSiam): {"epoch", "arch", ...}
                arch = payload["arch"]
                inner.file_arch = (arch, f"arch {arch} from the checkpoint's 'arch' entry")
            return inner
    tensors = remap_state(payload, str)
    if not tensors:
        keys = ", ".join(repr(k) for k in list(payload)[:8]) or "none"
        raise CheckpointError(
            where, f"holds no state_dict: a dict with keys {keys}; expected tensors or one of {', '.join(_NESTED_KEYS)}"
        )
    contents = Contents("state_dict", state=tensors)
    skipped = [str(k) for k in payload if k not in tensors]
    if skipped:
        contents.notes.append(f"ignored non-tensor entries: {', '.join(skipped[:5])}")
    return contents


def _dino(payload: dict[str, Any], where: str | os.PathLike[str], choice: str | None) -> Contents:
    chosen, used, ignored = pick_dino(payload, where, choice)
    contents = Contents("DINO checkpoint", state=_tensor_dict(payload[chosen], chosen, where))
    contents.encoder_method, contents.encoder_used = "DINO", used
    contents.encoder_ignored = ignored
    contents.file_arch = dino_arch(payload.get("args"))
    return contents


def _tensor_dict(value: Any, name: str, where: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not any(isinstance(v, torch.Tensor) for v in value.values()):
        raise CheckpointError(where, f"the {name!r} entry is not a state_dict (a dict of tensors)")
    return remap_state(value, str)


def _pycil(payload: dict[str, Any], where: str | os.PathLike[str]) -> Contents:
    if "model_state_dict" in payload:
        state = _tensor_dict(payload["model_state_dict"], "model_state_dict", where)
    else:
        convnet = remap_state(_tensor_dict(payload["convnet"], "convnet", where), add_prefix("convnet."))
        fc = remap_state(_tensor_dict(payload["fc"], "fc", where), add_prefix("fc."))
        state = OrderedDict([*convnet.items(), *fc.items()])
        metadata = [*getattr(convnet, "_metadata", {}).items(), *getattr(fc, "_metadata", {}).items()]
        if metadata:
            state._metadata = OrderedDict(metadata)  # type: ignore[attr-defined]
    contents = Contents(f"PyCIL checkpoint (task {payload['tasks']})", state=state,
                        class_order="pycil")
    contents.notes.append(
        "PyCIL numbers classes in its own order (the configs in its exps/ set shuffle=True, seed 1993): head "
        "class k is the dataset's class order[k] of that permutation, not class k (--class-order pycil "
        "puts the logits in the data's order: the default when the head holds every class of the data)"
    )
    return contents


def _domainbed(payload: dict[str, Any], where: str | os.PathLike[str]) -> Contents:
    contents = Contents("DomainBed/TSD checkpoint", state=_tensor_dict(payload["model_dict"], "model_dict", where))
    hparams = payload.get("model_hparams")
    args = payload.get("args") if isinstance(payload.get("args"), dict) else {}
    if isinstance(hparams, dict) and hparams.get("resnet50_augmix") is True and _bottleneck(contents.state):
        # DomainBed's networks.ResNet (b93c22a): resnet50_augmix replaces the network by timm's
        # resnet50.ram_in1k whatever resnet18 says (its default since 2024: resnet18=False,
        # resnet50_augmix=True); the weights (bottleneck blocks) agree
        contents.arch = "timm:resnet50.ram_in1k"
        contents.arch_note = (
            f"arch timm's resnet50.ram_in1k taken from the checkpoint's model_hparams "
            f"(resnet50_augmix=True, which DomainBed builds whatever resnet18="
            f"{hparams.get('resnet18')} says; the weights are a ResNet-50's)")
    elif isinstance(hparams, dict) and isinstance(hparams.get("resnet18"), bool):
        contents.arch = "resnet18" if hparams["resnet18"] else "resnet50"
        contents.arch_note = f"arch {contents.arch} taken from the checkpoint's model_hparams (resnet18={hparams['resnet18']})"
    elif args.get("net") in ("resnet18", "resnet50"):  # TSD's train.py: --net
        contents.arch = str(args["net"])
        contents.arch_note = f"arch {contents.arch} taken from the checkpoint's args (net={args['net']})"
    if isinstance(args.get("dataset"), str):
        contents.trained_on["dataset"] = args["dataset"]
    envs = args.get("test_envs")
    if isinstance(envs, (list, tuple)) and all(isinstance(e, int) and not isinstance(e, bool) for e in envs):
        contents.trained_on["test_envs"] = [int(e) for e in envs]
    shape = payload.get("model_input_shape")
    if isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(s, int) for s in shape):
        channels, height, width = shape
        if channels == 3:  # DomainBed resizes to (H, W) and normalises with ImageNet's statistics
            contents.transform = TransformSpec((height, width), 3, name="domainbed" if (height, width) == (224, 224) else "")
    elif shape is None:
        # TSD's train.py saves only args and model_dict; its test loader
        # (code/datautil/imgdata/util.py image_test, as DomainBed's) resizes to 224x224 with
        # ImageNet's statistics, except for its 'dg5' digits: 32x32, mean = std = 0.5
        if args.get("dataset") == "dg5":
            contents.transform = TransformSpec((32, 32), 3, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        else:
            contents.transform = TransformSpec((224, 224), 3, name="domainbed")
    return contents


def _bottleneck(state: dict[str, Any] | None) -> bool:
    """Whether a ResNet's weights have bottleneck blocks (ResNet-50 and deeper: ``conv3``)."""
    return any(k.endswith("layer1.0.conv3.weight") for k in (state or {}))


def _parse_json_meta(text: str, where: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(where, f"its 'protoview' metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(where, "its 'protoview' metadata is not a JSON object")
    return meta


def _apply_protoview_meta(contents: Contents, meta: dict[str, Any], where: str | os.PathLike[str]) -> None:
    if meta.get("format", PROTOVIEW_FORMAT) != PROTOVIEW_FORMAT:
        raise CheckpointError(where, f"unknown protoview format {meta.get('format')!r}")
    version = meta.get("version", PROTOVIEW_VERSION)
    if not isinstance(version, int) or version > PROTOVIEW_VERSION:
        raise CheckpointError(where, f"protoview checkpoint version {version!r} is newer than this protoview reads ({PROTOVIEW_VERSION}); update protoview")
    contents.format += f" v{version}"
    contents.arch = meta.get("arch")
    kwargs = meta.get("arch_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(where, "its 'arch_kwargs' is not a dict")
    contents.arch_kwargs = dict(kwargs)
    if isinstance(kwargs.get("nb_proxy"), int):
        contents.stored_nb_proxy = kwargs["nb_proxy"]
    contents.transform = _transform(meta.get("transform"), where)
    names = meta.get("class_names")
    if names is not None:
        contents.class_names = [str(n) for n in names]


def _transform(spec: Any, where: str | os.PathLike[str]) -> TransformSpec | None:
    """A protoview checkpoint's ``transform``: a ``--preprocess`` text (``"cifar10"``,
    ``"none"``, ``"size=32,mean=0.5,std=0.25"``) or a dict with ``size``, ``channels``,
    ``mean``, ``std`` and optionally ``resize``, ``crop``, ``interpolation``, ``scale``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            option = parse_preprocess(spec)
            if option is None or not option.complete:
                raise ParameterError("transform", "needs a preset or size, mean and std")
            return option.apply(TransformSpec())
        except ParameterError as exc:
            raise CheckpointError(where, f"its 'transform' entry {spec!r} is not valid ({exc.problem})") from None
    try:
        size = tuple(int(s) for s in spec["size"])
        channels = int(spec["channels"])
        mean = tuple(float(m) for m in spec["mean"])
        std = tuple(float(s) for s in spec["std"])
        crop = spec.get("crop")
        extra = {
            "resize": str(spec.get("resize", "exact")),
            "crop": None if crop is None else tuple(int(c) for c in crop),
            "interpolation": str(spec.get("interpolation", "bilinear")),
            "scale": None if spec.get("scale") is None else float(spec["scale"]),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(where, f"its 'transform' entry is malformed ({type(exc).__name__}: {exc})") from None
    if len(size) != 2 or channels not in (1, 3) or len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise CheckpointError(where, f"its 'transform' entry is inconsistent: {spec!r}")
    try:
        return check_spec(TransformSpec(size, channels, mean, std, **extra), "transform")  # type: ignore[arg-type]
    except ParameterError as exc:
        raise CheckpointError(where, f"its 'transform' entry is inconsistent: {exc.problem}") from None


# ---------------------------------------------------------------------------- key mapping
def remap_state(
    state: dict[str, torch.Tensor],
    key_fn: Callable[[str], str | None] = lambda k: k,
    value_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename (``key_fn`` -> new key, or None to drop) and optionally convert entries.

    Keeps torch's ``_metadata`` (per-module versions that some ``load_state_dict`` hooks
    need, e.g. MNASNet's), renaming its module paths the same way.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        new_key = key_fn(key)
        if new_key is not None and isinstance(value, torch.Tensor):
            out[new_key] = value_fn(value) if value_fn is not None else value
    metadata = getattr(state, "_metadata", None)
    if isinstance(metadata, dict):
        new_meta: OrderedDict[str, Any] = OrderedDict()
        for path, value in metadata.items():
            new_path = key_fn(f"{path}.")
            if new_path is not None:
                new_meta[new_path[:-1] if new_path.endswith(".") else new_path] = value
        out._metadata = new_meta  # type: ignore[attr-defined]
    return out


def strip_prefix(prefix: str) -> Callable[[str], str | None]:
    """Key function: keep keys under ``prefix``, without it; drop the others."""
    return lambda key: key[len(prefix):] if key.startswith(prefix) else None


def add_prefix(prefix: str) -> Callable[[str], str | None]:
    return lambda key: prefix + key if key != "." else prefix


# ---------------------------------------------------------------------------- cleaning
def clean_state(state: dict[str, torch.Tensor], notes: list[str], where: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes, drop DomainBed's ``network.*`` duplicates, make floats float32,
    and refuse NaN / Inf weights (naming the first bad tensor)."""
    if not state:
        raise CheckpointError(where, "the state_dict is empty")
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = remap_state(state, lambda k, p=prefix: k[len(p):] if k.startswith(p) else k)
            notes.append(f"stripped the {prefix!r} prefix from every key")
    state = _drop_network_duplicates(state, notes, where)
    converted = sorted({str(v.dtype) for v in state.values() if v.is_floating_point() and v.dtype != torch.float32})
    if converted:
        state = remap_state(state, value_fn=lambda v: v.float() if v.is_floating_point() else v)
        notes.append(f"weights stored as {', '.join(converted)} were converted to float32")
    bad = first_non_finite(state.items())
    if bad is not None:
        raise CheckpointError(where, f"the weights contain NaN or Inf values (first bad tensor: {bad})")
    return state


def first_non_finite(named: Any) -> str | None:
    """Name of the first floating tensor holding NaN or Inf, or None."""
    for name, tensor in named:
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        # one cheap reduction first (NaN / Inf propagate); the exact test only if it trips
        if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
            return str(name)
    return None


def _drop_network_duplicates(state: dict[str, torch.Tensor], notes: list[str], where: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """DomainBed saves ``network = Sequential(featurizer, classifier)`` twice over."""
    dupes = {k for k in state if k.startswith(("network.0.", "network.1."))}
    if not dupes:
        return state
    twins = {k: str(_network_twin(k)) for k in dupes}
    if not any(t in state for t in twins.values()):
        notes.append("renamed network.0.* / network.1.* to featurizer.* / classifier.*")
        return remap_state(state, lambda k: _network_twin(k) or k)
    for key in sorted(dupes):
        twin = twins[key]
        if twin not in state and twin.startswith("classifier.") and f"classifier.fc.{twin[len('classifier.'):]}" in state:
            twin = f"classifier.fc.{twin[len('classifier.'):]}"
        if twin not in state:
            raise CheckpointError(where, f"{key} has no twin {twin}: the network.* and featurizer/classifier weights do not match")
        if state[twin].shape != state[key].shape or not torch.equal(state[twin], state[key]):
            raise CheckpointError(where, f"{key} differs from {twin}: the network.* copy and the featurizer/classifier weights disagree")
    notes.append(f"dropped {len(dupes)} duplicate network.* keys (equal to featurizer.* / classifier.*)")
    return remap_state(state, lambda k: None if k in dupes or k.startswith("network.") and k.endswith(".") else k)


def _network_twin(key: str) -> str | None:
    """``network.0.X`` -> ``featurizer.X``, ``network.1.X`` -> ``classifier.X``, else None."""
    for index, name in (("0", "featurizer."), ("1", "classifier.")):
        if key.startswith(f"network.{index}."):
            return name + key[len(f"network.{index}."):]
    return None


def detect_layout(state: dict[str, torch.Tensor]) -> Layout:
    """Featurizer + head prefixes when every key lies under one of them, else flat."""
    for feature_prefix, head_prefixes in _SPLIT_LAYOUTS:
        for head_prefix in head_prefixes:
            if not any(k.startswith(head_prefix) for k in state):
                continue
            if any(k.startswith(feature_prefix) for k in state) and all(
                k.startswith((feature_prefix, head_prefix)) for k in state
            ):
                return Layout(feature_prefix, head_prefix)
    return Layout()
