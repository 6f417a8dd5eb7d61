"""Reading a snapshot: open safely, check format, groups, dtypes and shapes; describe it for ``info``."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from protoview.core.snapshot._checks import (
    _check_dtype,
    _check_labels,
    _check_layout,
    _check_root_values,
    _first_line,
    _plain,
    _plan_target,
    _require_group,
)
from protoview.core.snapshot._geometry import _read_geometry
from protoview.core.snapshot._layout import (
    _ROOT_REQUIRED,
    _SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    I64,
    Snapshot,
)
from protoview.core.snapshot._runs import _describe_runs, _read_runs
from protoview.core.snapshot._timeline import _read_history, _read_timeline
from protoview.errors import SnapshotError


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
    _check_root_values(where, attrs)
    try:
        attrs["params"] = json.loads(attrs["params"])
    except ValueError:
        attrs["params"] = None
    if not isinstance(attrs["params"], dict):
        raise SnapshotError(where, "attrs/params is not a JSON object")
    return attrs


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


def _read_metrics(where: str, group: h5py.Group) -> dict[str, int | float | str]:
    return {name: _plain(where, f"metrics/{name}", value) for name, value in group.attrs.items()}


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
        geometry, geometry_attrs = _read_geometry(where, h5["metrics"])
        return Snapshot(
            attrs=contents.attrs,
            **groups,
            history=_read_history(where, h5["history"]),
            metrics=_read_metrics(where, h5["metrics"]),
            timeline=_read_timeline(where, h5, contents.n_samples),
            assignment_attrs=contents.plan_attrs,
            runs=_read_runs(where, h5, contents.n_samples),
            geometry=geometry,
            geometry_attrs=geometry_attrs,
        )


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

    Reads the attributes, the shapes, the history, the metrics and the labels (to say
    whether any is known); not the large arrays.

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
        runs = _read_runs(where, h5, contents.n_samples)
        geometry, geometry_attrs = _read_geometry(where, h5["metrics"])
        labels = h5["samples"]["labels"][()] if "labels" in h5["samples"] else None
    known = contents.attrs.get("labels_known")
    if known not in ("all", "some", "none") and labels is not None:  # files older than the attribute
        n_known = int(np.count_nonzero(labels >= 0))
        known = "none" if n_known == 0 else ("all" if n_known == labels.size else "some")
    unlabelled = known == "none"
    sentences = [_describe_origin(where, contents.attrs), _describe_groups(contents)]
    if unlabelled:
        sentences.append("Labels: none known (unlabelled data), so no accuracy-type numbers.")
    if "Q" in contents.datasets["assignment"]:
        sentences.append(_describe_plan(contents))
    if history and len(history.get("step", ())):
        accuracy = history["accuracy"][-1]
        last = "no labels" if unlabelled else (f"{accuracy:.4f}" if np.isfinite(accuracy) else "n/a")
        sentences.append(f"History of {len(history['step'])} steps (last accuracy {last}).")
    if recorded:
        sentences.append(f"Timeline of {recorded} recorded steps.")
    checkpoints = _describe_checkpoints(contents.attrs, history, unlabelled)
    if checkpoints:
        sentences.append(checkpoints)
    if runs:
        sentences.append(_describe_runs(runs))
    if geometry:
        sentences.append(_describe_geometry(geometry, geometry_attrs, unlabelled))
    if metrics:
        shown = ", ".join(
            f"{k}={'no labels' if unlabelled and isinstance(v, float) and not np.isfinite(v) else format(v, '.4g')}"
            if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(metrics.items())
        )
        sentences.append(f"Metrics: {shown}.")
    return " ".join(sentences)


def _describe_checkpoints(attrs: Mapping[str, Any], history: Mapping[str, Any],
                          unlabelled: bool) -> str:
    """``Checkpoints (3): 1 epoch_1.pt (accuracy 0.5100), 2 ...`` for a timeline of
    checkpoints (the root attribute ``timeline_checkpoints``); "" for other files."""
    try:
        names = json.loads(str(attrs.get("timeline_checkpoints", "")))
    except ValueError:
        return ""
    if not isinstance(names, list) or not names:
        return ""
    steps = list(history.get("step", ()))
    accuracy = list(history.get("accuracy", ()))
    parts = []
    for i, name in enumerate(names):
        text = f"{steps[i] if i < len(steps) else i + 1} {os.path.basename(str(name))}"
        if not unlabelled and i < len(accuracy) and np.isfinite(accuracy[i]):
            text += f" (accuracy {float(accuracy[i]):.4f})"
        parts.append(text)
    return f"Checkpoints ({len(names)}): " + ", ".join(parts) + "."


def _describe_geometry(columns: Mapping[str, Any], attrs: Mapping[str, Any],
                       unlabelled: bool) -> str:
    """``Geometry measured at 3 steps (run 0 step 1: NC1 0.52, ...)``: each row's NC1,
    NC4, k-NN accuracy and linear CKA (``metrics/geometry``)."""
    parts = []

    def cell(name: str, i: int, fmt: str, label: str, needs_labels: bool = False) -> str:
        values = columns.get(name)
        if values is None or i >= len(values) or not isinstance(values, np.ndarray):
            return ""
        v = float(values[i])
        if needs_labels and unlabelled:
            return f"{label} no labels"
        return "" if not np.isfinite(v) else f"{label} {format(v, fmt)}"

    steps, runs = columns["step"], columns["run"]
    for i in range(len(steps)):
        cells = [cell("nc1", i, ".4g", "NC1"), cell("nc4_ncc_agreement", i, ".1%", "NC4"),
                 cell("knn_accuracy", i, ".1%", "k-NN accuracy", True),
                 cell("linear_cka", i, ".3f", "linear CKA")]
        where = f"step {int(steps[i])}" if int(runs[i]) == 0 else \
            f"run {int(runs[i])} step {int(steps[i])}"
        parts.append(f"{where}: " + ", ".join(c for c in cells if c))
    versus = attrs.get("versus")
    tail = f" (CKA against {versus})" if isinstance(versus, str) and versus else ""
    return f"Geometry measured at {len(steps)} steps{tail}: " + "; ".join(parts) + "."


def _describe_origin(where: str, attrs: Mapping[str, Any]) -> str:
    sha = attrs["checkpoint_sha256"]
    checkpoint = attrs["checkpoint"] or "unknown"
    params = ", ".join(f"{k}={v}" for k, v in sorted(attrs["params"].items()))
    return (
        f"{where}: protoview snapshot (format {attrs['format_version']}) written by protoview "
        f"{attrs['protoview_version']} on {attrs['created']}; method {attrs['method'] or 'none'}"
        f"{f' ({params})' if params else ''} at step {attrs['step']}; checkpoint {checkpoint}"
        f"{f' (sha256 {sha[:12]}...)' if sha else ''}; dataset {attrs['dataset'] or 'unknown'}"
        f"{_describe_preprocess(attrs)}."
    )


def _describe_preprocess(attrs: Mapping[str, Any]) -> str:
    """``; preprocess X (from: S)`` when the file records it (files before issue 13 do not)."""
    text = attrs.get("preprocess")
    if not isinstance(text, str) or not text:
        return ""
    source = attrs.get("preprocess_source")
    return f"; preprocess {text}" + (f" (from: {source})" if isinstance(source, str) and source else "")


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
