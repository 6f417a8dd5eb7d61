"""The snapshot layout: format name and version, the groups and their fields, :class:`Snapshot`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
        "domain": _Field(I64, "N", None, False),
        "source_predictions": _Field(I64, "N", None, False),
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
        ``prototypes_embedding`` (n, 2) float32, ``accuracy`` and ``refreshed`` (float) and
        ``checkpoint`` (str: a timeline of checkpoints names each step's file).
    assignment_attrs:
        Attributes of the Sinkhorn plan (see ``assignment``).
    runs:
        Every adaptation run of the session (optional), each a dict with ``attrs``
        (scalars: ``number``, ``method``, ``params`` JSON, ``stream``, ``current``, ...),
        ``history`` (columns as in ``history``) and optionally ``predictions`` (N,) int64;
        see :mod:`protoview.core.runs`.
    geometry:
        The feature space's geometry measured along the steps (optional; empty: none), laid
        out as ``history``: one row per measurement, 1-D columns ``run`` and ``step``
        (int64) and the numbers (float64, NaN: not measured), ragged per-class columns; on
        disk the group ``metrics/geometry`` (see :mod:`protoview.core.measures`,
        ``geometry_table``). ``geometry_attrs``: its scalar attributes (``versus``: what
        the CKA columns compare with).
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
    runs: list[dict] = field(default_factory=list)
    geometry: dict[str, Any] = field(default_factory=dict)
    geometry_attrs: dict[str, Any] = field(default_factory=dict)
