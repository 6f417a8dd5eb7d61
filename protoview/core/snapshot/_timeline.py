"""The run's record over time: ``history`` (one row per step, ragged columns) and ``timeline``
(one recorded map per step), prepared for writing and read back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from protoview.core.snapshot._checks import (
    _check_dtype,
    _check_labels,
    _check_name,
    _check_shape,
    _coerce,
    _plain,
    _require_group,
    _scalar,
    _Sizes,
)
from protoview.core.snapshot._layout import _OFFSETS, _TIMELINE_FIELDS, F64, I64
from protoview.errors import SnapshotError

#: A recorded step's numbers (attributes of its group): the exact full-set accuracy (NaN
#: when the map was not fully refreshed) and the share of samples refreshed to its model.
_FRAME_NUMBERS = ("accuracy", "refreshed")

#: A recorded step's texts (attributes of its group): the checkpoint file of a timeline of
#: checkpoints (optional; readers before it ignore it).
_FRAME_TEXTS = ("checkpoint",)


def _prepare_history(where: str, history: Any, prefix: str = "history",
                     required: tuple[str, ...] = ("step", "accuracy")) -> dict[str, np.ndarray]:
    """The datasets of the history group; a ragged column becomes ``name`` + ``name_offsets``.
    ``prefix``: the group's path in messages (``runs/0002/history``); ``required``: the
    plain columns a non-empty table must have."""
    if not isinstance(history, Mapping):
        raise SnapshotError(
            where, f"history must be a dict of columns, not {type(history).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    rows = _Sizes(where)
    for name, value in history.items():
        _check_name(where, name, "history column")
        label = f"{prefix}/{name}"
        if name.endswith(_OFFSETS):
            raise SnapshotError(
                where,
                f"{label}: column names may not end in '{_OFFSETS}' (kept for ragged columns)",
            )
        if _is_ragged(value):
            out[name], out[name + _OFFSETS] = _flatten(where, label, value)
            rows.bind("T", len(out[name + _OFFSETS]) - 1, label)
        else:
            out[name] = _history_column(where, label, value, prefix)
            rows.bind("T", len(out[name]), label)
    _check_history_columns(
        where,
        {
            n: None if n + _OFFSETS in out else a.dtype
            for n, a in out.items()
            if not n.endswith(_OFFSETS)
        },
        prefix,
        required,
    )
    return out


def _history_column(where: str, label: str, value: Any, prefix: str = "history") -> np.ndarray:
    forced = {f"{prefix}/step": I64, f"{prefix}/accuracy": F64}.get(label)
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


def _check_history_columns(
    where: str, dtypes: Mapping[str, np.dtype | None], prefix: str = "history",
    required: tuple[str, ...] = ("step", "accuracy"),
) -> None:
    """``dtypes``: the dtype of each column, None for a ragged one."""
    if not dtypes:
        return
    for name, dtype in (("step", I64), ("accuracy", F64)):
        if name not in required:
            continue
        if name not in dtypes:
            words = " and ".join(f"'{n}'" for n in required)
            raise SnapshotError(
                where, f"{prefix}/{name} is missing (this table has {words} columns)"
            )
        if dtypes[name] != dtype:
            raise SnapshotError(
                where, f"{prefix}/{name} must be a plain {dtype} column (one value per step)"
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
        unknown = sorted(
            set(entry) - set(_TIMELINE_FIELDS) - {"step", *_FRAME_NUMBERS, *_FRAME_TEXTS})
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
    for name in _FRAME_NUMBERS:
        if name in entry:
            value = _scalar(where, f"{label}/{name}", entry[name])
            if isinstance(value, str):
                raise SnapshotError(where, f"{label}/{name} must be a number")
            attrs[name] = float(value)
    for name in _FRAME_TEXTS:
        if name in entry:
            value = _scalar(where, f"{label}/{name}", entry[name])
            if not isinstance(value, str):
                raise SnapshotError(where, f"{label}/{name} must be text")
            attrs[name] = value
    return attrs


def _check_timeline_arrays(
    where: str, label: str, arrays: Mapping[str, Any], n_samples: int
) -> None:
    sizes = _Sizes(where)
    sizes.bind("N", n_samples, "samples/embedding")
    for key, array in arrays.items():
        _check_shape(where, f"{label}/{key}", tuple(array.shape), _TIMELINE_FIELDS[key], sizes)


def _read_history(where: str, group: h5py.Group, prefix: str = "history",
                  required: tuple[str, ...] = ("step", "accuracy")) -> dict[str, Any]:
    datasets = {n: d for n, d in group.items() if isinstance(d, h5py.Dataset)}
    columns: dict[str, Any] = {}
    rows = _Sizes(where)
    for name, dataset in datasets.items():
        label = f"{prefix}/{name}"
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
        where, {n: v.dtype if isinstance(v, np.ndarray) else None for n, v in columns.items()},
        prefix,
        required,
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
            if k in ("step", *_FRAME_NUMBERS, *_FRAME_TEXTS)
        }
        if not isinstance(entry.get("step"), int):
            raise SnapshotError(where, f"{label} has no integer 'step' attribute")
        for number in _FRAME_NUMBERS:
            if isinstance(entry.get(number), str):
                raise SnapshotError(where, f"{label}/{number} must be a number")
        for text in _FRAME_TEXTS:
            if text in entry and not isinstance(entry[text], str):
                raise SnapshotError(where, f"{label}/{text} must be text")
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
