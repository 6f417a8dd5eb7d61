"""Architectures a checkpoint's weights can be loaded into.

An architecture name is one of

- a built-in protoview architecture (``"protoview-demo-cnn"``; the TTA benchmarks' own:
  ``"wrn28_10"`` = ``"robustbench:Standard"``, RobustBench's WideResNet-28-10, and
  ``"cifar_resnet32"`` = ``"pycil:resnet32"``, PyCIL's CIFAR ResNet, also in depths 20, 44,
  56, 110; see :mod:`._zoo`), the only kind a checkpoint file may name by itself besides
  torchvision / timm names;
- a torchvision classification model (``"resnet18"``, ``"vit_b_16"``; prefix
  ``"torchvision:"`` to force), built with ``weights=None``;
- a timm model when timm is installed (``"timm:convnext_tiny"`` or a bare timm name),
  built with ``pretrained=False``;
- a user file ``"path/to/file.py:build_fn"``: the user named it, so running it is the
  user's choice. A checkpoint file can never make protoview import or run a Python file.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from protoview.errors import CheckpointError


def _build_demo_cnn(**kwargs: Any) -> nn.Module:
    from protoview.core.demo import build_demo_model  # lazy: only this architecture needs the demo

    return build_demo_model(**kwargs)


def _build_wrn28_10(num_classes: int = 10) -> nn.Module:
    from protoview.core.checkpoint._zoo import wrn28_10

    return wrn28_10(num_classes)


def _cifar_resnet_builder(depth: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10) -> nn.Module:
        from protoview.core.checkpoint._zoo import cifar_resnet

        return cifar_resnet(depth, num_classes)

    build.__name__ = f"cifar_resnet{depth}"
    return build


#: Built-in architectures: name -> builder(**arch_kwargs) -> nn.Module. A builder that takes
#: ``num_classes`` gets the rows of the checkpoint's head when its kwargs do not say.
BUILTIN_ARCHS: dict[str, Callable[..., nn.Module]] = {
    "protoview-demo-cnn": _build_demo_cnn,
    "wrn28_10": _build_wrn28_10,
    **{f"cifar_resnet{d}": _cifar_resnet_builder(d) for d in (20, 32, 44, 56, 110)},
}

#: Other names of built-in architectures: the names the checkpoints' home projects use.
ARCH_ALIASES: dict[str, str] = {
    "robustbench:Standard": "wrn28_10",
    **{f"pycil:resnet{d}": f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110)},
}

@dataclass
class ArchSpec:
    """A resolved architecture.

    name: the name as given; kind: ``"builtin"``, ``"torchvision"``, ``"timm"`` or
    ``"file"``; target: the model name (torchvision / timm / builtin) or the builder's
    function name (file); file: the user file for kind ``"file"``.
    """

    name: str
    kind: str
    target: str
    file: Path | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How ``protoview info`` shows the architecture."""
        if self.kind == "file":
            return f"{self.file}:{self.target} (user file)"
        return self.target if self.kind == "builtin" else f"{self.target} ({self.kind})"

    @property
    def is_library(self) -> bool:
        """torchvision / timm models: plain constructors, safe to build on the meta device."""
        return self.kind in ("torchvision", "timm")

    def build(self, num_classes: int | None = None, *, where: str | os.PathLike[str]) -> nn.Module:
        """Instantiate the architecture (random weights, CPU or the current default device).

        num_classes: the class count for torchvision / timm models and for user or built-in
        builders that take a ``num_classes`` argument (a built-in's ``kwargs`` come first).
        """
        try:
            if self.kind == "builtin":
                model = _call_builtin(self.target, self.kwargs, num_classes)
            elif self.kind == "torchvision":
                model = _build_torchvision(self.target, num_classes)
            elif self.kind == "timm":
                model = _build_timm(self.target, num_classes)
            else:
                model = _call_user_builder(self, num_classes)
        except CheckpointError:
            raise
        except ModuleNotFoundError as exc:
            raise CheckpointError(where, f"architecture {self.name!r} needs the module {exc.name!r}, which is not installed") from None
        except Exception as exc:  # noqa: BLE001 - any builder failure is the arch's/user's problem
            raise CheckpointError(where, f"building architecture {self.name!r} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise CheckpointError(where, f"architecture {self.name!r} returned {type(model).__name__}, not a torch nn.Module")
        return model


def resolve_arch(
    name: str, *, where: str | os.PathLike[str], from_file: bool = False, kwargs: dict[str, Any] | None = None
) -> ArchSpec:
    """Turn an architecture name into an :class:`ArchSpec`.

    Parameters
    ----------
    name: see the module docstring.
    where: the checkpoint path, named in errors.
    from_file: True when the name was read from the checkpoint itself: then user files are
        refused (a file must never make us run code).
    kwargs: keyword arguments for a built-in builder (a protoview checkpoint's ``arch_kwargs``).

    Raises
    ------
    CheckpointError: unknown name (close matches listed), missing user file or function.
    """
    name = str(name).strip()
    kwargs = dict(kwargs or {})
    if not name:
        raise CheckpointError(where, "the architecture name is empty; pass --arch")
    if _is_file_spec(name):
        if from_file:
            raise CheckpointError(
                where,
                f"the checkpoint names the Python file {name!r} as its architecture; protoview never "
                "runs code named by a checkpoint. If you trust it, pass --arch FILE.py:build_fn yourself",
            )
        file, sep, func = name.rpartition(":")
        if not sep or not func:
            raise CheckpointError(where, f"--arch {name!r}: name the builder function too, as FILE.py:build_fn")
        return ArchSpec(name, "file", func, Path(file).expanduser())
    prefix, sep, rest = name.partition(":")
    if sep and prefix in ("torchvision", "timm"):
        if prefix == "torchvision" and rest in _torchvision_names():
            return ArchSpec(name, "torchvision", rest)
        if prefix == "timm" and _timm_has(rest):
            return ArchSpec(name, "timm", rest)
        raise CheckpointError(where, f"unknown {prefix} architecture {rest!r}{_suggest(rest)}")
    if name in BUILTIN_ARCHS or name in ARCH_ALIASES:
        return ArchSpec(name, "builtin", ARCH_ALIASES.get(name, name), kwargs=kwargs)
    if name in _torchvision_names():
        return ArchSpec(name, "torchvision", name)
    if _timm_has(name):
        return ArchSpec(name, "timm", name)
    raise CheckpointError(where, f"unknown architecture {name!r}{_suggest(name)}")


def known_arch_names() -> list[str]:
    """Built-in (and their aliases), torchvision classification and (if installed) timm model names."""
    return [*BUILTIN_ARCHS, *ARCH_ALIASES, *_torchvision_names(), *_timm_names()]


def _call_builtin(target: str, kwargs: dict[str, Any], num_classes: int | None) -> nn.Module:
    builder = BUILTIN_ARCHS[target]
    kwargs = dict(kwargs)
    if num_classes is not None and "num_classes" not in kwargs and "num_classes" in inspect.signature(builder).parameters:
        kwargs["num_classes"] = num_classes
    return builder(**kwargs)


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, known_arch_names(), n=5, cutoff=0.6)
    hint = "; close matches: " + ", ".join(close) if close else ""
    return (
        f"{hint}. Use a torchvision name (resnet18, vit_b_16, ...), a timm name (if timm is "
        "installed), a built-in name (" + ", ".join([*BUILTIN_ARCHS, *ARCH_ALIASES]) + ") or FILE.py:build_fn"
    )


def _is_file_spec(name: str) -> bool:
    file, sep, func = name.rpartition(":")
    return (bool(sep) and file.endswith(".py")) or name.endswith(".py")


# ---------------------------------------------------------------------------- torchvision
def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _build_torchvision(name: str, num_classes: int | None) -> nn.Module:
    from torchvision.models import get_model

    extra: dict[str, Any] = {"weights": None}
    if num_classes is not None:
        extra["num_classes"] = num_classes
    if name in ("inception_v3", "googlenet"):
        extra["init_weights"] = False  # weights are loaded anyway; silences a FutureWarning
    return get_model(name, **extra)


# ---------------------------------------------------------------------------- timm
def _import_timm() -> Any | None:
    try:
        import timm
    except ImportError:
        return None
    return timm


def _timm_names() -> list[str]:
    timm = _import_timm()
    return list(timm.list_models()) if timm is not None else []


def _timm_has(name: str) -> bool:
    timm = _import_timm()
    if timm is None:
        return False
    return bool(timm.is_model(name))


def _build_timm(name: str, num_classes: int | None) -> nn.Module:
    timm = _import_timm()
    if timm is None:  # pragma: no cover - resolve_arch checked it
        raise ModuleNotFoundError("timm", name="timm")
    extra = {} if num_classes is None else {"num_classes": num_classes}
    return timm.create_model(name, pretrained=False, **extra)


# ---------------------------------------------------------------------------- user files
def load_user_builder(spec: ArchSpec) -> Callable[..., Any]:
    """Import the user's file (by path, under a private module name) and return its builder."""
    file = spec.file
    assert file is not None
    if not file.is_file():
        raise CheckpointError(file, "architecture file not found (from --arch FILE.py:build_fn)")
    stamp = f"{file.resolve()}:{file.stat().st_mtime_ns}"  # an edited file is imported afresh
    digest = hashlib.sha1(stamp.encode()).hexdigest()[:12]
    module_name = f"protoview_user_arch_{file.stem}_{digest}"
    module = sys.modules.get(module_name)
    if module is None:
        import_spec = importlib.util.spec_from_file_location(module_name, file)
        if import_spec is None or import_spec.loader is None:
            raise CheckpointError(file, "cannot be imported as a Python module")
        module = importlib.util.module_from_spec(import_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        try:
            import_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's code failed
            del sys.modules[module_name]
            raise CheckpointError(file, f"importing the architecture file failed: {type(exc).__name__}: {exc}") from exc
    builder = getattr(module, spec.target, None) if spec.target else None
    if not callable(builder):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise CheckpointError(
            file, f"has no function {spec.target!r}; callables defined there: {', '.join(names[:12]) or 'none'}"
        )
    return builder


def _call_user_builder(spec: ArchSpec, num_classes: int | None) -> Any:
    builder = load_user_builder(spec)
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        params = {}
    if num_classes is not None and "num_classes" in params:
        return builder(num_classes=num_classes)
    return builder()
