"""A state to a snapshot and back, and the recorded frames of a run's timeline.

:func:`state_to_snapshot` and :func:`state_from_snapshot` are each other's inverse for
what a snapshot stores; :func:`timeline_frame` records one step's map and
:func:`frame_state` shows it again over the snapshot's state, with the numbers of that
step's history row (so a replayed frame, its chart and its bars cannot disagree).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from protoview import __version__
from protoview.core.state._compute import prediction_statistics
from protoview.core.state._geometry_state import GeometryState


def state_to_snapshot(state: GeometryState, *, with_features: bool = True):
    """A :class:`protoview.core.snapshot.Snapshot` holding ``state`` (see the README layout)."""
    from protoview.core.snapshot import Snapshot

    attrs = {
        "protoview_version": __version__,
        "checkpoint": "",
        "checkpoint_sha256": "",
        "dataset": "",
        "method": "none",
        "params": {},
        "step": 0,
    }
    attrs.update(state.attrs)
    attrs["labels_known"] = state.labels_known
    assignment = state.assignment
    samples = {
        "embedding": state.embedding,
        "labels": state.labels,
        "predictions": state.predictions,
        "confidence": state.confidence,
        "assignment": (assignment if assignment is not None
                       else np.full(state.num_samples, -1, np.int64)),
    }
    if with_features:
        samples["features"] = state.features
    if state.logits is not None:
        samples["logits"] = state.logits
    return Snapshot(
        attrs=attrs,
        samples=samples,
        centers={"vectors": state.centers, "embedding": state.centers_embedding,
                 "labels": state.center_labels},
        proxies={"vectors": state.proxies, "embedding": state.proxies_embedding,
                 "class": state.proxy_classes},
        prototypes={"vectors": state.prototypes, "embedding": state.prototypes_embedding,
                    "density": state.prototype_density},
        assignment={},
        history={},
        metrics={k: float(v) for k, v in state.metrics.items()},
        timeline=[],
    )


def _column(group: dict, key: str, n: int, dtype, fill, width: int | None = None) -> np.ndarray:
    value = group.get(key)
    if value is None:
        return np.full((n,) if width is None else (n, width), fill, dtype)
    return np.asarray(value, dtype)


def _block(group: dict, dim: int, label_key: str | None):
    """(embedding (m, 2), vectors (m, dim), labels (m,) or None) of a small group."""
    emb = _column(group, "embedding", 0, np.float32, np.nan, 2).reshape(-1, 2)
    m = len(emb)
    vectors = group.get("vectors")
    vectors = (np.zeros((m, dim), np.float32) if vectors is None
               else np.asarray(vectors, np.float32))
    labels = None if label_key is None else _column(group, label_key, m, np.int64, -1)
    return emb, vectors, labels


def state_from_snapshot(snap) -> GeometryState:
    """A GeometryState holding what a :class:`~protoview.core.snapshot.Snapshot` stores (the
    inverse of :func:`state_to_snapshot`); missing parts become empty / -1 / NaN (a
    snapshot needs no model). The entropy comes from the stored logits."""
    s = snap.samples
    emb = np.asarray(s["embedding"], np.float32)
    n = len(emb)
    feats = s.get("features")
    feats = np.zeros((n, 0), np.float32) if feats is None else np.asarray(feats, np.float32)
    d = feats.shape[1]
    assignment = s.get("assignment")
    if assignment is not None and not (np.asarray(assignment) >= 0).any():
        assignment = None
    c_emb, c_vec, c_lab = _block(snap.centers, d, "labels")
    p_emb, p_vec, p_cls = _block(snap.proxies, d, "class")
    k_emb, k_vec, _ = _block(snap.prototypes, d, None)
    logits = s.get("logits")
    logits = None if logits is None else np.asarray(logits, np.float32)
    _, _, entropy = prediction_statistics(logits, n)
    return GeometryState(
        features=feats, logits=logits, labels=_column(s, "labels", n, np.int64, -1),
        predictions=_column(s, "predictions", n, np.int64, -1),
        confidence=_column(s, "confidence", n, np.float32, np.nan), entropy=entropy,
        centers=c_vec, center_labels=c_lab, proxies=p_vec, proxy_classes=p_cls,
        prototypes=k_vec,
        prototype_density=_column(snap.prototypes, "density", len(k_emb), np.float32, np.nan),
        embedding=emb, centers_embedding=c_emb, proxies_embedding=p_emb,
        prototypes_embedding=k_emb,
        assignment=None if assignment is None else np.asarray(assignment, np.int64),
        assignment_target=str((getattr(snap, "assignment_attrs", None) or {}).get(
            "target", "prototypes")),
        metrics={k: float(v) for k, v in snap.metrics.items() if isinstance(v, (int, float))},
        attrs=dict(snap.attrs),
    )


def timeline_frame(state: GeometryState, step: int, refreshed: float = 1.0) -> dict[str, Any]:
    """One recorded step of a run's timeline (a snapshot's ``timeline`` entry): the map of
    ``state``, its predictions, its exact full-set accuracy (NaN when the map is not fully
    refreshed to that step's model: its predictions are then partly older ones) and
    ``refreshed``, the share of samples that hold that step's model."""
    return {
        "step": int(step),
        "embedding": state.embedding.copy(),
        "predictions": state.predictions.copy(),
        "centers_embedding": state.centers_embedding.copy(),
        "proxies_embedding": state.proxies_embedding.copy(),
        "prototypes_embedding": state.prototypes_embedding.copy(),
        "accuracy": float(state.metrics.get("accuracy", float("nan"))),
        "refreshed": float(refreshed),
    }


#: The numbers of a history row that a replayed frame shows (metrics key, row attribute).
_ROW_NUMBERS = (("probe_accuracy", "probe_accuracy"), ("probe_low", "probe_low"),
                ("probe_high", "probe_high"))


def frame_state(base: GeometryState, frame: dict, row: Any = None) -> GeometryState:
    """``base`` (a snapshot's state) with the positions and predictions of one timeline
    ``frame``, and the numbers of its step: ``row`` is that step's history row (a
    :class:`~protoview.core.runs.HistoryRow`, or None). The full-set accuracy is the row's
    when known, else the frame's own; the probe's estimate comes from the row; ``map_step``
    and ``refreshed`` say how complete the frame's map is. Other numbers of the snapshot
    (NMI / ARI of a later k-means, the final center loss) only on the frame of the
    snapshot's own step. A frame of a timeline of checkpoints names its file
    (``attrs["checkpoint"]``)."""
    def pick(key: str, current: np.ndarray) -> np.ndarray:
        v = frame.get(key)
        return current if v is None or np.shape(v) != np.shape(current) else np.asarray(v, current.dtype)

    step = int(frame.get("step", base.attrs.get("step", 0)) or 0)
    final = step == int(base.attrs.get("step", -2) or -2)
    metrics = dict(base.metrics) if final else {}
    for key in ("accuracy", "map_step", "refreshed"):
        metrics.pop(key, None)
    accuracy = float(frame.get("accuracy", np.nan))
    if row is not None and math.isfinite(row.full_accuracy):
        accuracy = float(row.full_accuracy)
    if math.isfinite(accuracy):
        metrics["accuracy"] = accuracy
    if row is not None:
        for key, name in _ROW_NUMBERS:
            value = float(getattr(row, name))
            if math.isfinite(value):
                metrics[key] = value
        if row.probe_size:
            metrics["probe_size"] = float(row.probe_size)
            metrics["probe_population"] = float(np.count_nonzero(base.labels >= 0))
    refreshed = float(frame.get("refreshed", np.nan))
    if math.isfinite(refreshed):
        metrics["map_step"], metrics["refreshed"] = float(step), refreshed
    protos = frame.get("prototypes_embedding")
    if protos is not None and np.shape(protos) != np.shape(base.prototypes_embedding):
        # recorded before (or with other) k-means prototypes: show none rather than the
        # final prototypes beside samples of an earlier step, nor their assignment
        d = base.features.shape[1] if base.features.ndim == 2 else 0
        base = replace(
            base, prototypes=np.zeros((0, d), np.float32),
            prototypes_embedding=np.zeros((0, 2), np.float32),
            prototype_density=np.zeros(0, np.float32), assignment=None,
        )
    attrs = dict(base.attrs)
    attrs["step"] = step
    if frame.get("checkpoint"):  # a timeline of checkpoints: the file of this step
        attrs["checkpoint"] = str(frame["checkpoint"])
    return replace(
        base, attrs=attrs, embedding=pick("embedding", base.embedding),
        predictions=pick("predictions", base.predictions),
        centers_embedding=pick("centers_embedding", base.centers_embedding),
        proxies_embedding=pick("proxies_embedding", base.proxies_embedding),
        prototypes_embedding=pick("prototypes_embedding", base.prototypes_embedding),
        metrics=metrics,
    )


def timeline_states(base: GeometryState, timeline: list[dict], rows: list) -> list[GeometryState]:
    """Every frame of ``timeline`` over ``base``, each with the numbers of its step's row of
    ``rows`` (the history; see :func:`frame_state`)."""
    by_step = {int(row.step): row for row in rows}
    return [frame_state(base, frame, by_step.get(int(frame.get("step", i))))
            for i, frame in enumerate(timeline)]

