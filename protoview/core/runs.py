"""The runs of a session, side by side: each adaptation run's settings, history and predictions.

A session keeps every run it made (:class:`RunRecord`: method, parameters, batch size,
seed, stream, its :class:`HistoryRow` per step and the full-set predictions of its latest
map) instead of forgetting one when another starts, so that runs can be overlaid on the
accuracy chart, compared sample by sample (:func:`versus_codes`: fixed / broken /
unchanged) and written together into a snapshot (:func:`run_to_snapshot`,
:func:`run_from_snapshot`; the ``runs`` group of ``docs/snapshot-format.md``).

numpy only (no torch): the window and snapshot readers use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Codes of :func:`versus_codes`, and their names for a legend.
FIXED, BROKEN, KEPT_RIGHT, KEPT_WRONG = 0, 1, 2, 3
VERSUS_NAMES = ("fixed", "broken", "unchanged, right", "unchanged, wrong")


@dataclass
class HistoryRow:
    """One adaptation step. online_accuracy: pooled over the pass so far (as TTA papers
    report it); batch_accuracy: this batch; full_accuracy: the whole set after the step
    (NaN when the map was not refreshed at that step); batch_indices (B,) int64,
    online_predictions (B,) int64 and online_logits (B, C) float32: the batch as the model
    saw it before the update; probe_accuracy, probe_low, probe_high: the full-set accuracy
    after the step estimated on the probe, with its 95% interval, and probe_size its
    labelled samples (NaN / 0 when not computed); probe_seconds: the time the probe took
    (NaN when none ran); domain: the domain most of the batch came from (-1: data of one
    domain); domain_start: a domain whose first sample of the pass is in this batch (-1:
    none), where a continual stream changes shift; pass_index: the 0-based pass of the
    stream the batch belongs to (the online accuracy pools over it; -1: unknown, e.g. a
    snapshot written before the field)."""

    step: int
    online_accuracy: float
    batch_accuracy: float
    full_accuracy: float
    seconds: float
    batch_indices: np.ndarray | None = None
    online_predictions: np.ndarray | None = None
    online_logits: np.ndarray | None = None
    loss: float = float("nan")
    probe_accuracy: float = float("nan")
    probe_low: float = float("nan")
    probe_high: float = float("nan")
    probe_size: int = 0
    probe_seconds: float = float("nan")
    domain: int = -1
    domain_start: int = -1
    pass_index: int = -1


@dataclass
class RunRecord:
    """One adaptation run of a session.

    number: 1-based, in the order the runs were started (never reused in a session);
    method, params: as given to ``make_adapter``; batch_size, seed, shuffle, stream (the
    canonical ``--stream`` text): the batch order; history: one row per step;
    predictions: (N,) int64 full-set predictions of the run's model as its latest map
    showed them (None before any), at step ``predictions_step``, ``predictions_refreshed``
    the share of samples already refreshed to that step's model (1.0: exact);
    domain_names: the data's domains (empty for one domain).
    """

    number: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    seed: int = 0
    shuffle: bool = True
    stream: str = "online"
    history: list[HistoryRow] = field(default_factory=list)
    predictions: np.ndarray | None = None
    predictions_step: int = 0
    predictions_refreshed: float = float("nan")
    domain_names: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Short, for a legend: ``"#2 tsd corrected · continual"``."""
        return self.name(with_stream=True)

    def name(self, with_stream: bool = True) -> str:
        """``"#2 tsd corrected"``, with `` · STREAM`` when the stream is not online and
        ``with_stream``."""
        text = f"#{self.number} {self.method}"
        variant = self.params.get("variant")
        if variant not in (None, "reference"):
            text += f" {variant}"
        if with_stream and self.stream != "online":
            text += f" · {self.stream}"
        return text

    @property
    def steps(self) -> int:
        return self.history[-1].step if self.history else 0

    @property
    def online_accuracy(self) -> float:
        """Online accuracy pooled over the run's current pass (NaN before any step)."""
        return self.history[-1].online_accuracy if self.history else float("nan")

    def shift_marks(self) -> list[tuple[int, str]]:
        """(step, domain name) where the stream changes shift: the rows that start a domain,
        for data of several domains (empty otherwise)."""
        if len(self.domain_names) < 2:
            return []
        return [(row.step, self.domain_names[row.domain_start]) for row in self.history
                if 0 <= row.domain_start < len(self.domain_names)]

    def describe(self) -> str:
        """One line: ``"#1 tent (lr=0.001), online, 9 steps, online accuracy 76.1%"``."""
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        acc = self.online_accuracy
        tail = f", online accuracy {acc:.1%}" if math.isfinite(acc) else ""
        return (f"#{self.number} {self.method}{f' ({params})' if params else ''}, "
                f"{self.stream}, batch {self.batch_size}, "
                f"{f'seed {self.seed}' if self.shuffle else 'file order'}, "
                f"{self.steps} steps{tail}")


def versus_codes(
    predictions: np.ndarray, other: np.ndarray | None, labels: np.ndarray
) -> np.ndarray:
    """Per sample, this model against another: (N,) int64 codes.

    ``FIXED`` (0): right here, wrong in the other; ``BROKEN`` (1): wrong here, right in the
    other; ``KEPT_RIGHT`` (2) / ``KEPT_WRONG`` (3): the same verdict in both; -1 where the
    label or either prediction is unknown (or ``other`` is None or of another length).
    """
    predictions = np.asarray(predictions, np.int64)
    labels = np.asarray(labels, np.int64)
    codes = np.full(predictions.shape[0], -1, np.int64)
    if other is None or np.shape(other) != predictions.shape:
        return codes
    other = np.asarray(other, np.int64)
    known = (labels >= 0) & (predictions >= 0) & (other >= 0)
    right, was = predictions == labels, other == labels
    codes[known & right & ~was] = FIXED
    codes[known & ~right & was] = BROKEN
    codes[known & right & was] = KEPT_RIGHT
    codes[known & ~right & ~was] = KEPT_WRONG
    return codes


def online_accuracy_by_domain(
    rows: Sequence[Any], labels: np.ndarray, domains: np.ndarray, n_domains: int
) -> np.ndarray:
    """(n_domains,) online accuracy over each domain's samples in ``rows`` (anything with
    ``batch_indices`` and ``online_predictions``: history rows or step records), pooled
    over the rows given; NaN for a domain without a labelled sample among them.
    labels, domains: (N,) int64 of the dataset."""
    labels, domains = np.asarray(labels, np.int64), np.asarray(domains, np.int64)
    correct, known = np.zeros(n_domains), np.zeros(n_domains)
    for row in rows:
        if row.batch_indices is None or row.online_predictions is None:
            continue
        idx = np.asarray(row.batch_indices, np.int64)
        ok = labels[idx] >= 0
        np.add.at(correct, domains[idx], (np.asarray(row.online_predictions) == labels[idx]) & ok)
        np.add.at(known, domains[idx], ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known > 0, correct / np.maximum(known, 1), np.nan)


# ------------------------------------------------------------------ history columns
_FLOATS = ("online_accuracy", "batch_accuracy", "seconds", "loss", "probe_accuracy",
           "probe_low", "probe_high", "probe_seconds")


def history_columns(rows: Sequence[HistoryRow]) -> dict[str, Any]:
    """The snapshot's history columns of ``rows`` (``accuracy`` is the full-set accuracy;
    ragged ``batch_indices``, ``online_predictions``, ``online_logits`` when every row has
    them)."""
    columns: dict[str, Any] = {
        "step": np.array([h.step for h in rows], np.int64),
        "accuracy": np.array([h.full_accuracy for h in rows], np.float64),
        **{name: np.array([getattr(h, name) for h in rows], np.float64) for name in _FLOATS},
        "probe_size": np.array([h.probe_size for h in rows], np.int64),
        "domain": np.array([h.domain for h in rows], np.int64),
        "domain_start": np.array([h.domain_start for h in rows], np.int64),
        "pass_index": np.array([h.pass_index for h in rows], np.int64),
    }
    if rows and all(h.batch_indices is not None for h in rows):
        columns["batch_indices"] = [h.batch_indices for h in rows]
        columns["online_predictions"] = [h.online_predictions for h in rows]
        columns["online_logits"] = [
            np.asarray(h.online_logits, np.float64).reshape(-1) for h in rows
        ]
    return columns


def rows_from_columns(history: dict[str, Any] | None) -> list[HistoryRow]:
    """:class:`HistoryRow` per step from snapshot history columns (missing columns: NaN,
    0 or -1; the ragged batch columns are left out)."""
    h = history or {}
    steps = np.asarray(h.get("step", []), np.int64)
    t = len(steps)

    def col(name: str, fill: float = np.nan) -> np.ndarray:
        v = h.get(name)
        if v is None or isinstance(v, list) or len(v) != t:
            return np.full(t, fill, np.float64)
        return np.asarray(v, np.float64)

    full, floats = col("accuracy"), {name: col(name) for name in _FLOATS}
    size, domain, start = col("probe_size", 0), col("domain", -1), col("domain_start", -1)
    passes = col("pass_index", -1)
    return [
        HistoryRow(
            int(steps[i]), float(floats["online_accuracy"][i]), float(floats["batch_accuracy"][i]),
            float(full[i]), float(floats["seconds"][i]), loss=float(floats["loss"][i]),
            probe_accuracy=float(floats["probe_accuracy"][i]), probe_low=float(floats["probe_low"][i]),
            probe_high=float(floats["probe_high"][i]),
            probe_seconds=float(floats["probe_seconds"][i]),
            probe_size=int(size[i]) if np.isfinite(size[i]) else 0,
            domain=int(domain[i]), domain_start=int(start[i]), pass_index=int(passes[i]),
        )
        for i in range(t)
    ]


# ------------------------------------------------------------------ snapshots
def run_to_snapshot(run: RunRecord, current: bool) -> dict[str, Any]:
    """The ``runs`` entry of a snapshot: ``{"attrs": ..., "history": ..., "predictions": ...}``
    (see ``docs/snapshot-format.md``)."""
    attrs = {
        "number": int(run.number), "method": run.method, "label": run.label,
        "params": json.dumps(run.params, sort_keys=True, default=_plain),
        "batch_size": int(run.batch_size), "seed": int(run.seed), "shuffle": int(run.shuffle),
        "stream": run.stream, "current": int(bool(current)),
        "predictions_step": int(run.predictions_step),
        "predictions_refreshed": float(run.predictions_refreshed),
        "domain_names": json.dumps(list(run.domain_names)),
    }
    entry: dict[str, Any] = {"attrs": attrs, "history": history_columns(run.history)}
    if run.predictions is not None:
        entry["predictions"] = np.asarray(run.predictions, np.int64)
    return entry


def run_from_snapshot(entry: dict[str, Any]) -> RunRecord:
    """A :class:`RunRecord` from a snapshot's ``runs`` entry (as :func:`run_to_snapshot`)."""
    attrs = entry.get("attrs", {})

    def loads(key: str, default: Any) -> Any:
        try:
            value = json.loads(attrs.get(key, ""))
        except (TypeError, ValueError):
            return default
        return value if isinstance(value, type(default)) else default

    predictions = entry.get("predictions")
    return RunRecord(
        number=int(attrs.get("number", 0)), method=str(attrs.get("method", "")),
        params=loads("params", {}), batch_size=int(attrs.get("batch_size", 0)),
        seed=int(attrs.get("seed", 0)), shuffle=bool(attrs.get("shuffle", 1)),
        stream=str(attrs.get("stream", "online")),
        history=rows_from_columns(entry.get("history")),
        predictions=None if predictions is None else np.asarray(predictions, np.int64),
        predictions_step=int(attrs.get("predictions_step", 0)),
        predictions_refreshed=float(attrs.get("predictions_refreshed", np.nan)),
        domain_names=tuple(str(n) for n in loads("domain_names", [])),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)
