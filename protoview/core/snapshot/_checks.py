"""Checks shared by the writer and the reader: sizes, shapes, dtypes, labels, scalar attributes."""

from __future__ import annotations

import datetime
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from protoview.core.snapshot._layout import _SCHEMA, _SIZE_WORDS, _TARGET_SIZE, F32, _Field
from protoview.errors import SnapshotError


class _Sizes:
    """Binds the size symbols of the layout (N, C, D, ...) and reports the first mismatch."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.seen: dict[str, tuple[int, str]] = {}

    def bind(self, symbol: str, value: int, name: str) -> None:
        if symbol not in self.seen:
            self.seen[symbol] = (value, name)
            return
        expected, first = self.seen[symbol]
        if value != expected:
            words = _SIZE_WORDS.get(symbol, "rows")
            raise SnapshotError(
                self.where, f"{name} has {value} {words} but {first} has {expected}"
            )


def _check_name(where: str, name: Any, kind: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\x00" in name
    ):
        raise SnapshotError(
            where, f"{kind} name {name!r} is not allowed (use a non-empty name without '/')"
        )


def _check_shape(
    where: str, name: str, shape: tuple[int, ...], spec: _Field, sizes: _Sizes
) -> None:
    if len(shape) != (1 if spec.cols is None else 2):
        raise SnapshotError(where, f"{name} has shape {tuple(shape)}; expected {spec.shape_text()}")
    sizes.bind(spec.rows, shape[0], name)
    if isinstance(spec.cols, int) and shape[1] != spec.cols:
        raise SnapshotError(where, f"{name} has shape {tuple(shape)}; expected {spec.shape_text()}")
    if isinstance(spec.cols, str):
        sizes.bind(spec.cols, shape[1], name)


def _check_layout(
    where: str, groups: Mapping[str, Mapping[str, Any]], target: str | None
) -> _Sizes:
    """Check required fields and shapes of arrays or h5py datasets (anything with ``.shape``)."""
    sizes = _Sizes(where)
    for group, schema in _SCHEMA.items():
        items = groups[group]
        if group == "samples" or (items and group != "assignment"):
            missing = [n for n, spec in schema.items() if spec.required and n not in items]
            if missing:
                raise SnapshotError(where, f"{group}/{missing[0]} is missing")
        for name, item in items.items():
            spec = schema[name]
            if group == "assignment":
                spec = _Field(F32, "N", _TARGET_SIZE.get(target or "", "M"), False)
            _check_shape(where, f"{group}/{name}", tuple(item.shape), spec, sizes)
    if sizes.seen["N"][0] == 0:
        raise SnapshotError(
            where, "samples/embedding has no rows; a snapshot needs at least one sample"
        )
    return sizes


def _check_labels(where: str, name: str, values: np.ndarray) -> None:
    if values.size and values.min() < -1:
        raise SnapshotError(
            where, f"{name} holds values below -1 (labels are >= 0, or -1 where unknown)"
        )


def _coerce(where: str, name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype`` (float32/float64 or int64), or a SnapshotError."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise SnapshotError(where, f"{name} is not a rectangular array of numbers") from None
    kind = array.dtype.kind
    if kind not in "biuf" or (dtype.kind == "i" and kind == "f" and not _integral(array)):
        what = "integers" if dtype.kind == "i" else "numbers"
        raise SnapshotError(where, f"{name} has dtype {array.dtype}; expected {what} ({dtype})")
    if kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise SnapshotError(where, f"{name} holds integers too large for int64")
    return array.astype(dtype, copy=False)


def _integral(array: np.ndarray) -> bool:
    """All values are whole numbers that fit in int64."""
    inside = np.abs(array) < 2.0**63
    return bool(np.all(inside) and np.all(array == np.round(array)))


def _scalar(where: str, name: str, value: Any) -> int | float | str:
    """A Python int, float or str fit for an HDF5 attribute (bools become ints)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise SnapshotError(where, f"{name} = {value} does not fit in 64 bits")
    if isinstance(value, str):  # a path that is not UTF-8 keeps its odd bytes as escapes
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, str) and "\x00" in value:
        raise SnapshotError(where, f"{name} contains a NUL character")
    if not isinstance(value, (int, float, str)):
        raise SnapshotError(
            where, f"{name} must be an int, a float or a str, not {type(value).__name__}"
        )
    return value


#: Root attributes that are text (``params`` too: JSON text, parsed by the reader).
_ROOT_TEXT = ("protoview_version", "created", "checkpoint", "checkpoint_sha256", "dataset", "method", "params")


def _check_root_values(where: str, attrs: Mapping[str, Any]) -> None:
    """The root attributes' types and values, as written and as read."""
    for key in _ROOT_TEXT:
        if not isinstance(attrs[key], str):
            raise SnapshotError(where, f"attrs/{key} must be a str, not {type(attrs[key]).__name__}")
    if not isinstance(attrs["step"], int) or attrs["step"] < 0:
        raise SnapshotError(where, f"attrs/step must be an integer >= 0, not {attrs['step']!r}")
    if not re.fullmatch(r"([0-9a-fA-F]{64})?", attrs["checkpoint_sha256"]):
        raise SnapshotError(
            where, "attrs/checkpoint_sha256 must be 64 hex digits (or empty when unknown)"
        )
    try:
        datetime.datetime.fromisoformat(attrs["created"])
    except ValueError:
        raise SnapshotError(
            where, f"attrs/created {attrs['created']!r} is not an ISO 8601 time"
        ) from None


def _plan_target(where: str, attrs: Mapping[str, Any], has_plan: bool) -> str | None:
    """The ``target`` of the Sinkhorn plan after checking its attributes (None without a plan)."""
    if not has_plan:
        return None
    _check_plan_attrs(where, attrs)
    return str(attrs["target"])


def _check_plan_attrs(where: str, attrs: Mapping[str, Any]) -> None:
    for key in ("target", "epsilon", "n_iters"):
        if key not in attrs:
            raise SnapshotError(where, f"assignment/Q needs the attribute '{key}'")
    if not isinstance(attrs["target"], str):
        raise SnapshotError(where, "assignment attribute 'target' must be a str")
    eps = attrs["epsilon"]
    if isinstance(eps, str) or not math.isfinite(eps) or eps <= 0:
        raise SnapshotError(
            where, f"assignment attribute 'epsilon' must be a number > 0, not {eps!r}"
        )
    if not isinstance(attrs["n_iters"], int) or attrs["n_iters"] < 0:
        raise SnapshotError(
            where,
            f"assignment attribute 'n_iters' must be an integer >= 0, not {attrs['n_iters']!r}",
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _plain(where: str, name: str, value: Any) -> Any:
    """An HDF5 attribute value as a Python int, float or str."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, (int, float, str)):
        raise SnapshotError(where, f"{name} is not a scalar attribute (int, float or str)")
    return value


def _require_group(where: str, parent: h5py.Group, name: str) -> h5py.Group:
    group = parent.get(name)
    if not isinstance(group, h5py.Group):
        raise SnapshotError(
            where, f"the group '{name}' is missing; this is not a complete protoview snapshot"
        )
    return group


def _dtype_text(dtype: np.dtype) -> str:
    return "strings" if h5py.check_string_dtype(dtype) or dtype.kind in "SUO" else str(dtype)


def _check_dtype(
    where: str, label: str, dataset: h5py.Dataset, allowed: tuple[np.dtype, ...]
) -> None:
    if dataset.dtype not in allowed:
        expected = " or ".join(str(d) for d in allowed)
        raise SnapshotError(
            where, f"{label} has dtype {_dtype_text(dataset.dtype)}; expected {expected}"
        )
