"""Putting a state_dict into an architecture: the whole model, or a featurizer + a head.

torchvision / timm models are first built on the ``meta`` device (no memory, no random
init) and receive the checkpoint's tensors with ``load_state_dict(assign=True)``; if
anything stays on ``meta`` (a non-persistent buffer) the model is rebuilt on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from protoview.core.checkpoint._heads import ProxyHint, head_from_state
from protoview.core.checkpoint._layout import Layout, detect_layout, remap_state, strip_prefix
from protoview.core.checkpoint._split import (
    SplitPlan,
    apply_split,
    find_split,
    get_submodule,
    replace_submodule,
)
from protoview.core.checkpoint.archs import ArchSpec
from protoview.errors import CheckpointError

_COMMON_HEAD_KEYS = ("fc.weight", "classifier.weight", "head.weight", "heads.head.weight", "classifier.fc.weight")


@dataclass
class FitReport:
    """How a state_dict fits a module: missing / unexpected keys and shape mismatches."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys (first: {', '.join(self.missing[:4])})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys (first: {', '.join(self.unexpected[:4])})")
        if self.mismatched:
            shown = "; ".join(f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:3])
            parts.append(f"{len(self.mismatched)} shape mismatches ({shown})")
        return ", ".join(parts)


def fit_report(module: nn.Module, state: dict[str, torch.Tensor]) -> FitReport:
    """Compare ``state`` with ``module.state_dict()`` (works on meta modules too)."""
    expected = module.state_dict()
    report = FitReport()
    report.missing = [k for k in expected if k not in state]
    report.unexpected = [k for k in state if k not in expected]
    report.mismatched = [
        (k, tuple(state[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    return report


@dataclass
class Assembled:
    """The result: a whole model with its split plan, or a featurizer and a head."""

    model: nn.Module | None = None
    plan: SplitPlan | None = None
    featurizer: nn.Module | None = None
    head: nn.Module | None = None
    notes: list[str] = field(default_factory=list)
    #: the architecture's name as resolved (``resnet18``, ``timm:vit_small_patch16_224``),
    #: set for an encoder (its probe checkpoint names it)
    arch_name: str = ""


def assemble(
    state: dict[str, torch.Tensor], spec: ArchSpec, hint: ProxyHint, split: str | None, where: str | os.PathLike[str]
) -> Assembled:
    """Load ``state`` into ``spec``'s architecture (see the module docstring)."""
    layout = detect_layout(state)
    if spec.is_library:
        result = _assemble(state, spec, layout, hint, split, where, on_meta=True)
        if not _has_meta(result):
            return result
    return _assemble(state, spec, layout, hint, split, where, on_meta=False)


def _assemble(
    state: dict[str, torch.Tensor], spec: ArchSpec, layout: Layout, hint: ProxyHint,
    split: str | None, where: str | os.PathLike[str], *, on_meta: bool,
) -> Assembled:
    if spec.is_library and layout.is_split:
        model = _build(spec, None, where, on_meta)
        return _featurizer_and_head(model, state, layout, spec, hint, split, where, on_meta)
    model = _build(spec, _head_rows(state, spec, split, where), where, on_meta)
    whole = _whole_model(model, state, spec, hint, split, where, on_meta)
    if isinstance(whole, Assembled):
        return whole
    problem = f"the weights do not fit architecture {spec.label}: {whole.describe()}"
    if layout.is_split:  # the user's builder may return only the featurizer
        parts = _featurizer_and_head(model, state, layout, spec, hint, split, where, on_meta, quiet=True)
        if isinstance(parts, Assembled):
            return parts
        if parts.size < whole.size:
            problem = f"the {layout.feature_prefix}* weights do not fit architecture {spec.label}: {parts.describe()}"
    raise CheckpointError(where, problem)


def _build(spec: ArchSpec, num_classes: int | None, where: str | os.PathLike[str], on_meta: bool) -> nn.Module:
    if on_meta:
        try:
            with torch.device("meta"):
                return spec.build(num_classes, where=where)
        except CheckpointError:  # some constructors compute on tensors: build on the CPU
            pass
    return spec.build(num_classes, where=where)


def _head_rows(state: dict[str, torch.Tensor], spec: ArchSpec, split: str | None, where: str | os.PathLike[str]) -> int | None:
    """The class count to build a library / user model with (rows of its linear head)."""
    keys = list(_COMMON_HEAD_KEYS)
    if spec.is_library:
        with torch.device("meta"):
            try:
                skeleton = spec.build(None, where=where)
            except Exception:  # noqa: BLE001 - fall back to the common names
                skeleton = None
        plan = find_split(skeleton, split) if skeleton is not None else None
        if plan is not None:
            keys.insert(0, f"{plan.head_path}.weight")
    for key in keys:
        prefix = key[: -len("weight")]
        weight = state.get(key)
        if weight is not None and weight.dim() == 2 and f"{prefix}sigma" not in state and weight.shape[0] > 0:
            return int(weight.shape[0])
    return None


def _whole_model(
    model: nn.Module, state: dict[str, torch.Tensor], spec: ArchSpec, hint: ProxyHint,
    split: str | None, where: str | os.PathLike[str], on_meta: bool,
) -> Assembled | FitReport:
    """Load the whole state into ``model`` (its head rebuilt from the weights when the head's
    keys or shapes differ), or the report of why the state does not fit."""
    notes: list[str] = []
    plan = find_split(model, split)
    if plan is not None and any(f"{plan.head_path}.{k}" in state for k in ("weight", "fc1.weight")):
        head_module = get_submodule(model, plan.head_path)
        prefix = f"{plan.head_path}."
        head_state = remap_state(state, strip_prefix(prefix))
        if head_module is not None and not fit_report(head_module, head_state).ok:
            head, notes = head_from_state(state, prefix, hint, where)
            replace_submodule(model, plan.head_path, head)
    report = fit_report(model, state)
    if not report.ok:
        return report
    _load(model, state, on_meta, where)
    return Assembled(model=model, plan=plan, notes=notes)


def _featurizer_and_head(
    model: nn.Module, state: dict[str, torch.Tensor], layout: Layout, spec: ArchSpec, hint: ProxyHint,
    split: str | None, where: str | os.PathLike[str], on_meta: bool, quiet: bool = False,
) -> Assembled | FitReport:
    """Featurizer = the architecture (minus its own head), head = built from the weights.

    When the featurizer weights do not fit: a CheckpointError, or (``quiet``) the report.
    """
    assert layout.feature_prefix is not None and layout.head_prefix is not None
    notes: list[str] = []
    plan = find_split(model, split)
    featurizer, removed = (apply_split(model, plan)[0], plan.head_path if plan.featurizer_path is None else None) if plan else (model, None)
    part = remap_state(state, strip_prefix(layout.feature_prefix))
    if removed is not None:
        dropped = [k for k in part if k.startswith(f"{removed}.")]
        if dropped:
            notes.append(f"ignored {len(dropped)} {layout.feature_prefix}{removed}.* keys (the architecture's own head)")
            part = remap_state(part, lambda k: None if k.startswith(f"{removed}.") and k in dropped else k)
    best: tuple[FitReport, dict[str, torch.Tensor]] | None = None
    for candidate in _prefix_variants(part):
        report = fit_report(featurizer, candidate)
        if best is None or report.size < best[0].size:
            best = (report, candidate)
    assert best is not None
    if not best[0].ok:
        if quiet:
            return best[0]
        raise CheckpointError(
            where, f"the {layout.feature_prefix}* weights do not fit architecture {spec.label}: {best[0].describe()}"
        )
    _load(featurizer, best[1], on_meta, where)
    head, head_notes = head_from_state(state, layout.head_prefix, hint, where)
    notes.append(f"featurizer from {layout.feature_prefix}* ({spec.label}), head from {layout.head_prefix}*")
    return Assembled(featurizer=featurizer, head=head, notes=notes + head_notes)


def _prefix_variants(part: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The keys as they are, and with a shared first component stripped (DomainBed's
    ``featurizer.network.*`` wrapper around a torchvision model)."""
    variants = [part]
    firsts = {k.split(".", 1)[0] for k in part}
    if len(firsts) == 1 and all("." in k for k in part):
        variants.append(remap_state(part, strip_prefix(f"{firsts.pop()}.")))
    return variants


def _load(module: nn.Module, state: dict[str, torch.Tensor], on_meta: bool, where: str | os.PathLike[str]) -> None:
    try:
        module.load_state_dict(state, strict=True, assign=on_meta)
    except Exception as exc:  # noqa: BLE001 - fit_report checked keys and shapes; hooks may still object
        raise CheckpointError(where, f"loading the weights failed: {' '.join(str(exc).split())[:300]}") from None


def _has_meta(result: Assembled) -> bool:
    modules = [m for m in (result.model, result.featurizer, result.head) if m is not None]
    return any(t.is_meta for m in modules for t in (*m.parameters(), *m.buffers()))
