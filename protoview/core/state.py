"""The geometry of one moment: samples, centers, proxies, prototypes and their joint map.

:func:`compute_geometry` is a pure function of arrays (no model, no widget): the CLI, the
window and the snapshot writer all go through it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview import __version__


@dataclass
class GeometryState:
    """Everything the map shows at one step. Arrays are numpy; -1 marks unknown labels.

    features (N, D) float32; logits (N, C) float32 or None; labels, predictions (N,) int64;
    confidence, entropy (N,) float32; centers (C, D) and center_labels (C,) (C = 0 when
    no label is known: unlabelled target data has no class centers);
    proxies (M, D) and proxy_classes (M,); prototypes (K, D), prototype_density (K,)
    (K may be 0); embedding (N, 2) and *_embedding for the small sets (NaN when no map).
    """

    features: np.ndarray
    logits: np.ndarray | None
    labels: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    centers: np.ndarray
    center_labels: np.ndarray
    proxies: np.ndarray
    proxy_classes: np.ndarray
    prototypes: np.ndarray
    prototype_density: np.ndarray
    embedding: np.ndarray
    centers_embedding: np.ndarray
    proxies_embedding: np.ndarray
    prototypes_embedding: np.ndarray
    assignment: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    map_held: np.ndarray | None = None  # (N+C+M+K,) bool: kept in place by the last update
    map_knn: tuple | None = None  # (indices, dists) of the map's k-NN graph, for the next update
    map_fitted: np.ndarray | None = None  # joint rows the layout was fitted on (large maps), else None

    @property
    def num_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def labels_known(self) -> str:
        """``"all"``, ``"some"`` or ``"none"``: how many samples have a known label."""
        return labels_known(self.labels)

    def summary(self) -> str:
        acc = self.metrics.get("accuracy")
        if self.labels_known == "none":
            acc_s = ", no labels (accuracy unknown)"
        else:
            acc_s = f", accuracy {acc:.1%}" if acc is not None and np.isfinite(acc) else ""
        return (
            f"{self.num_samples} samples, {len(self.centers)} centers, {len(self.proxies)} proxies, "
            f"{len(self.prototypes)} prototypes{acc_s}"
        )


def labels_known(labels: np.ndarray) -> str:
    """``"all"``, ``"some"`` or ``"none"`` of ``labels`` (N,) are known (``>= 0``).

    ``"none"`` is unlabelled target data, the usual test-time-adaptation setting: then there
    are no class centers and no accuracy-type numbers (they show as "no labels").
    """
    known = int(np.count_nonzero(np.asarray(labels) >= 0))
    return "none" if known == 0 else ("all" if known == np.asarray(labels).size else "some")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _joint_vectors(*blocks: np.ndarray) -> np.ndarray:
    return np.concatenate([b.reshape(-1, blocks[0].shape[1]) for b in blocks], axis=0)


def compute_geometry(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    logits: np.ndarray | None = None,
    proxies: np.ndarray | None = None,
    proxy_classes: np.ndarray | None = None,
    prototypes: np.ndarray | None = None,
    prototype_density: np.ndarray | None = None,
    num_classes: int | None = None,
    previous_embedding: np.ndarray | None = None,
    anchor_vectors: np.ndarray | None = None,
    previous_knn: tuple | None = None,
    new_rows: np.ndarray | None = None,
    with_map: bool = True,
    seed: int = 0,
    max_map_points: int | None = None,
    progress=None,
    cancel=None,
) -> GeometryState:
    """Centers, metrics and the joint map for one set of features.

    Parameters
    ----------
    features: (N, D) float32. labels: (N,) int64, -1 unknown. logits: (N, C) or None.
    proxies: (M, D) head rows with proxy_classes (M,). prototypes: (K, D) k-means centroids.
    previous_embedding: (N + C + M + K, 2) joint layout of the previous step; when given the
        map is updated from it (stable), else fitted fresh.
    anchor_vectors: (N + C + M + K, D) the joint vectors each point had when its position
        was last set (see :func:`~protoview.core.projection.update_map`); points that did
        not move since stay exactly in place. ``state.map_held`` says which.
    previous_knn: the previous state's ``map_knn`` (lets the update search again only
        the neighbours of the points that moved).
    new_rows: (N + C + M + K,) bool, rows new to the map (their ``previous_embedding``
        row is a starting guess; see :func:`layout_with_new_prototypes`): always placed by
        the update, never held.
    max_map_points: above this many joint vectors (default
        :data:`~protoview.core.projection.MAX_MAP_POINTS`, 200,000, or the environment
        variable ``PROTOVIEW_MAX_MAP_POINTS``) the layout is fitted on a stratified
        subsample (every center, proxy and prototype, samples per label in proportion)
        and the other samples are placed at the weighted mean of their nearest fitted
        neighbours (:func:`~protoview.core.projection.fit_large_map`). An update of such a
        map updates the subsample's layout (anchored, as below the threshold) and places
        the others again. ``state.map_fitted`` holds the fitted rows and
        ``metrics["map_fitted_points"]`` their count (both only set for such a map).
    progress, cancel: per map epoch, as in :func:`~protoview.core.projection.fit_map`
        (a cancelled map raises :class:`~protoview.errors.CancelledError`).
    """
    from protoview.core.geometry import center_loss, class_centers
    from protoview.core.metrics import accuracy

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n, d = features.shape
    if logits is not None:
        logits = np.asarray(logits, dtype=np.float32)
        num_classes = num_classes or logits.shape[1]
        probs = _softmax(logits.astype(np.float64))
        predictions = probs.argmax(axis=1).astype(np.int64)
        confidence = probs.max(axis=1).astype(np.float32)
        entropy = (-(probs * np.log(np.clip(probs, 1e-30, None))).sum(axis=1)).astype(np.float32)
    else:
        predictions = np.full(n, -1, np.int64)
        confidence = np.full(n, np.nan, np.float32)
        entropy = np.full(n, np.nan, np.float32)
    known = labels[labels >= 0]
    num_classes = num_classes or (int(known.max()) + 1 if known.size else 1)
    if known.size:
        centers = class_centers(features, labels, num_classes)
        center_vecs = np.nan_to_num(centers.vectors.astype(np.float32))
        center_labels = np.asarray(centers.labels, np.int64)
    else:  # unlabelled data: no class has a known member, so there are no class centers
        center_vecs = np.zeros((0, d), np.float32)
        center_labels = np.zeros(0, np.int64)
    proxies = np.zeros((0, d), np.float32) if proxies is None else np.asarray(proxies, np.float32)
    proxy_classes = np.zeros(0, np.int64) if proxy_classes is None else np.asarray(proxy_classes, np.int64)
    prototypes = np.zeros((0, d), np.float32) if prototypes is None else np.asarray(prototypes, np.float32)
    density = np.zeros(len(prototypes), np.float32) if prototype_density is None else np.asarray(prototype_density, np.float32)

    metrics: dict[str, float] = {}
    if logits is not None and (labels >= 0).any():
        metrics["accuracy"] = float(accuracy(predictions, labels))
    if known.size:
        metrics["center_loss"] = float(center_loss(features, labels, centers.vectors))
    metrics["labelled_samples"] = float(known.size)

    sizes = [n, len(center_vecs), len(proxies), len(prototypes)]
    t0 = time.perf_counter()
    held = knn = fitted = None
    if with_map:
        from protoview.core.projection import fit_large_map, fit_map, update_map
        from protoview.core.projection import max_map_points as _limit

        joint = _joint_vectors(features, center_vecs, proxies, prototypes)
        limit = _limit(max_map_points)
        update = previous_embedding is not None and previous_embedding.shape == (joint.shape[0], 2)
        if update and anchor_vectors is not None and anchor_vectors.shape != joint.shape:
            anchor_vectors = None
        if joint.shape[0] > limit:
            strata = np.concatenate([labels, center_labels, proxy_classes,
                                     np.full(len(prototypes), -1, np.int64)])
            keep = np.arange(joint.shape[0]) >= n
            result, fitted = fit_large_map(
                joint, strata, keep, max_points=limit,
                previous=previous_embedding if update else None,
                anchor_vectors=anchor_vectors if update else None,
                previous_knn=previous_knn if update else None,
                new_rows=new_rows if update else None,
                seed=seed, progress=progress, cancel=cancel,
            )
        elif update:
            result = update_map(
                previous_embedding, joint, seed=seed, anchor_vectors=anchor_vectors,
                previous_knn=previous_knn, new_rows=new_rows, progress=progress, cancel=cancel,
            )
        else:
            result = fit_map(joint, seed=seed, progress=progress, cancel=cancel)
        emb, held = result.embedding, result.held
        knn = (result.knn_indices, result.knn_dists)
        if fitted is not None:
            metrics["map_fitted_points"] = float(len(fitted))
    else:
        emb = np.full((sum(sizes), 2), np.nan, np.float32)
    metrics["map_seconds"] = time.perf_counter() - t0
    parts = np.split(emb, np.cumsum(sizes)[:-1])
    return GeometryState(
        features=features, logits=logits, labels=labels, predictions=predictions,
        confidence=confidence, entropy=entropy, centers=center_vecs,
        center_labels=center_labels, proxies=proxies,
        proxy_classes=proxy_classes, prototypes=prototypes, prototype_density=density,
        embedding=parts[0], centers_embedding=parts[1], proxies_embedding=parts[2],
        prototypes_embedding=parts[3], metrics=metrics, map_held=held, map_knn=knn,
        map_fitted=fitted,
    )


def joint_vectors(state: GeometryState) -> np.ndarray:
    """The (N + C + M + K, D) vectors in the order :func:`compute_geometry` embeds them."""
    return _joint_vectors(state.features, state.centers, state.proxies, state.prototypes)


def joint_embedding(state: GeometryState) -> np.ndarray:
    """The (N + C + M + K, 2) layout in the order :func:`compute_geometry` embeds it."""
    return np.concatenate(
        [state.embedding, state.centers_embedding, state.proxies_embedding, state.prototypes_embedding]
    )


def layout_with_new_prototypes(
    state: GeometryState, prototypes: np.ndarray, anchors: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The previous joint layout for a map whose prototypes were replaced (k-means).

    Samples, centers and proxies keep their rows of ``state``'s layout and their
    ``anchors`` (the (N + C + M + K_old, D) vectors of the session's last update, or
    None); each of the new ``prototypes`` (K, D) starts at the distance-weighted mean of
    the map positions of its nearest samples in feature space
    (:func:`~protoview.core.projection.place_points`). Returns (previous (N+C+M+K, 2),
    anchors (N+C+M+K, D) or None, new_rows (N+C+M+K,) bool, True for the prototypes),
    ready for :func:`compute_geometry`: an anchored update then keeps every unmoved
    sample exactly in place and only places the prototypes.
    """
    from protoview.core.projection import place_points

    prototypes = np.asarray(prototypes, np.float32)
    fixed = state.num_samples + len(state.centers) + len(state.proxies)
    emb = np.asarray(state.embedding)
    ok = np.isfinite(emb).all(axis=1)
    if len(prototypes) and ok.any():
        start = place_points(state.features[ok], emb[ok], prototypes)
    else:
        start = np.zeros((len(prototypes), 2), np.float32)
    previous = np.concatenate([joint_embedding(state)[:fixed], start]).astype(np.float32)
    if anchors is not None and len(anchors) >= fixed:
        anchors = np.concatenate([np.asarray(anchors)[:fixed], prototypes.reshape(-1, anchors.shape[1])])
    else:
        anchors = None
    new_rows = np.zeros(len(previous), bool)
    new_rows[fixed:] = True
    return previous, anchors, new_rows


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
    samples = {
        "embedding": state.embedding,
        "labels": state.labels,
        "predictions": state.predictions,
        "confidence": state.confidence,
        "assignment": state.assignment if state.assignment is not None else np.full(state.num_samples, -1, np.int64),
    }
    if with_features:
        samples["features"] = state.features
    if state.logits is not None:
        samples["logits"] = state.logits
    return Snapshot(
        attrs=attrs,
        samples=samples,
        centers={"vectors": state.centers, "embedding": state.centers_embedding, "labels": state.center_labels},
        proxies={"vectors": state.proxies, "embedding": state.proxies_embedding, "class": state.proxy_classes},
        prototypes={"vectors": state.prototypes, "embedding": state.prototypes_embedding, "density": state.prototype_density},
        assignment={},
        history={},
        metrics={k: float(v) for k, v in state.metrics.items()},
        timeline=[],
    )


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def build_state(model, dataset, result, *, seed: int = 0, with_map: bool = True) -> GeometryState:
    """:func:`compute_geometry` for a loaded model and its extracted features.

    model: a :class:`~protoview.core.model.SplitModel`; dataset: what the features came
    from (for its description); result: a :class:`~protoview.core.features.FeatureResult`.
    """
    from protoview.core.heads import head_proxies

    vectors, classes = head_proxies(model.classifier)
    info = model.info
    state = compute_geometry(
        result.features,
        result.labels,
        logits=result.logits,
        proxies=vectors.float().cpu().numpy(),
        proxy_classes=classes.cpu().numpy(),
        num_classes=info.head.num_classes if info else None,
        with_map=with_map,
        seed=seed,
    )
    from protoview.core.data import preprocess_attrs

    state.attrs.update(
        checkpoint=info.path if info else "",
        checkpoint_sha256=info.sha256 if info else "",
        dataset=getattr(dataset, "description", str(dataset)),
        **preprocess_attrs(dataset),
    )
    return state
