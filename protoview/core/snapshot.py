"""HDF5 snapshots of a protoview state: versioned, validated, written atomically.

A snapshot holds everything needed to redraw the map without the model: the samples'
embedding, labels and predictions, the class centers, the classifier's proxies, the k-means
prototypes, an optional Sinkhorn plan, the per-step history, scalar metrics and an
optional timeline of recorded steps. The layout is documented in
``docs/snapshot-format.md``; this module needs only h5py and numpy (no torch).

Writing validates first (dtypes coerced to the documented ones, shapes checked), then
writes a temporary file in the same folder and replaces the target atomically, so a
crash, a cancel or a full disk leaves the previous file intact. Reading checks the format
name and version, the groups, the dtypes and the shapes, and names the file and the
field in every :class:`~protoview.errors.SnapshotError`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from protoview import __version__
from protoview.core.atomic import atomic_path
from protoview.errors import SnapshotError

FORMAT_NAME = "protoview-snapshot"
FORMAT_VERSION = 1

F32 = np.dtype("float32")
I64 = np.dtype("int64")
F64 = np.dtype("float64")
_OFFSETS = "_offsets"
_SIZE_WORDS = {
    "N": "samples",
    "C": "class centers",
    "P": "proxies",
    "K": "prototypes",
    "D": "feature dimensions",
    "L": "logit columns",
    "M": "assignment targets",
    "T": "history rows",
}
#: Root attributes every snapshot has, with the default the writer fills in when missing.
_ROOT_DEFAULTS: dict[str, Any] = {
    "checkpoint": "",
    "checkpoint_sha256": "",
    "dataset": "",
    "method": "",
    "params": {},
    "step": 0,
}
_ROOT_REQUIRED = ("format", "format_version", "protoview_version", "created", *_ROOT_DEFAULTS)


@dataclass(frozen=True)
class _Field:
    """One dataset of the layout: dtype, row symbol, column symbol (or width) and need."""

    dtype: np.dtype
    rows: str
    cols: str | int | None = None  # None: 1-D; int: fixed width; str: a shared size symbol
    required: bool = True

    def shape_text(self) -> str:
        return f"({self.rows},)" if self.cols is None else f"({self.rows}, {self.cols})"


_SCHEMA: dict[str, dict[str, _Field]] = {
    "samples": {
        "embedding": _Field(F32, "N", 2),
        "labels": _Field(I64, "N"),
        "predictions": _Field(I64, "N"),
        "features": _Field(F32, "N", "D", False),
        "assignment": _Field(I64, "N", None, False),
        "confidence": _Field(F32, "N", None, False),
        "logits": _Field(F32, "N", "L", False),
    },
    "centers": {
        "vectors": _Field(F32, "C", "D"),
        "embedding": _Field(F32, "C", 2),
        "labels": _Field(I64, "C"),
    },
    "proxies": {
        "vectors": _Field(F32, "P", "D"),
        "embedding": _Field(F32, "P", 2),
        "class": _Field(I64, "P"),
    },
    "prototypes": {
        "vectors": _Field(F32, "K", "D"),
        "embedding": _Field(F32, "K", 2),
        "density": _Field(F32, "K"),
        "assignment": _Field(I64, "K", None, False),
    },
    "assignment": {"Q": _Field(F32, "N", "M", False)},
}
_TARGET_SIZE = {"prototypes": "K", "centers": "C", "proxies": "P"}
_TIMELINE_FIELDS = {
    "embedding": _Field(F32, "N", 2),
    "predictions": _Field(I64, "N"),
    "centers_embedding": _Field(F32, "C", 2),
    "proxies_embedding": _Field(F32, "P", 2),
    "prototypes_embedding": _Field(F32, "K", 2),
}


@dataclass(eq=False)
class Snapshot:
    """A protoview state as plain numpy arrays and numbers (the content of one snapshot file).

    Attributes
    ----------
    attrs:
        Root attributes: ``checkpoint``, ``checkpoint_sha256``, ``dataset``, ``method``,
        ``params`` (a dict; JSON on disk), ``step``, plus ``format``, ``format_version``,
        ``protoview_version`` and ``created`` (filled in by the writer when missing), and any
        extra scalar (int, float, str).
    samples:
        ``embedding`` (N, 2) float32, ``labels`` (N,) int64, ``predictions`` (N,) int64, and
        optionally ``features`` (N, D) float32, ``assignment`` (N,) int64, ``confidence``
        (N,) float32, ``logits`` (N, L) float32. Labels are -1 where unknown; NaN in a float
        array means unknown (e.g. no map was computed).
    centers, proxies, prototypes:
        Empty, or ``vectors`` (n, D) float32 + ``embedding`` (n, 2) float32 + ``labels`` /
        ``class`` (n,) int64 (centers / proxies), ``density`` (K,) float32 and optional
        ``assignment`` (K,) int64 (prototypes).
    assignment:
        Empty, or ``Q`` (N, M) float32, the Sinkhorn plan; then ``assignment_attrs`` holds
        ``target`` (str), ``epsilon`` (float > 0) and ``n_iters`` (int).
    history:
        One row per step: 1-D columns of equal length T (``step`` int64, ``accuracy``
        float64, any other int64 / float64 column), or ragged columns given as a list of T
        1-D arrays (e.g. ``batch_indices``).
    metrics:
        Scalar metrics (int, float or str).
    timeline:
        Recorded steps, each a dict with ``step`` (int), ``embedding`` (N, 2) float32 and
        optionally ``predictions`` (N,) int64, ``centers_embedding``, ``proxies_embedding``,
        ``prototypes_embedding`` (n, 2) float32 and ``accuracy`` (float).
    assignment_attrs:
        Attributes of the Sinkhorn plan (see ``assignment``).
    """

    attrs: dict = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    centers: dict[str, np.ndarray] = field(default_factory=dict)
    proxies: dict[str, np.ndarray] = field(default_factory=dict)
    prototypes: dict[str, np.ndarray] = field(default_factory=dict)
    assignment: dict[str, np.ndarray] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    timeline: list[dict] = field(default_factory=list)
    assignment_attrs: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ checks
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


# ------------------------------------------------------------------------------ prepare
def _prepare_attrs(where: str, attrs: Mapping[str, Any]) -> dict[str, int | float | str]:
    """Root attributes with defaults filled in, checked, params as JSON."""
    out: dict[str, Any] = {**_ROOT_DEFAULTS, "protoview_version": __version__, **attrs}
    for key in ("format", "format_version"):
        expected = FORMAT_NAME if key == "format" else FORMAT_VERSION
        if key in attrs and attrs[key] != expected:
            raise SnapshotError(
                where, f"attrs/{key} is {attrs[key]!r}; this version writes {expected!r}"
            )
    out["format"], out["format_version"] = FORMAT_NAME, FORMAT_VERSION
    out.setdefault(
        "created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    )
    out["params"] = _params_json(where, out["params"])
    for key in list(out):
        _check_name(where, key, "attribute")
        out[key] = _scalar(where, f"attrs/{key}", out[key])
    for key in (
        "protoview_version",
        "created",
        "checkpoint",
        "checkpoint_sha256",
        "dataset",
        "method",
    ):
        if not isinstance(out[key], str):
            raise SnapshotError(where, f"attrs/{key} must be a str, not {type(out[key]).__name__}")
    _check_root_values(where, out)
    return out


def _check_root_values(where: str, attrs: Mapping[str, Any]) -> None:
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


def _params_json(where: str, params: Any) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, (np.generic, np.ndarray)):
            return value.tolist()
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    if not isinstance(params, Mapping):
        raise SnapshotError(where, f"attrs/params must be a dict, not {type(params).__name__}")
    try:
        return json.dumps(params, sort_keys=True, default=plain)
    except (TypeError, ValueError) as exc:
        raise SnapshotError(where, f"attrs/params cannot be written as JSON ({exc})") from None


def _prepare_groups(
    where: str, snap: Snapshot, plan_attrs: Mapping[str, Any]
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """The arrays of the fixed groups, coerced and checked, and the sample count N."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for group, schema in _SCHEMA.items():
        items = getattr(snap, group)
        if not isinstance(items, Mapping):
            raise SnapshotError(
                where, f"{group} must be a dict of arrays, not {type(items).__name__}"
            )
        for name in items:
            if name not in schema:
                raise SnapshotError(
                    where, f"{group}/{name} is not part of the format (known: {', '.join(schema)})"
                )
        groups[group] = {
            n: _coerce(where, f"{group}/{n}", v, schema[n].dtype) for n, v in items.items()
        }
    target = _plan_target(where, plan_attrs, "Q" in groups["assignment"])
    sizes = _check_layout(where, groups, target)
    for group, schema in _SCHEMA.items():
        for name, array in groups[group].items():
            if schema[name].dtype == I64:
                _check_labels(where, f"{group}/{name}", array)
    return groups, sizes.seen["N"][0]


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


def _prepare_history(where: str, history: Any) -> dict[str, np.ndarray]:
    """The datasets of the history group; a ragged column becomes ``name`` + ``name_offsets``."""
    if not isinstance(history, Mapping):
        raise SnapshotError(
            where, f"history must be a dict of columns, not {type(history).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    rows = _Sizes(where)
    for name, value in history.items():
        _check_name(where, name, "history column")
        label = f"history/{name}"
        if name.endswith(_OFFSETS):
            raise SnapshotError(
                where,
                f"{label}: column names may not end in '{_OFFSETS}' (kept for ragged columns)",
            )
        if _is_ragged(value):
            out[name], out[name + _OFFSETS] = _flatten(where, label, value)
            rows.bind("T", len(out[name + _OFFSETS]) - 1, label)
        else:
            out[name] = _history_column(where, label, value)
            rows.bind("T", len(out[name]), label)
    _check_history_columns(
        where,
        {
            n: None if n + _OFFSETS in out else a.dtype
            for n, a in out.items()
            if not n.endswith(_OFFSETS)
        },
    )
    return out


def _history_column(where: str, label: str, value: Any) -> np.ndarray:
    forced = {"history/step": I64, "history/accuracy": F64}.get(label)
    kind = np.asarray(value).dtype.kind if forced is None else forced.kind
    column = _coerce(where, label, value, forced or (F64 if kind == "f" else I64))
    if column.ndim != 1:
        raise SnapshotError(
            where, f"{label} has shape {column.shape}; history columns are 1-D (one row per step)"
        )
    return column


def _is_ragged(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (np.ndarray, list, tuple)) for v in value
    )


def _flatten(where: str, label: str, parts: Any) -> tuple[np.ndarray, np.ndarray]:
    """A ragged column (list of 1-D arrays) as (flat values, offsets (T + 1,) int64)."""
    arrays = [np.asarray(p) for p in parts]
    # An empty Python list says nothing about its type; an empty float array does.
    floats = [
        a.dtype.kind == "f" and (a.size > 0 or isinstance(p, np.ndarray))
        for p, a in zip(parts, arrays, strict=True)
    ]
    dtype = F64 if any(floats) else I64
    arrays = [_coerce(where, f"{label}[{i}]", a, dtype) for i, a in enumerate(arrays)]
    for i, array in enumerate(arrays):
        if array.ndim != 1:
            raise SnapshotError(
                where, f"{label}[{i}] has shape {array.shape}; ragged columns hold 1-D arrays"
            )
    offsets = np.zeros(len(arrays) + 1, dtype=I64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays) if arrays else np.empty(0, dtype)
    return flat.astype(dtype, copy=False), offsets


def _check_history_columns(where: str, dtypes: Mapping[str, np.dtype | None]) -> None:
    """``dtypes``: the dtype of each column, None for a ragged one."""
    if not dtypes:
        return
    for name, dtype in (("step", I64), ("accuracy", F64)):
        if name not in dtypes:
            raise SnapshotError(
                where, f"history/{name} is missing (a history has 'step' and 'accuracy' columns)"
            )
        if dtypes[name] != dtype:
            raise SnapshotError(
                where, f"history/{name} must be a plain {dtype} column (one value per step)"
            )


def _prepare_timeline(where: str, timeline: Any, n_samples: int) -> list[tuple[dict, dict]]:
    """Each recorded step as (attributes, arrays), checked against the sample count."""
    if not isinstance(timeline, (list, tuple)):
        raise SnapshotError(
            where, f"timeline must be a list of dicts, not {type(timeline).__name__}"
        )
    out, steps = [], set()
    for i, entry in enumerate(timeline):
        if not isinstance(entry, Mapping) or "step" not in entry or "embedding" not in entry:
            raise SnapshotError(
                where, f"timeline[{i}] must be a dict with at least 'step' and 'embedding'"
            )
        unknown = sorted(set(entry) - set(_TIMELINE_FIELDS) - {"step", "accuracy"})
        if unknown:
            raise SnapshotError(
                where, f"timeline[{i}] has '{unknown[0]}', which is not part of the format"
            )
        attrs = _timeline_attrs(where, f"timeline[{i}]", entry, steps)
        label = f"timeline/{attrs['step']:06d}"
        arrays = {
            k: _coerce(where, f"{label}/{k}", entry[k], spec.dtype)
            for k, spec in _TIMELINE_FIELDS.items()
            if k in entry
        }
        _check_timeline_arrays(where, label, arrays, n_samples)
        if "predictions" in arrays:
            _check_labels(where, f"{label}/predictions", arrays["predictions"])
        out.append((attrs, arrays))
    return out


def _timeline_attrs(where: str, label: str, entry: Mapping[str, Any], steps: set[int]) -> dict:
    step = _scalar(where, f"{label}/step", entry["step"])
    if not isinstance(step, int) or step < 0 or step in steps:
        raise SnapshotError(where, f"{label}/step must be a unique integer >= 0, not {step!r}")
    steps.add(step)
    attrs: dict[str, Any] = {"step": step}
    if "accuracy" in entry:
        accuracy = _scalar(where, f"{label}/accuracy", entry["accuracy"])
        if isinstance(accuracy, str):
            raise SnapshotError(where, f"{label}/accuracy must be a number")
        attrs["accuracy"] = float(accuracy)
    return attrs


def _check_timeline_arrays(
    where: str, label: str, arrays: Mapping[str, Any], n_samples: int
) -> None:
    sizes = _Sizes(where)
    sizes.bind("N", n_samples, "samples/embedding")
    for key, array in arrays.items():
        _check_shape(where, f"{label}/{key}", tuple(array.shape), _TIMELINE_FIELDS[key], sizes)


def _prepare_metrics(where: str, metrics: Any) -> dict[str, int | float | str]:
    if not isinstance(metrics, Mapping):
        raise SnapshotError(where, f"metrics must be a dict, not {type(metrics).__name__}")
    for name in metrics:
        _check_name(where, name, "metric")
    return {name: _scalar(where, f"metrics/{name}", value) for name, value in metrics.items()}


@dataclass
class _Plan:
    """Everything to write, already checked and in the documented dtypes."""

    attrs: dict
    groups: dict[str, dict[str, np.ndarray]]
    plan_attrs: dict
    history: dict[str, np.ndarray]
    metrics: dict
    timeline: list[tuple[dict, dict]]


def _prepare(where: str, snap: Snapshot) -> _Plan:
    if not isinstance(snap, Snapshot):
        raise SnapshotError(where, f"expected a Snapshot to write, not {type(snap).__name__}")
    attrs = _prepare_attrs(where, snap.attrs)
    if not isinstance(snap.assignment_attrs, Mapping):
        raise SnapshotError(where, "assignment_attrs must be a dict")
    for key in snap.assignment_attrs:
        _check_name(where, key, "assignment attribute")
    plan_attrs = {k: _scalar(where, f"assignment/{k}", v) for k, v in snap.assignment_attrs.items()}
    groups, n_samples = _prepare_groups(where, snap, plan_attrs)
    return _Plan(
        attrs,
        groups,
        plan_attrs,
        _prepare_history(where, snap.history),
        _prepare_metrics(where, snap.metrics),
        _prepare_timeline(where, snap.timeline, n_samples),
    )


# ------------------------------------------------------------------------------ write
def write_snapshot(path: str | os.PathLike[str], snap: Snapshot) -> None:
    """Check ``snap`` and write it to ``path`` atomically (the old file stays until the new one is complete).

    Parameters
    ----------
    path:
        The snapshot file (``.h5``); its folder must exist.
    snap:
        The content; arrays are coerced to the documented dtypes (float32 vectors and
        embeddings, int64 labels, float64 / int64 history columns).

    Raises
    ------
    SnapshotError
        Invalid content (naming the field), or the file cannot be written (read-only
        folder, missing folder, disk full); the previous file at ``path`` is then intact.
    """
    plan = _prepare(os.fspath(path), snap)
    with atomic_path(path) as tmp:
        try:
            _write_file(tmp, plan)
        except (OSError, RuntimeError) as exc:  # h5py reports failed writes as either
            raise _as_os_error(exc) from exc


def _write_file(tmp: os.PathLike[str], plan: _Plan) -> None:
    h5 = h5py.File(tmp, "w", locking=False)
    try:
        h5.attrs.update(plan.attrs)
        for group, arrays in plan.groups.items():
            _write_datasets(h5.create_group(group), arrays)
        h5["assignment"].attrs.update(plan.plan_attrs)
        _write_datasets(h5.create_group("history"), plan.history)
        h5.create_group("metrics").attrs.update(plan.metrics)
        if plan.timeline:
            timeline = h5.create_group("timeline")
            for attrs, arrays in plan.timeline:
                step = timeline.create_group(f"{attrs['step']:06d}")
                step.attrs.update(attrs)
                _write_datasets(step, arrays)
    except BaseException:
        with contextlib.suppress(Exception):
            h5.close()
        raise
    h5.close()


def _write_datasets(group: h5py.Group, arrays: Mapping[str, np.ndarray]) -> None:
    # Uncompressed on purpose: lzf on the int64 arrays of a 200k-sample snapshot made the
    # write ~2x slower for a file ~16% smaller; on float32 features lzf was ~7x slower for
    # no gain (see docs/snapshot-format.md, "Compression").
    for name, array in arrays.items():
        group.create_dataset(name, data=array)


def _as_os_error(exc: BaseException) -> OSError:
    """An OSError with the errno of a failed HDF5 write, so that atomic_path can word it."""
    code = getattr(exc, "errno", None)
    if not code:
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    if code:
        return OSError(code, os.strerror(code))
    return OSError(f"the HDF5 library failed ({_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------ read
@contextlib.contextmanager
def _open(where: str) -> Iterator[h5py.File]:
    """The snapshot opened for reading; any failure while reading becomes a SnapshotError."""
    if not os.path.exists(where):
        raise SnapshotError(where, "the file does not exist")
    if os.path.isdir(where):
        raise SnapshotError(where, "is a folder, not a snapshot file")
    if not os.path.isfile(where):  # opening a named pipe would block for ever
        raise SnapshotError(where, "is not a regular file (a named pipe, socket or device?)")
    if os.path.getsize(where) == 0:
        raise SnapshotError(where, "is empty (0 bytes), not an HDF5 file")
    try:
        h5 = h5py.File(where, "r", locking=False)
    except OSError as exc:
        raise SnapshotError(where, _open_problem(exc)) from None
    try:
        yield h5
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise SnapshotError(
            where, f"cannot be read; the file is damaged ({_first_line(exc)})"
        ) from None
    except MemoryError as exc:  # a dataset's shape may claim any size
        raise SnapshotError(
            where, f"holds an array too large to load into memory ({_first_line(exc)})"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            h5.close()


def _open_problem(exc: OSError) -> str:
    text = str(exc)
    if "signature not found" in text:
        return "is not an HDF5 file (a protoview snapshot is an HDF5 file)"
    if "truncated" in text:
        return (
            "is truncated (shorter than its header says); it was not written or copied completely"
        )
    if getattr(exc, "errno", None) in (13, 1):
        return "cannot be read (no permission)"
    return f"cannot be opened as HDF5 ({_first_line(exc)})"


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


def _read_root_attrs(where: str, h5: h5py.File) -> dict[str, Any]:
    """Root attributes after checking the format name and version (params parsed from JSON)."""
    raw = dict(h5.attrs)
    if "format" not in raw:
        raise SnapshotError(where, "is not a protoview snapshot (it has no 'format' attribute)")
    fmt = _plain(where, "attrs/format", raw["format"])
    if fmt != FORMAT_NAME:
        raise SnapshotError(
            where, f"is not a protoview snapshot (its format is {fmt!r}, not {FORMAT_NAME!r})"
        )
    version = _plain(where, "attrs/format_version", raw.get("format_version"))
    if not isinstance(version, int) or version < 1:
        raise SnapshotError(where, f"has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise SnapshotError(
            where,
            f"was written by a newer protoview (format {version}); "
            f"this version reads format <= {FORMAT_VERSION}: update protoview",
        )
    attrs = {key: _plain(where, f"attrs/{key}", value) for key, value in raw.items()}
    missing = [key for key in _ROOT_REQUIRED if key not in attrs]
    if missing:
        raise SnapshotError(where, f"the root attribute '{missing[0]}' is missing")
    for key in (
        "protoview_version",
        "created",
        "checkpoint",
        "checkpoint_sha256",
        "dataset",
        "method",
        "params",
    ):
        if not isinstance(attrs[key], str):
            raise SnapshotError(
                where, f"attrs/{key} must be a str, not {type(attrs[key]).__name__}"
            )
    _check_root_values(where, attrs)
    try:
        attrs["params"] = json.loads(attrs["params"])
    except ValueError:
        attrs["params"] = None
    if not isinstance(attrs["params"], dict):
        raise SnapshotError(where, "attrs/params is not a JSON object")
    return attrs


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


@dataclass
class _Contents:
    """A snapshot file checked but not loaded: attributes and dataset handles."""

    attrs: dict
    datasets: dict[str, dict[str, h5py.Dataset]]
    plan_attrs: dict
    n_samples: int


def _inspect(where: str, h5: h5py.File) -> _Contents:
    """Check format, groups, dtypes and shapes without loading the arrays."""
    attrs = _read_root_attrs(where, h5)
    datasets: dict[str, dict[str, h5py.Dataset]] = {}
    for group, schema in _SCHEMA.items():
        items = _require_group(where, h5, group)
        datasets[group] = {
            n: d for n, d in items.items() if n in schema and isinstance(d, h5py.Dataset)
        }
        for name, dataset in datasets[group].items():
            _check_dtype(where, f"{group}/{name}", dataset, (schema[name].dtype,))
    for group in ("history", "metrics"):
        _require_group(where, h5, group)
    plan_attrs = {k: _plain(where, f"assignment/{k}", v) for k, v in h5["assignment"].attrs.items()}
    target = _plan_target(where, plan_attrs, "Q" in datasets["assignment"])
    sizes = _check_layout(where, datasets, target)
    return _Contents(attrs, datasets, plan_attrs, sizes.seen["N"][0])


def _load_groups(
    where: str, contents: _Contents, load_features: bool
) -> dict[str, dict[str, np.ndarray]]:
    groups: dict[str, dict[str, np.ndarray]] = {}
    for group, datasets in contents.datasets.items():
        skip = set() if load_features or group != "samples" else {"features"}
        groups[group] = {n: d[()] for n, d in datasets.items() if n not in skip}
        for name, array in groups[group].items():
            if array.dtype == I64:
                _check_labels(where, f"{group}/{name}", array)
    return groups


def _read_history(where: str, group: h5py.Group) -> dict[str, Any]:
    datasets = {n: d for n, d in group.items() if isinstance(d, h5py.Dataset)}
    columns: dict[str, Any] = {}
    rows = _Sizes(where)
    for name, dataset in datasets.items():
        label = f"history/{name}"
        if name.endswith(_OFFSETS):
            if name[: -len(_OFFSETS)] not in datasets:
                raise SnapshotError(
                    where, f"{label} has no column {name[: -len(_OFFSETS)]!r} to index"
                )
            continue
        _check_dtype(where, label, dataset, (I64, F64))
        if dataset.ndim != 1:
            raise SnapshotError(
                where, f"{label} has shape {dataset.shape}; history columns are 1-D"
            )
        values = dataset[()]
        if name + _OFFSETS in datasets:
            values = _split(where, label, values, datasets[name + _OFFSETS])
        columns[name] = values
        rows.bind("T", len(values), label)
    _check_history_columns(
        where, {n: v.dtype if isinstance(v, np.ndarray) else None for n, v in columns.items()}
    )
    return columns


def _split(
    where: str, label: str, flat: np.ndarray, offsets_dataset: h5py.Dataset
) -> list[np.ndarray]:
    """A ragged column from its flat values and offsets (T + 1,) int64."""
    _check_dtype(where, f"{label}{_OFFSETS}", offsets_dataset, (I64,))
    offsets = offsets_dataset[()]
    valid = (
        offsets.ndim == 1
        and len(offsets) >= 1
        and offsets[0] == 0
        and offsets[-1] == len(flat)
        and bool(np.all(np.diff(offsets) >= 0))
    )
    if not valid:
        raise SnapshotError(
            where, f"{label}{_OFFSETS} does not index {label} (offsets from 0 to its length)"
        )
    return [flat[start:stop] for start, stop in zip(offsets[:-1], offsets[1:], strict=True)]


def _read_metrics(where: str, group: h5py.Group) -> dict[str, int | float | str]:
    return {name: _plain(where, f"metrics/{name}", value) for name, value in group.attrs.items()}


def _read_timeline(where: str, h5: h5py.File, n_samples: int) -> list[dict]:
    if "timeline" not in h5:
        return []
    entries = []
    for name, step_group in _require_group(where, h5, "timeline").items():
        label = f"timeline/{name}"
        if not isinstance(step_group, h5py.Group):
            raise SnapshotError(where, f"{label} is not a group of one recorded step")
        entry = {
            k: _plain(where, f"{label}/{k}", v)
            for k, v in step_group.attrs.items()
            if k in ("step", "accuracy")
        }
        if not isinstance(entry.get("step"), int):
            raise SnapshotError(where, f"{label} has no integer 'step' attribute")
        if isinstance(entry.get("accuracy"), str):
            raise SnapshotError(where, f"{label}/accuracy must be a number")
        datasets = {
            k: d
            for k, d in step_group.items()
            if k in _TIMELINE_FIELDS and isinstance(d, h5py.Dataset)
        }
        if "embedding" not in datasets:
            raise SnapshotError(where, f"{label}/embedding is missing")
        for key, dataset in datasets.items():
            _check_dtype(where, f"{label}/{key}", dataset, (_TIMELINE_FIELDS[key].dtype,))
        _check_timeline_arrays(where, label, datasets, n_samples)
        entry.update({k: d[()] for k, d in datasets.items()})
        entries.append(entry)
    entries.sort(key=lambda e: e["step"])
    return entries


def read_snapshot(path: str | os.PathLike[str], *, load_features: bool = True) -> Snapshot:
    """Read and check a snapshot written by :func:`write_snapshot` (needs no model, no torch).

    Parameters
    ----------
    path:
        The snapshot file.
    load_features:
        When False, ``samples["features"]`` (N, D) float32, the largest array, is not
        loaded (its shape is still checked).

    Raises
    ------
    SnapshotError
        Not an HDF5 file, truncated or damaged, not a protoview snapshot, written by a newer
        protoview, a missing group, a wrong dtype or inconsistent shapes.
    """
    where = os.fspath(path)
    with _open(where) as h5:
        contents = _inspect(where, h5)
        groups = _load_groups(where, contents, load_features)
        return Snapshot(
            attrs=contents.attrs,
            **groups,
            history=_read_history(where, h5["history"]),
            metrics=_read_metrics(where, h5["metrics"]),
            timeline=_read_timeline(where, h5, contents.n_samples),
            assignment_attrs=contents.plan_attrs,
        )


# ------------------------------------------------------------------------------ summary
def hdf5_format(path: str | os.PathLike[str]) -> str:
    """The root ``format`` attribute of an HDF5 file: ``"protoview-snapshot"``,
    ``"protoview-features"``, ... (``""`` when absent or the file cannot be read)."""
    if not os.path.isfile(path):  # a named pipe would block; the readers say what is wrong
        return ""
    try:
        with h5py.File(path, "r") as h5:
            value = h5.attrs.get("format", "")
    except OSError:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def snapshot_summary(path: str | os.PathLike[str]) -> str:
    """One paragraph describing a snapshot (for ``protoview info snapshot.h5``).

    Reads the attributes, the shapes, the history and the metrics; not the large arrays.

    Raises
    ------
    SnapshotError
        As :func:`read_snapshot`.
    """
    where = os.fspath(path)
    with _open(where) as h5:
        contents = _inspect(where, h5)
        history = _read_history(where, h5["history"])
        metrics = _read_metrics(where, h5["metrics"])
        recorded = len(_read_timeline(where, h5, contents.n_samples))
    sentences = [_describe_origin(where, contents.attrs), _describe_groups(contents)]
    if "Q" in contents.datasets["assignment"]:
        sentences.append(_describe_plan(contents))
    if history:
        accuracy = history["accuracy"][-1]
        sentences.append(f"History of {len(history['step'])} steps (last accuracy {accuracy:.4f}).")
    if recorded:
        sentences.append(f"Timeline of {recorded} recorded steps.")
    if metrics:
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(metrics.items())
        )
        sentences.append(f"Metrics: {shown}.")
    return " ".join(sentences)


def _describe_origin(where: str, attrs: Mapping[str, Any]) -> str:
    sha = attrs["checkpoint_sha256"]
    checkpoint = attrs["checkpoint"] or "unknown"
    params = ", ".join(f"{k}={v}" for k, v in sorted(attrs["params"].items()))
    return (
        f"{where}: protoview snapshot (format {attrs['format_version']}) written by protoview "
        f"{attrs['protoview_version']} on {attrs['created']}; method {attrs['method'] or 'none'}"
        f"{f' ({params})' if params else ''} at step {attrs['step']}; checkpoint {checkpoint}"
        f"{f' (sha256 {sha[:12]}...)' if sha else ''}; dataset {attrs['dataset'] or 'unknown'}."
    )


def _describe_groups(contents: _Contents) -> str:
    samples = contents.datasets["samples"]
    features = samples.get("features")
    stored = f"{features.shape[1]}-d features" if features is not None else "no features"
    counts = [
        f"{len(contents.datasets[g]['vectors']) if contents.datasets[g] else 0} {words}"
        for g, words in (
            ("centers", "class centers"),
            ("proxies", "proxies"),
            ("prototypes", "prototypes"),
        )
    ]
    return f"{contents.n_samples} samples ({stored}), {', '.join(counts)}."


def _describe_plan(contents: _Contents) -> str:
    rows, cols = contents.datasets["assignment"]["Q"].shape
    plan = contents.plan_attrs
    return (
        f"Sinkhorn plan {rows} x {cols} to {plan['target']} "
        f"(epsilon {plan['epsilon']:g}, {plan['n_iters']} iterations)."
    )
