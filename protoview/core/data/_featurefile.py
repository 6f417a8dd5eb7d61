"""Feature files: precomputed features on disk (``.h5`` / ``.hdf5`` / ``.npz``).

protoview's own layout (written by ``protoview extract --out``, and by the feature cache) is
plain HDF5: root datasets ``features`` (N, D) float32, ``labels`` (N,) int64, ``logits``
(N, C) float32, ``predictions`` (N,) int64; root attributes ``format="protoview-features"``,
``version=1``, ``protoview_version``, ``created``, ``checkpoint``, ``checkpoint_sha256``,
``dataset``, ``dataset_identity``, ``transform`` and ``complete=True``, written last. Any HDF5
or ``.npz`` file with ``features`` (and ``labels``; without them every label is unknown, -1)
opens as a :class:`FeatureSet`.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from protoview.core.data._base import check_labels, default_class_names
from protoview.core.heads import predicted_classes
from protoview.errors import DatasetError, ProtoviewError

FORMAT_NAME = "protoview-features"
FORMAT_VERSION = 1
FEATURE_SUFFIXES = (".h5", ".hdf5")
_ARRAYS = ("features", "labels", "logits", "predictions")
# What np.load raises for a corrupt, truncated or pickled .npz.
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class FeatureSet:
    """Precomputed features opened as a dataset (nothing left to extract).

    Attributes
    ----------
    features: (N, D) float32; labels: (N,) int64 (-1 unknown); class_names: list of C names;
    logits: (N, C) float32 or None; predictions: (N,) int64 or None;
    source: the file path; description: one line; attrs: the file's attributes.
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
        class_names: list[str],
        source: str,
        identity: str,
    ) -> None:
        self.features = arrays["features"]
        self.labels = arrays["labels"]
        self.logits = arrays.get("logits")
        self.predictions = arrays.get("predictions")
        self.class_names = class_names
        self.attrs = dict(attrs)
        self.source = source
        self._identity = identity
        n, d = self.features.shape
        kind = f"{len(class_names)} classes" if np.any(self.labels >= 0) else "no labels"
        self.description = f"features file {source}: {n} samples x {d} dims, {kind}"

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def identity(self) -> str:
        return self._identity


def python_value(value: Any) -> Any:
    """An HDF5 attribute value as plain Python (bytes -> str, numpy -> int/float/list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [python_value(v) for v in value.tolist()]
    return value


def _attr_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    if isinstance(value, str):
        return _valid_utf8(value)
    if isinstance(value, (bool, int, float)):
        return value
    return _valid_utf8(str(value))


def _valid_utf8(text: str) -> str:
    """``text`` made valid UTF-8 (HDF5 strings must be): a file name that is not UTF-8,
    which Python decodes with surrogate escapes, keeps its odd bytes as ``\\udcNN`` escapes,
    as Python prints them on stderr."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_feature_arrays(
    arrays: dict[str, np.ndarray], where: str, error: type[ProtoviewError]
) -> dict[str, np.ndarray]:
    """Validate and coerce ``features`` / ``labels`` / ``logits`` / ``predictions``.

    Returns float32 features/logits and int64 labels/predictions (predictions derived from
    the logits when absent). Raises ``error(where, ...)`` for wrong shapes or non-finite values.
    """
    features = np.asarray(arrays["features"])
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise error(
            where, f"'features' must be a non-empty (N, D) array, got shape {features.shape}"
        )
    if features.dtype.kind not in "fiub":
        raise error(where, f"'features' must be numeric, got dtype {features.dtype}")
    out = {"features": features.astype(np.float32, copy=False)}
    n = features.shape[0]
    _check_finite(out["features"], "features", where, error)
    labels = np.asarray(arrays["labels"])
    if labels.ndim == 2 and labels.shape[1] == 1:  # (N, 1) column vectors are common
        labels = labels[:, 0]
    try:
        out["labels"] = check_labels(labels, where, None)
    except DatasetError as exc:
        raise error(where, exc.problem) from None
    if out["labels"].shape[0] != n:
        raise error(where, f"{n} feature rows but {out['labels'].shape[0]} labels")
    if arrays.get("logits") is not None:
        logits = np.asarray(arrays["logits"])
        if logits.ndim != 2 or logits.shape[0] != n or logits.dtype.kind not in "fiub":
            raise error(
                where, f"'logits' must be numeric (N={n}, C), got {logits.dtype} {logits.shape}"
            )
        out["logits"] = logits.astype(np.float32, copy=False)
        _check_finite(out["logits"], "logits", where, error)
    if arrays.get("predictions") is not None:
        predictions = np.asarray(arrays["predictions"])
        if predictions.shape != (n,) or predictions.dtype.kind not in "iu":
            raise error(
                where,
                f"'predictions' must be integers of shape ({n},), got {predictions.dtype} {predictions.shape}",
            )
        out["predictions"] = predictions.astype(np.int64, copy=False)
    elif "logits" in out and out["logits"].shape[1] > 0:
        out["predictions"] = predicted_classes(out["logits"])
    return out


def _check_finite(values: np.ndarray, name: str, where: str, error: type[ProtoviewError]) -> None:
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        raise error(
            where,
            f"'{name}' contain NaN or Inf in {bad_rows.size} of {values.shape[0]} rows (first: row {bad_rows[0]})",
        )


def read_feature_arrays(
    path: str | os.PathLike[str], error: type[ProtoviewError]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read the arrays and attributes of a feature file (``.h5``/``.hdf5``/``.npz``), validated.

    Raises ``error(path, ...)`` for a missing, unreadable, incomplete or inconsistent file.
    """
    where = str(Path(path).expanduser().absolute())
    if not os.path.isfile(where):
        raise error(where, "file not found" if not os.path.exists(where) else "is not a file")
    raw, attrs = (
        _read_npz(where, error) if where.lower().endswith(".npz") else _read_h5(where, error)
    )
    if raw.get("features") is None:
        raise error(where, f"has no 'features' array (found: {', '.join(sorted(raw)) or 'nothing'})")
    if raw.get("labels") is None:  # unlabelled target data: every label unknown
        rows = np.shape(raw["features"])[0] if np.ndim(raw["features"]) else 0
        raw["labels"] = np.full(rows, -1, np.int64)
    if attrs.get("format") == FORMAT_NAME and attrs.get("complete") is not True:
        raise error(
            where, "was not completely written (no complete=True attribute); write it again"
        )
    return check_feature_arrays(raw, where, error), attrs


def _read_h5(
    where: str, error: type[ProtoviewError]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import h5py

    try:
        with h5py.File(where, "r") as handle:
            _check_virtual_sources(handle, where, error)
            arrays = {
                name: handle[name][()]
                for name in _ARRAYS
                if isinstance(handle.get(name), h5py.Dataset)
            }
            attrs = {key: python_value(value) for key, value in handle.attrs.items()}
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise error(
            where, f"is not a readable HDF5 file (truncated, corrupt or another format: {exc})"
        ) from None
    except MemoryError as exc:  # a dataset's shape may claim any size
        raise error(where, f"holds an array too large to load into memory ({exc})") from None
    return arrays, attrs


def _check_virtual_sources(handle: Any, where: str, error: type[ProtoviewError]) -> None:
    """A virtual dataset (``protoview extract`` under torchrun) reads its missing source
    files as zeros without a word: refuse it instead, naming the missing file."""
    import h5py

    for name in _ARRAYS:
        dset = handle.get(name)
        if not isinstance(dset, h5py.Dataset) or not dset.is_virtual:
            continue
        for source in dset.virtual_sources():
            if source.file_name == ".":
                continue
            path = os.path.join(os.path.dirname(where), source.file_name)
            if not os.path.isfile(path):
                raise error(
                    where,
                    f"'{name}' is stored in {path}, which is missing; keep the shard files next to it",
                )


def _read_npz(
    where: str, error: type[ProtoviewError]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with open(where, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in (*_ARRAYS, "class_names") if name in npz.files}
    except NPZ_ERRORS as exc:
        raise error(where, f"is not a readable .npz file ({exc})") from None
    except MemoryError as exc:  # an array header may claim any size
        raise error(where, f"holds an array too large to load into memory ({exc})") from None
    attrs: dict[str, Any] = {}
    if "class_names" in arrays:
        attrs["class_names"] = [str(n) for n in arrays.pop("class_names").tolist()]
    return arrays, attrs


def write_feature_arrays(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
) -> None:
    """Write a protoview feature file atomically (validated first; ``complete=True`` last).

    Raises SnapshotError naming ``path`` for invalid arrays or a file system problem.
    """
    import h5py

    from protoview.core.atomic import atomic_path
    from protoview.errors import SnapshotError

    where = str(Path(path).expanduser().absolute())
    checked = check_feature_arrays(dict(arrays), where, SnapshotError)
    with atomic_path(where) as tmp, h5py.File(tmp, "w") as handle:
        for name, values in checked.items():
            handle.create_dataset(name, data=values)
        write_feature_attrs(handle, attrs)


def write_feature_attrs(handle: Any, attrs: Mapping[str, Any]) -> None:
    """The feature-file header (format, version, protoview version, time), then ``attrs``,
    then ``complete = True`` last: a file without it was cut off and is never trusted."""
    from protoview import __version__

    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "protoview_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in {**header, **dict(attrs)}.items():
        if key != "complete":
            handle.attrs[key] = _attr_value(value)
    handle.attrs["complete"] = True


def open_feature_file(
    path: str | os.PathLike[str], *, num_classes: int | None = None
) -> FeatureSet:
    """Open a features file as a :class:`FeatureSet` (DatasetError for every problem)."""
    arrays, attrs = read_feature_arrays(path, DatasetError)
    where = str(Path(path).expanduser().absolute())
    labels = check_labels(arrays["labels"], where, num_classes)
    names = attrs.get("class_names")
    if isinstance(names, str):
        try:
            names = json.loads(names)
        except ValueError:
            names = None
    if not isinstance(names, list):
        logit_classes = arrays["logits"].shape[1] if "logits" in arrays else 0
        names = default_class_names(labels, max(num_classes or 0, logit_classes))
    stat = os.stat(where)
    identity = f"features:{where};size={stat.st_size};mtime={stat.st_mtime_ns}"
    return FeatureSet(arrays, attrs, [str(n) for n in names], where, identity)
