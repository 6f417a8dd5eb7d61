"""Writing a snapshot: validate and coerce everything first, then write atomically."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from protoview import __version__
from protoview.core.atomic import atomic_path
from protoview.core.snapshot._checks import (
    _check_labels,
    _check_layout,
    _check_name,
    _check_root_values,
    _coerce,
    _first_line,
    _plan_target,
    _scalar,
)
from protoview.core.snapshot._geometry import _prepare_geometry, _write_geometry
from protoview.core.snapshot._layout import (
    _ROOT_DEFAULTS,
    _SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    I64,
    Snapshot,
)
from protoview.core.snapshot._runs import _prepare_runs, _write_runs
from protoview.core.snapshot._timeline import _prepare_history, _prepare_timeline
from protoview.errors import SnapshotError


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
    _check_root_values(where, out)
    return out


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
    runs: list[tuple[dict, dict, dict]]
    geometry: tuple[dict, dict] = ({}, {})


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
        _prepare_runs(where, snap.runs, n_samples),
        _prepare_geometry(where, snap.geometry, snap.geometry_attrs),
    )


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
        metrics = h5.create_group("metrics")
        metrics.attrs.update(plan.metrics)
        _write_geometry(metrics, *plan.geometry)
        if plan.timeline:
            timeline = h5.create_group("timeline")
            for attrs, arrays in plan.timeline:
                step = timeline.create_group(f"{attrs['step']:06d}")
                step.attrs.update(attrs)
                _write_datasets(step, arrays)
        _write_runs(h5, plan.runs)
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
