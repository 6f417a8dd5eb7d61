"""The adaptation methods, one line each: the one list every surface reads (torch-free).

Each entry maps a method's name to its class, ``"module:Class"``, imported on first use;
the class declares its parameters (``params``, a tuple of
:class:`~protoview.core.adapt.params.Param`) and a one-line ``summary`` beside its code.
``protoview adapt`` (its ``--method`` choices and ``--help``), ``protoview methods``,
``protoview compare`` (its default methods), the window's method list and parameter
controls, and the README's method table all come from here.

Adding a method is one module (an :class:`~protoview.core.adapt.base.Adapter` subclass
with ``method``, ``params`` and ``summary``) and one line below; an extension (or a test)
calls :func:`register` instead. The order is the display order: the order of a results
table (the source model, normalisation, entropy and pseudo-label methods, prototypes).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protoview.core.adapt.params import Param
from protoview.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from protoview.core.adapt.base import Adapter


@dataclass(frozen=True)
class MethodEntry:
    """target: ``"module:Class"``; compare: in ``protoview compare``'s default methods."""

    target: str
    compare: bool = True


_B = "protoview.core.adapt."
_METHODS: dict[str, MethodEntry] = {
    "none": MethodEntry(_B + "baselines:NoAdapt"),
    "bn": MethodEntry(_B + "baselines:BNAdapt"),
    "bn_alpha": MethodEntry(_B + "bn_alpha:BNAlpha"),
    "bn_ema": MethodEntry(_B + "bn_alpha:BNEMA"),
    "tent": MethodEntry(_B + "baselines:Tent"),
    "pl": MethodEntry(_B + "pseudo_label:PseudoLabel"),
    "rpl": MethodEntry(_B + "rpl:RPL"),
    "plc": MethodEntry(_B + "pseudo_label:PseudoLabelClassifier", compare=False),
    "shot_im": MethodEntry(_B + "shot:SHOTIM"),
    "t3a": MethodEntry(_B + "baselines:T3A"),
    "tsd": MethodEntry(_B + "tsd:TSDAdapter"),
    "eata": MethodEntry(_B + "eata:EATA"),
    "rdumb": MethodEntry(_B + "rdumb:RDumb"),
    "sar": MethodEntry(_B + "sar:SAR"),
    "deyo": MethodEntry(_B + "deyo:DeYO"),
    "roid": MethodEntry(_B + "roid:ROID"),
    "cmf": MethodEntry(_B + "cmf:CMF"),
    "lame": MethodEntry(_B + "lame:LAME"),
    "cotta": MethodEntry(_B + "cotta:CoTTA", compare=False),
    "rotta": MethodEntry(_B + "rotta:RoTTA"),
    "memo": MethodEntry(_B + "memo:MEMO", compare=False),
    "rmt": MethodEntry(_B + "rmt:RMT", compare=False),  # needs --source-data
    "santa": MethodEntry(_B + "santa:SANTA", compare=False),  # needs --source-data
    "gtta": MethodEntry(_B + "gtta:GTTA", compare=False),  # needs --source-data
    "adacontrast": MethodEntry(_B + "adacontrast:AdaContrast", compare=False),
}
#: The method the window and ``protoview adapt`` start with.
DEFAULT_METHOD = "tsd"

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")


def register(name: str, target: str, *, compare: bool = True) -> None:
    """Add a method: ``register("mine", "my_package.adapters:Mine")`` (nothing is imported).

    Parameters
    ----------
    name:
        Lower case, digits and ``_`` (it is a ``--method`` word and a ``compare`` entry).
    target:
        ``"module:Class"``, an :class:`~protoview.core.adapt.base.Adapter` subclass whose
        ``method`` is ``name`` and which declares ``params`` and ``summary``.
    compare:
        Whether ``protoview compare`` runs it when no ``--methods`` are given.

    Raises
    ------
    ValueError
        A malformed name or target, or a name already registered.
    """
    if not _NAME.match(name):
        raise ValueError(f"method name {name!r}: lower case letters, digits and _ only")
    if not _TARGET.match(target):
        raise ValueError(f"method {name!r}: target must be 'module:Class', got {target!r}")
    if name in _METHODS:
        raise ValueError(f"method {name!r} is already registered ({_METHODS[name].target})")
    _METHODS[name] = MethodEntry(target, compare)


def unregister(name: str) -> None:
    """Remove a method (what :func:`register` added). Raises ``KeyError`` if unknown."""
    del _METHODS[name]


def method_names() -> tuple[str, ...]:
    """Every registered method, in display order (no import: for ``--method`` choices)."""
    return tuple(_METHODS)


def compare_method_names() -> tuple[str, ...]:
    """The methods ``protoview compare`` runs by default, in display order."""
    return tuple(name for name, entry in _METHODS.items() if entry.compare)


def _entry(name: str) -> MethodEntry:
    if name not in _METHODS:
        raise ParameterError(
            "method", f"unknown method {name!r}; choose one of {', '.join(_METHODS)}"
        )
    return _METHODS[name]


def method_class(name: str) -> type[Adapter]:
    """The adapter class of method ``name`` (its module imported now).

    Raises
    ------
    ParameterError
        ``where="method"`` for a name not registered.
    TypeError
        The target is not a class whose ``method`` is ``name`` with ``params`` and ``summary``.
    """
    target = _entry(name).target
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    ok = isinstance(cls, type) and getattr(cls, "method", None) == name
    if not ok or not isinstance(getattr(cls, "params", None), tuple):
        raise TypeError(f"{target} must be an Adapter class with method = {name!r} and params")
    if not all(isinstance(p, Param) for p in cls.params) or not getattr(cls, "summary", ""):
        raise TypeError(f"{target} must declare params (Param, ...) and a one-line summary")
    return cls


def method_params(name: str) -> tuple[Param, ...]:
    """Every parameter ``make_adapter(name, ...)`` accepts, as declared by the class."""
    return tuple(method_class(name).params)


def window_params(name: str) -> tuple[Param, ...]:
    """The parameters the window shows a control for (``window=True``), in declared order."""
    return tuple(p for p in method_params(name) if p.window)


def method_defaults(name: str) -> dict[str, Any]:
    """``{parameter: default}`` of method ``name`` (the ``__init__`` defaults: a test checks)."""
    return {p.name: p.default for p in method_params(name)}


def method_summary(name: str) -> str:
    """One line: what the method does, its paper, and the released code it equals."""
    return str(method_class(name).summary)


def check_params(name: str, **params: Any) -> dict[str, Any]:
    """``params`` of method ``name``, each checked by its declared Param (no model needed:
    a command checks them before it opens anything).

    Raises
    ------
    ParameterError
        ``where="method"`` for an unknown method; ``where=<name>`` for a parameter the
        method does not take, or a value its declaration refuses.
    """
    declared = {p.name: p for p in method_params(name)}
    for key in params:
        if key not in declared:
            allowed = ", ".join(declared) or "none"
            raise ParameterError(key, f"not a parameter of {name!r} (accepted: {allowed})")
    return {key: declared[key].check(value) for key, value in params.items()}


def check_source_data(name: str, source_data: str | None) -> None:
    """Refuse method ``name`` without source data when it needs them (the command line's
    check before anything is opened; the error is the class's ``missing_source_data``)."""
    cls = method_class(name)
    if cls.needs_source and not source_data:
        raise cls.missing_source_data()


def make_adapter(name: str, model: nn.Module, **params: Any) -> Adapter:
    """Build method ``name`` on ``model`` (a :class:`~protoview.core.model.SplitModel`).

    ``params`` are the method's own (:func:`method_params`); each value is checked by its
    declared :class:`~protoview.core.adapt.params.Param` in the adapter's ``__init__``.

    Raises
    ------
    ParameterError
        ``where="method"`` for an unknown method; ``where=<name>`` for a parameter the
        method does not take, or a value its declaration refuses.
    """
    check_params(name, **params)
    if name != "none":  # "none" adapts nothing: a task checkpoint's accuracy as it is
        refuse_partial_head(model)
    return method_class(name).from_params(model, **params)


def refuse_partial_head(model: nn.Module) -> None:
    """ParameterError (``method``) for a head that lacks some of the data's classes (a task
    checkpoint of a class-incremental run, :class:`~protoview.core.heads.ClassScatter`):
    the methods' losses and filters count every class of the logits."""
    from protoview.core.heads import describe_head

    head = getattr(model, "classifier", None)
    try:
        info = describe_head(head) if head is not None else None
    except TypeError:
        return
    if info is not None and info.partial:
        raise ParameterError(
            "method", f"the head holds {info.held} of the data's {info.num_classes} classes (a "
                      "task checkpoint of a class-incremental run): test-time adaptation needs "
                      "a head over every class of the data (the run's last checkpoint)")
