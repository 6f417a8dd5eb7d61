"""Parameter checks shared by the adapters: each failure is one ParameterError naming it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from protoview.core.adapt.base import batchnorm_layers, select_parameters
from protoview.errors import ParameterError

VARIANTS = ("reference", "corrected")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_lr(lr: Any) -> float:
    """A finite learning rate > 0."""
    if not (_is_number(lr) and math.isfinite(lr) and lr > 0):
        raise ParameterError("lr", f"the learning rate must be a finite number > 0, got {lr!r}")
    return float(lr)


def check_steps(steps: Any) -> int:
    """Updates per batch: an integer >= 1."""
    return check_int(steps, "steps", minimum=1)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer >= ``minimum`` (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(name, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite number in the interval ``[low, high]`` (ends open as asked)."""
    ok = _is_number(value) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        if math.isinf(high):
            where = f"> {low:g}" if low_open else f">= {low:g}"
            text = f"a finite number {where}"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            text = f"a number in {left}{low:g}, {high:g}{right}"
        raise ParameterError(name, f"must be {text}, got {value!r}")
    return float(value)


def check_optional_float(value: Any, name: str, **bounds: Any) -> float | None:
    """``None`` (the method's rule decides) or a number as :func:`check_float` wants it."""
    return None if value is None else check_float(value, name, **bounds)


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(name, f"must be True or False, got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ParameterError(name, f"unknown choice {value!r}; choose one of {', '.join(choices)}")
    return value


def check_variant(value: Any) -> str:
    return check_choice(value, "variant", VARIANTS)


def require_batchnorm(model: nn.Module, method: str) -> None:
    """Refuse a model without BatchNorm for a method that adapts BatchNorm layers."""
    if not batchnorm_layers(model):
        raise ParameterError(
            "method",
            f"{method!r} adapts BatchNorm layers and the model has none; "
            "choose tsd, t3a, lame, pl, plc, shot_im or none",
        )


def method_parameters(model: nn.Module, update: str, method: str) -> list[tuple[str, nn.Parameter]]:
    """:func:`select_parameters` for a method whose parameter group is fixed: an empty
    group is reported against ``method`` (the user chose the method, not ``update``)."""
    try:
        return select_parameters(model, update)
    except ParameterError as exc:
        what = {
            "all": "parameters",
            "affine": "BatchNorm scale and shift",
            "body": "featurizer parameters",
            "head": "classifier parameters",
        }[update]
        raise ParameterError(
            "method", f"{method!r} adapts the model's {what} and the model has none"
        ) from exc
