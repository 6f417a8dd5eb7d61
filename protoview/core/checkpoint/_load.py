"""Load a classifier checkpoint of any supported format and split it into featurizer + head.

Formats: protoview checkpoints, plain state_dicts (nested / DDP-prefixed too) with
``arch``, DomainBed / TSD and PyCIL checkpoints, TorchScript archives, safetensors, and
(only with ``trust=True``) fully pickled modules. Files are read with
``torch.load(weights_only=True)`` first; nothing in a file can make protoview run Python
code unless the user passes ``trust=True`` (``--trust-checkpoint``).

The result is a :class:`~protoview.core.model.SplitModel` in eval mode whose ``info``
(:class:`~protoview.core.model.ModelInfo`) says what was found and which guesses were made.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from protoview.core.checkpoint._arch_choice import arch_spec, suggest_timm, timm_twin
from protoview.core.checkpoint._build import Assembled, assemble
from protoview.core.checkpoint._encoder_load import (
    assemble_encoder,
    encoder_parts,
    finish_encoder,
    plain_backbone,
)
from protoview.core.checkpoint._heads import ProxyHint, adopt_head
from protoview.core.checkpoint._layout import Contents, clean_state, first_non_finite, interpret
from protoview.core.checkpoint._preprocess import model_transform
from protoview.core.checkpoint._read import check_readable_file, file_sha256, read_checkpoint
from protoview.core.checkpoint._split import (
    DictOutputFeaturizer,
    apply_split,
    as_tensor_output,
    find_split,
    probe_input,
)
from protoview.core.heads import describe_head
from protoview.core.model import (
    FEATURE_SPACES,
    ModelInfo,
    SplitModel,
    TransformSpec,
)
from protoview.core.preprocess import resolve_preprocess
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import CheckpointError, ParameterError

__all__ = ["file_sha256", "inspect_checkpoint", "load_checkpoint"]

_CONVENTIONS = "featurizer/classifier, backbone/fc, convnet/fc, timm get_classifier, fc, classifier, heads.head, head"


def load_checkpoint(
    path: str | os.PathLike[str],
    arch: str | None = None,
    *,
    trust: bool = False,
    num_classes: int | None = None,
    nb_proxy: int | None = None,
    split: str | None = None,
    map_location: str | torch.device = "cpu",
    preprocess: str | TransformSpec | None = None,
    features: str = "backbone",
    dino_weights: str | None = None,
) -> SplitModel:
    """Load ``path`` as a :class:`SplitModel` (``logits = classifier(featurizer(x))``).

    A self-supervised encoder (SwAV, DeepCluster-v2, MoCo / PCL, SimSiam, DINO, or a plain
    backbone without its ``fc`` / ``head``; see :mod:`._encoders`) loads without a
    classifier: its ``classifier`` is a :class:`~protoview.core.heads.NoHead`, its
    projection head and prototypes are ``model.projection`` and ``info.encoder`` says what
    was found.

    Parameters
    ----------
    path: the checkpoint file.
    arch: architecture for weights-only files: a torchvision / timm name or
        ``"FILE.py:build_fn"`` (see :mod:`protoview.core.checkpoint.archs`); overrides a stored one.
    trust: allow unpickling Python code (only for files the user trusts).
    num_classes: the class count of the data (used to infer proxies per class of cosine
        heads that do not store it, e.g. PyCIL's).
    nb_proxy: proxies per class of a cosine head (PyCIL checkpoints do not store it).
    split: ``"featurizer_attr:head_attr"`` or the dotted path of the head, when the
        automatic split conventions do not fit.
    map_location: the device of the returned model.
    preprocess: ``--preprocess`` (text, see :mod:`protoview.core.preprocess`, or a
        TransformSpec): overrides the model's own preprocessing, which comes from the
        checkpoint, timm's config, torchvision's weights or a built-in architecture, in
        that order, else the default (``info.transform_source`` says which).
    features: an encoder's feature space, ``"backbone"`` (the representation its paper
        evaluates) or ``"projection"`` (the projection head's output, where its prototypes
        live; SwAV's, MoCo's and DINO's L2-normalised).
    dino_weights: a DINO checkpoint's network, ``"teacher"`` (default) or ``"student"``.

    Returns
    -------
    SplitModel in eval mode on ``map_location``, float32, its ``info`` filled.

    Raises
    ------
    CheckpointError: the file is missing, unreadable, unsafe (pickled code without
        ``trust``), does not fit the architecture, or has NaN / Inf weights, a head of 0
        classes or an unsupported head. ParameterError: bad ``num_classes`` / ``nb_proxy``
        / ``split`` / ``map_location`` / ``preprocess``.
    """
    device = _check_arguments(num_classes, nb_proxy, map_location)
    if isinstance(preprocess, str):
        from protoview.core.preprocess import parse_preprocess

        parse_preprocess(preprocess)  # a bad option is named before the file is read
    if features not in FEATURE_SPACES:
        raise ParameterError("--features", f"must be backbone or projection, got {features!r}")
    check_readable_file(path)
    sha256 = file_sha256(path)
    contents = interpret(read_checkpoint(path, trust=trust), path, dino_weights)
    hint = ProxyHint(contents.stored_nb_proxy, nb_proxy, num_classes)
    notes = list(contents.notes)
    parts = encoder_parts(contents, arch, path, notes)
    encoder = None
    if parts is not None:
        arch_label, assembled, own, own_source = assemble_encoder(contents, parts, arch, path, notes, sha256)
    else:
        arch_label, assembled, own, own_source = _assemble_contents(contents, arch, hint, split, path, notes, sha256)
    transform, source = resolve_preprocess(preprocess, own, own_source)
    probe = None if transform.is_none or source.endswith("default") else transform
    if assembled.head is None and assembled.featurizer is not None:  # an encoder
        model, encoder = finish_encoder(assembled.featurizer, parts, arch_label, probe, features, path, notes)
        encoder.arch_name = assembled.arch_name
    else:
        if features != "backbone":
            raise ParameterError("--features", f"projection: {os.fspath(path)} is a classifier, "
                                               "not a self-supervised encoder with a projection head")
        model = _finish(assembled, hint, probe, path, notes, weights_checked=contents.state is not None)
    _check_channels(model.featurizer, transform, source, arch_label)
    head_info = describe_head(model.classifier)
    info = ModelInfo(
        path=os.fspath(path),
        format=contents.format,
        arch=arch_label,
        head=head_info,
        param_count=sum(p.numel() for p in model.parameters()),
        sha256=sha256,
        transform=transform,
        class_names=contents.class_names,
        notes=notes,
        transform_source=source,
        nb_proxy_from=_nb_proxy_from(head_info.kind, hint, from_weights=assembled.model is None),
        trained_on=dict(contents.trained_on),
        class_order=contents.class_order,
        encoder=encoder,
    )
    if num_classes is not None and info.head.num_classes != num_classes:
        notes.append(f"the head has {info.head.num_classes} classes but num_classes={num_classes} was given")
    model.info = info
    return model.eval().to(device)


@torch.no_grad()
def _check_channels(featurizer: nn.Module, transform: TransformSpec, source: str, label: str) -> None:
    """Refuse a preprocessing whose channel count the model cannot take (named, one line)."""
    first = next((m for m in featurizer.modules() if isinstance(m, nn.Conv2d)), None)
    if transform.is_none or first is None or first.in_channels not in (1, 3) or first.in_channels == transform.channels:
        return
    assert transform.channels is not None
    try:
        featurizer(probe_input(featurizer, transform.input_size or (224, 224), transform.channels))
        return  # it runs: that convolution is not the input layer
    except Exception:  # noqa: BLE001 - it does not take these inputs: say why
        pass
    wanted = first.in_channels
    raise ParameterError(
        "--preprocess",
        f"{label} takes {wanted}-channel images (its first layer) but the preprocessing "
        f"(from: {source}) gives {transform.channels}; pass --preprocess with channels={wanted} and "
        f"a mean and std for {wanted} channel(s)",
        needs=("preprocess",),
    )


def _nb_proxy_from(kind: str, hint: ProxyHint, *, from_weights: bool) -> str:
    """How proxies per class were decided (``ModelInfo.nb_proxy_from``)."""
    if kind != "cosine":
        return ""
    if hint.stored is not None:
        return "stored"
    if hint.given is not None:
        return "option"
    if hint.num_classes is not None:
        return "inferred"
    return "assumed" if from_weights else "model"


def inspect_checkpoint(path: str | os.PathLike[str], arch: str | None = None, **kwargs: Any) -> ModelInfo:
    """Load ``path`` like :func:`load_checkpoint` (same arguments) and return its info."""
    model = load_checkpoint(path, arch, **kwargs)
    assert model.info is not None
    return model.info


def _check_arguments(num_classes: int | None, nb_proxy: int | None, map_location: str | torch.device) -> torch.device:
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ParameterError("--num-classes", f"must be a positive integer, got {num_classes!r}")
    if nb_proxy is not None and (not isinstance(nb_proxy, int) or nb_proxy < 1):
        raise ParameterError("--nb-proxy", f"must be a positive integer, got {nb_proxy!r}")
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError("--device", f"unknown device {map_location!r} ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("--device", f"{map_location!r} asked for, but CUDA is not available here")
    return device


# ---------------------------------------------------------------------------- assembly
def _assemble_contents(
    contents: Contents, arch: str | None, hint: ProxyHint, split: str | None,
    path: str | os.PathLike[str], notes: list[str], sha256: str = "",
) -> tuple[str, Assembled, TransformSpec | None, str]:
    """(arch label, assembled model, the model's own transform, its source) from a module
    or from weights + an arch (see :mod:`._preprocess` for the sources)."""
    if contents.module is not None:
        module = contents.module
        scripted = isinstance(module, torch.jit.ScriptModule)
        plan = find_split(module, split, scripted=scripted)
        if plan is not None:
            if arch:
                notes.append(f"--arch {arch} ignored: the file holds the whole model")
            own, source = model_transform(contents.transform, None, module)
            return _module_label(module), Assembled(model=module, plan=plan), own, source
        if not (scripted and arch):
            hint_text = "; or pass --arch to rebuild it from its weights" if scripted else ""
            raise _no_head_found(module, _module_label(module), path, hint_text)
        contents.state = clean_state(dict(module.state_dict()), notes, path)
        notes.append("TorchScript weights rebuilt into --arch")
    spec = arch_spec(contents, arch, path, notes)
    assert contents.state is not None
    try:
        assembled = assemble(contents.state, spec, hint, split, path)
    except CheckpointError as exc:  # the weights do not fit: another --arch / --split may
        headless = plain_backbone(contents, spec, split, path, notes, sha256)
        if headless is not None:
            return headless
        timm_spec = timm_twin(spec, path)
        if timm_spec is None:
            error = suggest_timm(exc, spec)
            raise type(error)(error.where, error.problem, needs=error.needs or ("arch", "split", "nb_proxy")) from None
        try:  # a bare name both libraries know: the weights may be timm's
            assembled = assemble(contents.state, timm_spec, hint, split, path)
        except CheckpointError:
            error = suggest_timm(exc, spec)
            raise type(error)(error.where, error.problem, needs=error.needs or ("arch", "split", "nb_proxy")) from None
        notes.append(f"the weights fit timm's {spec.target}, not torchvision's: loaded as "
                     f"timm:{spec.target} (pass --arch torchvision:{spec.target} to insist)")
        spec = timm_spec
    else:
        if timm_twin(spec, path) is not None:
            notes.append(
                f"{spec.target} is a torchvision and a timm name and these weights fit both: "
                f"loaded as torchvision's, with its preprocessing; timm's would get timm's "
                f"(pass --arch timm:{spec.target}, or torchvision:{spec.target} to say so)")
    if assembled.model is not None and assembled.plan is None:
        raise _no_head_found(assembled.model, spec.label, path)
    notes.extend(assembled.notes)
    own, source = model_transform(contents.transform, spec, assembled.model, sha256, notes)
    return spec.label, assembled, own, source


def _no_head_found(module: nn.Module, label: str, path: str | os.PathLike[str], extra: str = "") -> CheckpointError:
    children = ", ".join(n for n, _ in module.named_children()) or "none"
    return CheckpointError(
        path,
        f"cannot find the classifier head of {label} (looked for {_CONVENTIONS}; "
        f"top-level submodules: {children}); pass --split HEAD_ATTR{extra}",
        needs=("split", "arch") if extra else ("split",),
    )


def _module_label(module: nn.Module) -> str:
    if isinstance(module, torch.jit.ScriptModule):
        return f"{getattr(module, 'original_name', type(module).__name__)} (TorchScript)"
    return f"{type(module).__module__}.{type(module).__qualname__}"


# ---------------------------------------------------------------------------- final checks
_PROBE_SIZES = ((32, 32), (224, 224))  # tried in turn when the input size is unknown


@torch.no_grad()
def _finish(
    assembled: Assembled, hint: ProxyHint, transform: TransformSpec | None,
    path: str | os.PathLike[str], notes: list[str], *, weights_checked: bool,
) -> SplitModel:
    """Split, adopt the head, run a test input, check dims and logits; a float32 SplitModel."""
    reference: tuple[torch.Tensor, torch.Tensor] | None = None
    if assembled.model is not None:
        whole = _float32(assembled.model.eval(), notes)
        bad = None if weights_checked else first_non_finite(whole.state_dict().items())
        if bad is not None:
            raise CheckpointError(path, f"the weights contain NaN or Inf values (first bad tensor: {bad})")
        reference = _run_probe(whole, transform, "logits")
        assert assembled.plan is not None
        featurizer, head = apply_split(whole, assembled.plan)
        notes.append(f"split at {assembled.plan.how}")
        head_name = assembled.plan.head_path
    else:
        assert assembled.featurizer is not None and assembled.head is not None
        featurizer, head, head_name = assembled.featurizer.eval(), assembled.head, "head"
    head, head_notes = adopt_head(head, hint, path, head_name)
    notes.extend(head_notes)
    probe = reference[0] if reference is not None else None
    featurizer, features = _check_features(featurizer, head, probe, transform, path, notes)
    model = SplitModel(featurizer, head).eval()
    if reference is not None and features is not None:
        _compare_logits(head(features), reference[1], notes)
    return model


def _float32(module: nn.Module, notes: list[str]) -> nn.Module:
    tensors = [*module.parameters(), *module.buffers()]
    kinds = sorted({str(t.dtype) for t in tensors if t.is_floating_point() and t.dtype != torch.float32})
    if kinds:
        notes.append(f"weights stored as {', '.join(kinds)} were converted to float32")
        module = module.float()
    return module


def _probes(module: nn.Module, transform: TransformSpec | None) -> list[torch.Tensor]:
    """Test inputs to try, in order (one batch each)."""
    if transform is not None:
        return [probe_input(module, tuple(transform.size), transform.channels)]  # type: ignore[arg-type]
    first = probe_input(module, None, None)
    if first.dim() != 4:
        return [first]
    return [probe_input(module, size, first.shape[1]) for size in _PROBE_SIZES]


def _run_probe(module: nn.Module, transform: TransformSpec | None, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(input, output) of the first test input the module takes, or None."""
    for x in _probes(module, transform):
        try:
            out = as_tensor_output(module(x), key)
        except Exception:  # noqa: BLE001 - an input the model does not take: try the next
            continue
        return (x, out) if out is not None else None
    return None


def _check_features(
    featurizer: nn.Module, head: nn.Module, probe: torch.Tensor | None, transform: TransformSpec | None,
    path: str | os.PathLike[str], notes: list[str],
) -> tuple[nn.Module, torch.Tensor | None]:
    """Run a test input through the featurizer; its (N, D) output must match the head's D.

    Without a known input (``probe`` / ``transform``) several sizes are tried and the first
    whose features fit the head is kept (a net without global pooling fits one size only).
    Returns the featurizer (wrapped when it returns a dict) and its test features.
    """
    expected = describe_head(head).feature_dim
    first_problem: str | None = None
    failure = "no test input"
    for x in [probe] if probe is not None else _probes(featurizer, transform):
        try:
            out = featurizer(x)
        except Exception as exc:  # noqa: BLE001 - unknown input format: try the next, then report
            failure = f"{type(exc).__name__} on a test input of shape {list(x.shape)}"
            continue
        wrapped = featurizer
        if isinstance(out, dict) and isinstance(out.get("features"), torch.Tensor):
            wrapped, out = DictOutputFeaturizer(featurizer), out["features"]
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            first_problem = first_problem or f"the featurizer gives {shape} for a test input, not (N, D) features; pass --split"
        elif out.shape[1] != expected:
            first_problem = first_problem or (
                f"the featurizer gives {out.shape[1]}-d features but the head expects {expected}-d "
                f"for a test input of shape {list(x.shape)}; wrong --arch or --split"
                + (", or --preprocess (the input size)?" if transform is not None else "?")
            )
        else:
            if wrapped is not featurizer:
                notes.append("the featurizer returns a dict; its 'features' entry is used")
            return wrapped, out
    if first_problem is not None:
        raise CheckpointError(path, first_problem, needs=("arch", "split", "preprocess"))
    notes.append(f"the featurizer did not run ({failure}); the feature dimension was not checked")
    return featurizer, None


def _compare_logits(logits: torch.Tensor, reference: torch.Tensor, notes: list[str]) -> None:
    scale = float(reference.abs().max()) + 1e-6
    if logits.shape != reference.shape or not torch.allclose(logits, reference, rtol=1e-4, atol=1e-4 * scale):
        message = (
            "the split model's logits differ from the whole model's output on a test input; "
            "check --split (the model's forward may do more than classifier(featurizer(x)))"
        )
        notes.append(message)
        warnings.warn(message, ProtoviewWarning, stacklevel=4)
