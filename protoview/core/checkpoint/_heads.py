"""Classifier heads of loaded checkpoints: build them from weights, or adopt a module.

A head is supported when it is one weight matrix whose rows are the class proxies:
``nn.Linear``, ``CosineLinear`` or ``SplitCosineLinear`` (``protoview.core.heads``). Heads
from other code (PyCIL's own classes, TorchScript modules, wrappers with an ``fc``) are
rebuilt as one of these with copied weights, and accepted only if the rebuilt head gives
the same logits on random features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from protoview.core.heads import CosineLinear, SplitCosineLinear
from protoview.errors import CheckpointError

_OURS = (nn.Linear, CosineLinear, SplitCosineLinear)
SUPPORTED_HEADS = (
    "protoview supports nn.Linear, CosineLinear and SplitCosineLinear heads "
    "(one weight matrix whose rows are the class proxies)"
)


@dataclass(frozen=True)
class ProxyHint:
    """What is known about proxies per class (``nb_proxy``) besides the weights.

    stored: recorded in the checkpoint; given: the ``nb_proxy`` argument; num_classes: the
    class count from the caller (the dataset's labels or ``--num-classes``).
    """

    stored: int | None = None
    given: int | None = None
    num_classes: int | None = None


def resolve_nb_proxy(rows: int, hint: ProxyHint, where: str | os.PathLike[str]) -> tuple[int, list[str]]:
    """Proxies per class P of a cosine head with ``rows`` weight rows, and a note saying why.

    Order: stored in the checkpoint > ``nb_proxy`` argument > ``rows / num_classes`` > 1.
    Raises CheckpointError when ``rows`` is not a multiple of P (or of ``num_classes``).
    """
    notes: list[str] = []
    if hint.stored is not None:
        nb_proxy = hint.stored
        if hint.given is not None and hint.given != hint.stored:
            notes.append(f"--nb-proxy {hint.given} ignored: the checkpoint stores nb_proxy={hint.stored}")
    elif hint.given is not None:
        nb_proxy = hint.given
        notes.append(f"nb_proxy={nb_proxy} taken from --nb-proxy")
    elif hint.num_classes is not None:
        if rows % hint.num_classes:
            raise CheckpointError(
                where, f"the cosine head has {rows} proxy rows, not a multiple of the {hint.num_classes} classes given"
            )
        nb_proxy = rows // hint.num_classes
        notes.append(
            f"nb_proxy={nb_proxy} inferred from {rows} proxy rows / {hint.num_classes} classes "
            f"(class count {hint.num_classes} taken from the dataset)"
        )
    else:
        nb_proxy = 1
        notes.append("nb_proxy is not stored in the checkpoint; assuming 1 proxy per class (pass --nb-proxy to change it)")
    if nb_proxy < 1 or rows % nb_proxy:
        raise CheckpointError(where, f"the cosine head has {rows} proxy rows, not divisible by nb_proxy={nb_proxy}")
    return nb_proxy, notes


def head_from_state(
    state: dict[str, torch.Tensor], prefix: str, hint: ProxyHint, where: str | os.PathLike[str]
) -> tuple[nn.Module, list[str]]:
    """Build the head stored under ``prefix`` (``"fc."``, ``"classifier."``) from its weights.

    ``{p}fc1.weight`` + ``{p}fc2.weight`` (+ ``{p}sigma``) -> SplitCosineLinear;
    ``{p}weight`` + ``{p}sigma`` -> CosineLinear (``to_reduce=True``);
    ``{p}weight`` (+ ``{p}bias``) -> nn.Linear. Rows are class-major.
    """
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}  # heads need no _metadata
    sigma = part.get("sigma")
    if "fc1.weight" in part and "fc2.weight" in part:
        w1, w2 = _matrix(part, "fc1.weight", prefix, where), _matrix(part, "fc2.weight", prefix, where)
        _check_rows(w1.shape[0] + w2.shape[0], where)
        nb_proxy, notes = resolve_nb_proxy(w1.shape[0] + w2.shape[0], hint, where)
        if w1.shape[0] % nb_proxy or w2.shape[0] % nb_proxy or w1.shape[1] != w2.shape[1]:
            raise CheckpointError(where, f"{prefix}fc1 / fc2 shapes {tuple(w1.shape)} / {tuple(w2.shape)} do not fit nb_proxy={nb_proxy}")
        head: nn.Module = SplitCosineLinear(w1.shape[1], w1.shape[0] // nb_proxy, w2.shape[0] // nb_proxy, nb_proxy, sigma is not None)
        _load(head, part, ("fc1.weight", "fc2.weight", "sigma"), where)
        return head, notes
    weight = _matrix(part, "weight", prefix, where)
    _check_rows(weight.shape[0], where)
    if sigma is not None:
        nb_proxy, notes = resolve_nb_proxy(weight.shape[0], hint, where)
        head = CosineLinear(weight.shape[1], weight.shape[0] // nb_proxy, nb_proxy, to_reduce=True, sigma=True)
        _load(head, part, ("weight", "sigma"), where)
        return head, notes
    bias = part.get("bias")
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    _load(head, part, ("weight", "bias"), where)
    notes = []
    if hint.given is not None and hint.given != 1:
        notes.append(f"--nb-proxy {hint.given} ignored: the head is a linear layer (1 proxy per class)")
    return head, notes


def _matrix(part: dict[str, torch.Tensor], key: str, prefix: str, where: str | os.PathLike[str]) -> torch.Tensor:
    weight = part.get(key)
    if weight is None:
        found = ", ".join(sorted(part)[:6]) or "none"
        raise CheckpointError(where, f"no classifier weight {prefix}{key} in the checkpoint (keys under {prefix!r}: {found}); {SUPPORTED_HEADS}")
    if weight.dim() != 2:
        raise CheckpointError(where, f"classifier weight {prefix}{key} has shape {tuple(weight.shape)}, expected (classes, features)")
    return weight


def _check_rows(rows: int, where: str | os.PathLike[str]) -> None:
    if rows == 0:
        raise CheckpointError(where, "the classifier head has 0 classes (its weight has 0 rows)")


def _load(head: nn.Module, part: dict[str, torch.Tensor], keys: tuple[str, ...], where: str | os.PathLike[str]) -> None:
    wanted = {k: part[k] for k in keys if k in part}
    try:
        head.load_state_dict(wanted, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(where, f"classifier weights do not fit: {' '.join(str(exc).split())[:300]}") from None


# ---------------------------------------------------------------------------- adoption
def adopt_head(module: nn.Module, hint: ProxyHint, where: str | os.PathLike[str], name: str = "head") -> tuple[nn.Module, list[str]]:
    """Return ``module`` if it is a supported head, else an equivalent supported head.

    Raises CheckpointError naming what is supported when no equivalent exists (an MLP).
    """
    if type(module) in _OURS:
        _check_rows(module.weight.shape[0], where)
        return module, []
    rebuilt = _rebuild(module, hint)
    if rebuilt is not None and _same_logits(module, rebuilt):
        _check_rows(rebuilt.weight.shape[0], where)
        kind = type(rebuilt).__name__
        return rebuilt, [f"head {name!r} ({_type_name(module)}) converted to an equivalent {kind} (same logits)"]
    inner = getattr(module, "fc", None)
    if isinstance(inner, nn.Module) and inner is not module:
        try:
            head, notes = adopt_head(inner, hint, where, f"{name}.fc")
        except CheckpointError:
            head = None
        if head is not None and _same_logits(module, head):
            return head, [*notes, f"head {name!r} wraps {name}.fc; using the inner layer"]
    raise CheckpointError(
        where,
        f"unsupported classifier head {name!r} ({_type_name(module)}): {SUPPORTED_HEADS}; pass --split to choose another layer",
    )


def _type_name(module: nn.Module) -> str:
    return str(getattr(module, "original_name", None) or type(module).__name__)


def _rebuild(module: nn.Module, hint: ProxyHint) -> nn.Module | None:
    """A supported head with ``module``'s weights, or None when the shape is not one."""
    try:
        params = {k: v.detach().clone().float() for k, v in module.state_dict().items()}
    except Exception:  # noqa: BLE001 - exotic modules
        return None
    sigma = params.get("sigma")
    names = set(params)
    try:
        if {"fc1.weight", "fc2.weight"} <= names and names <= {"fc1.weight", "fc2.weight", "sigma"}:
            rows = params["fc1.weight"].shape[0] + params["fc2.weight"].shape[0]
            nb_proxy = _guess_nb_proxy(module, rows, hint)
            head: nn.Module = SplitCosineLinear(
                params["fc1.weight"].shape[1], params["fc1.weight"].shape[0] // nb_proxy,
                params["fc2.weight"].shape[0] // nb_proxy, nb_proxy, sigma is not None,
            )
        elif "weight" in names and params["weight"].dim() == 2 and names <= {"weight", "sigma"} and hasattr(module, "sigma"):
            rows, dim = params["weight"].shape
            nb_proxy = _guess_nb_proxy(module, rows, hint)
            head = CosineLinear(dim, rows // nb_proxy, nb_proxy, to_reduce=True, sigma=sigma is not None)
        elif "weight" in names and params["weight"].dim() == 2 and names <= {"weight", "bias"}:
            head = nn.Linear(params["weight"].shape[1], params["weight"].shape[0], bias="bias" in names)
        else:
            return None
        head.load_state_dict(params, strict=True)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None
    return head.to(next(iter(module.state_dict().values())).device)


def _guess_nb_proxy(module: nn.Module, rows: int, hint: ProxyHint) -> int:
    """P from the module's own ``nb_proxy``, its output width, or the hint."""
    own = getattr(module, "nb_proxy", None)
    if isinstance(own, int) and own > 0:
        return own
    width = _logit_width(module)
    if width and rows % width == 0:
        return rows // width
    return hint.given or 1


def _logit_width(module: nn.Module) -> int | None:
    try:
        weight = next(iter(module.state_dict().values()))
        out = _as_logits(module(_probe(module, weight)))
    except Exception:  # noqa: BLE001 - not runnable as a head
        return None
    return int(out.shape[1]) if out is not None and out.dim() == 2 else None


def _probe(module: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    dim = int(getattr(module, "in_features", 0) or weight.shape[-1])
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, dim, generator=generator).to(weight.device)


def _as_logits(out: object) -> torch.Tensor | None:
    """A head's output as a tensor (PyCIL heads return ``{'logits': ...}``)."""
    if isinstance(out, dict):
        out = out.get("logits")
    return out if isinstance(out, torch.Tensor) else None


@torch.no_grad()
def _same_logits(original: nn.Module, rebuilt: nn.Module) -> bool:
    try:
        weight = rebuilt.weight
        x = _probe(rebuilt, weight)
        expected = _as_logits(original(x))
        got = rebuilt(x)
    except Exception:  # noqa: BLE001 - the original does not run as a head
        return False
    return expected is not None and expected.shape == got.shape and torch.allclose(expected.float(), got, rtol=1e-4, atol=1e-5)
