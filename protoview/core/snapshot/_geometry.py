"""The optional group ``metrics/geometry``: the feature space's geometry measured along the
steps (a timeline's checkpoints, an adaptation run's recorded steps, the window's
measurements), one row per measurement.

Laid out as the ``history`` group (1-D columns of one value per row, ragged columns as
``name`` + ``name_offsets``) with the plain int64 columns ``run`` and ``step``; its
attributes are scalars (``versus``: what the CKA columns compare with). Files without it
(written before it existed) have no geometry; readers that do not know it ignore it (the
``metrics`` group's numbers are its attributes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py

from protoview.core.snapshot._checks import _check_name, _plain, _scalar
from protoview.core.snapshot._layout import I64
from protoview.core.snapshot._timeline import _prepare_history, _read_history
from protoview.errors import SnapshotError

GROUP = "geometry"  # inside ``metrics``
_LABEL = "metrics/geometry"


def _prepare_geometry(where: str, columns: Any, attrs: Any) -> tuple[dict, dict]:
    """(datasets, attributes) of the geometry table, checked; empty when there is none."""
    if not isinstance(columns, Mapping):
        raise SnapshotError(where, f"geometry must be a dict of columns, not {type(columns).__name__}")
    if not columns:
        return {}, {}
    for name in ("run", "step"):
        if name not in columns:
            raise SnapshotError(where, f"{_LABEL}/{name} is missing (a geometry table has 'run' "
                                       "and 'step' columns)")
    datasets = _prepare_history(where, columns, prefix=_LABEL, required=("step",))
    if datasets["run"].dtype != I64:
        raise SnapshotError(where, f"{_LABEL}/run must be a plain int64 column")
    if not isinstance(attrs, Mapping):
        raise SnapshotError(where, "geometry_attrs must be a dict of scalars")
    out = {}
    for key, value in attrs.items():
        _check_name(where, key, "geometry attribute")
        out[key] = _scalar(where, f"{_LABEL}/{key}", value)
    return datasets, out


def _write_geometry(metrics: h5py.Group, datasets: Mapping, attrs: Mapping) -> None:
    if not datasets:
        return
    group = metrics.create_group(GROUP)
    group.attrs.update(attrs)
    for name, array in datasets.items():
        group.create_dataset(name, data=array)


def _read_geometry(where: str, metrics: h5py.Group) -> tuple[dict, dict]:
    """(columns, attributes) of ``metrics/geometry``; ({}, {}) when the file has none."""
    group = metrics.get(GROUP)
    if group is None:
        return {}, {}
    if not isinstance(group, h5py.Group):
        raise SnapshotError(where, f"{_LABEL} is not a group of columns")
    columns = _read_history(where, group, prefix=_LABEL, required=("step",))
    if columns and "run" not in columns:
        raise SnapshotError(where, f"{_LABEL}/run is missing")
    attrs = {k: _plain(where, f"{_LABEL}/{k}", v) for k, v in group.attrs.items()}
    return columns, attrs
