"""The optional ``runs`` group: every adaptation run of a session, side by side.

``runs/<NNNN>/`` (``0001``, ``0002``, ... in the order the runs were made) holds the run's
scalar attributes (``number``, ``method``, ``params`` as JSON, ``stream``, ...), a
``history`` subgroup laid out as the root ``history`` group, and optionally
``predictions`` (N,) int64. Files without the group (written before it existed) have no
runs; readers that do not know it ignore it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from protoview.core.snapshot._checks import (
    _check_dtype,
    _check_labels,
    _check_name,
    _coerce,
    _plain,
    _scalar,
)
from protoview.core.snapshot._layout import I64
from protoview.core.snapshot._timeline import _prepare_history, _read_history
from protoview.errors import SnapshotError

_ENTRY_KEYS = ("attrs", "history", "predictions")


def _prepare_runs(where: str, runs: Any, n_samples: int) -> list[tuple[dict, dict, dict]]:
    """Each run as (attributes, history datasets, other datasets), checked."""
    if not isinstance(runs, (list, tuple)):
        raise SnapshotError(where, f"runs must be a list of dicts, not {type(runs).__name__}")
    out = []
    for i, entry in enumerate(runs):
        label = f"runs/{i + 1:04d}"
        if not isinstance(entry, Mapping):
            raise SnapshotError(where, f"{label} must be a dict with 'attrs' and 'history'")
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise SnapshotError(where, f"{label} has '{unknown[0]}', which is not part of the format")
        attrs_in = entry.get("attrs", {})
        if not isinstance(attrs_in, Mapping):
            raise SnapshotError(where, f"{label}/attrs must be a dict of scalars")
        attrs = {}
        for key, value in attrs_in.items():
            _check_name(where, key, "run attribute")
            attrs[key] = _scalar(where, f"{label}/{key}", value)
        history = _prepare_history(where, entry.get("history", {}), prefix=f"{label}/history")
        arrays = {}
        if entry.get("predictions") is not None:
            predictions = _coerce(where, f"{label}/predictions", entry["predictions"], I64)
            _check_predictions(where, f"{label}/predictions", predictions.shape, n_samples)
            _check_labels(where, f"{label}/predictions", predictions)
            arrays["predictions"] = predictions
        out.append((attrs, history, arrays))
    return out


def _write_runs(h5: h5py.File, runs: list[tuple[dict, dict, dict]]) -> None:
    if not runs:
        return
    group = h5.create_group("runs")
    for i, (attrs, history, arrays) in enumerate(runs):
        run = group.create_group(f"{i + 1:04d}")
        run.attrs.update(attrs)
        hist = run.create_group("history")
        for name, array in history.items():
            hist.create_dataset(name, data=array)
        for name, array in arrays.items():
            run.create_dataset(name, data=array)


def _read_runs(where: str, h5: h5py.File, n_samples: int) -> list[dict[str, Any]]:
    """The runs in the order they were written (empty for files without the group)."""
    group = h5.get("runs")
    if group is None:
        return []
    if not isinstance(group, h5py.Group):
        raise SnapshotError(where, "runs is not a group of runs")
    out = []
    for name in sorted(group):
        label = f"runs/{name}"
        run = group[name]
        if not isinstance(run, h5py.Group):
            raise SnapshotError(where, f"{label} is not a group of one run")
        attrs = {k: _plain(where, f"{label}/{k}", v) for k, v in run.attrs.items()}
        hist = run.get("history")
        history = {} if not isinstance(hist, h5py.Group) else _read_history(
            where, hist, prefix=f"{label}/history")
        entry: dict[str, Any] = {"attrs": attrs, "history": history}
        predictions = run.get("predictions")
        if isinstance(predictions, h5py.Dataset):
            _check_dtype(where, f"{label}/predictions", predictions, (I64,))
            _check_predictions(where, f"{label}/predictions", predictions.shape, n_samples)
            entry["predictions"] = predictions[()]
            _check_labels(where, f"{label}/predictions", entry["predictions"])
        out.append(entry)
    return out


def _describe_runs(runs: list[dict[str, Any]]) -> str:
    """``Runs (2): #1 tent, online, 9 steps, online accuracy 0.761; #2 ... (current).``"""
    parts = []
    for entry in runs:
        attrs, history = entry["attrs"], entry["history"]
        steps = len(history.get("step", ()))
        online = history.get("online_accuracy")
        text = f"#{attrs.get('number', '?')} {attrs.get('method', '?')}"
        try:
            variant = json.loads(str(attrs.get("params", "{}"))).get("variant")
        except (ValueError, AttributeError):
            variant = None
        if isinstance(variant, str):
            text += f" {variant}"
        text += f", stream {attrs.get('stream', 'online')}, {steps} steps"
        if online is not None and len(online) and np.isfinite(online[-1]):
            text += f", online accuracy {float(online[-1]):.4f}"
        if attrs.get("current"):
            text += " (current)"
        parts.append(text)
    return f"Runs ({len(runs)}): " + "; ".join(parts) + "."


def _check_predictions(where: str, label: str, shape: tuple, n_samples: int) -> None:
    if tuple(shape) != (n_samples,):
        raise SnapshotError(
            where, f"{label} has shape {tuple(shape)}; expected ({n_samples},), one per sample"
        )
