"""Which architecture a checkpoint's weights are for: ``--arch``, the file's own record, a
built-in named by the key layout (PyCIL's CIFAR ResNets, RobustBench's WideResNet), and
the timm twin of a bare torchvision name (``resnet18`` is both libraries')."""

from __future__ import annotations

import os

import torch

from protoview.core.checkpoint._layout import Contents
from protoview.core.checkpoint.archs import ArchSpec, resolve_arch
from protoview.errors import CheckpointError


def timm_twin(spec: ArchSpec, path: str | os.PathLike[str]) -> ArchSpec | None:
    """timm's architecture of the same name, for a bare torchvision name timm knows too
    (``--arch resnet18``, not ``torchvision:resnet18``); None otherwise."""
    from protoview.core.checkpoint.archs import _timm_has

    if spec.kind != "torchvision" or spec.name.startswith("torchvision:") or not _timm_has(spec.target):
        return None
    return resolve_arch(f"timm:{spec.target}", where=path)


def suggest_timm(exc: CheckpointError, spec: ArchSpec) -> CheckpointError:
    """A torchvision name the weights do not fit: say so when timm knows the name too."""
    from protoview.core.checkpoint.archs import _timm_has

    if spec.kind != "torchvision" or spec.name.startswith("torchvision:") or not _timm_has(spec.target):
        return exc
    return CheckpointError(
        exc.where,
        f"{exc.problem} (as torchvision's {spec.target}); timm also has an architecture "
        f"{spec.target!r}: if these are timm weights, pass --arch timm:{spec.target}",
        needs=("arch",),
    )


def arch_spec(contents: Contents, arch: str | None, path: str | os.PathLike[str], notes: list[str]) -> ArchSpec:
    if arch:
        if contents.arch and contents.arch != arch:
            notes.append(f"architecture {arch} from --arch used instead of the stored {contents.arch}")
        kwargs = contents.arch_kwargs if arch == contents.arch else None
        return resolve_arch(arch, where=path, kwargs=kwargs)
    if contents.arch:
        if contents.arch_note:
            notes.append(contents.arch_note)
        return resolve_arch(contents.arch, where=path, from_file=True, kwargs=contents.arch_kwargs)
    what = {"state_dict": "a plain state_dict", "safetensors": "a safetensors file"}.get(
        contents.format.split(" (")[0], f"a {contents.format}"
    )
    known = layout_arch(contents.state or {})
    if known:
        raise CheckpointError(
            path,
            f"{what} does not say which architecture it is for; its keys are {known[1]}: pass "
            f"--arch {known[0]}",
            needs=("arch",),
        )
    raise CheckpointError(
        path,
        f"{what} does not say which architecture it is for; pass --arch (a torchvision name like "
        "resnet18, a timm name, pycil:resnet32, robustbench:Standard, or FILE.py:build_fn)",
        needs=("arch",),
    )


def layout_arch(state: dict[str, torch.Tensor]) -> tuple[str, str] | None:
    """(--arch value, what the keys are) when a state_dict's key layout names a built-in
    architecture: PyCIL's CIFAR ResNets (``stage_1.{i}.conv_a``, depth 6 n + 2 from the n
    blocks a stage) and RobustBench's WideResNet-28-10 (``block1.layer.{i}.conv1``, 4 blocks
    of 160 channels)."""
    keys = list(state)
    pycil = {k.rsplit("stage_1.", 1)[1].split(".")[0] for k in keys
             if "stage_1." in k and k.endswith(".conv_a.weight")}
    if pycil:
        depth = 6 * len(pycil) + 2
        name = f"pycil:resnet{depth}"
        return (name, f"PyCIL's CIFAR ResNet-{depth} (its convnet.stage_N layout)") if depth in (
            20, 32, 44, 56, 110) else None
    wrn = [k for k in keys if "block1.layer." in k and k.endswith(".conv1.weight")]
    if wrn:
        blocks = {k.split("block1.layer.", 1)[1].split(".")[0] for k in wrn}
        first = next(state[k] for k in wrn if k.split("block1.layer.", 1)[1].startswith("0."))
        if len(blocks) == 4 and int(first.shape[0]) == 160:
            return "robustbench:Standard", "RobustBench's WideResNet-28-10 (Standard)"
    return None
