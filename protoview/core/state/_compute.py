"""One moment's geometry from arrays: :func:`compute_geometry` and its parts.

A pure function of arrays (no model, no widget): the CLI, the window and the snapshot
writer all go through it. Its parts, each usable alone: :func:`prediction_statistics`
(predictions, confidence, entropy from logits), :func:`centers_block` (class centers),
:func:`geometry_metrics` (accuracy, center loss) and :func:`place_joint` (the joint map:
a fresh fit, an anchored update, or the large-map path).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoview.core.state._geometry_state import GeometryState, JointRows


def prediction_statistics(
    logits: np.ndarray | None, n: int, prediction_map: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions (n,) int64, confidence (n,) float32 (the top softmax probability) and
    entropy (n,) float32 (nats) of ``logits`` (n, C); -1 / NaN for each when ``logits`` is
    None. Computed in float64. The predictions are
    :func:`~protoview.core.heads.predicted_classes` (through ``prediction_map``, a
    :class:`~protoview.core.heads.PredictionMap`, when given); confidence and entropy are
    the model's own softmax over its C classes."""
    from protoview.core.heads import predicted_classes

    if logits is None:
        return (np.full(n, -1, np.int64), np.full(n, np.nan, np.float32),
                np.full(n, np.nan, np.float32))
    z = np.asarray(logits, np.float64)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    predictions = predicted_classes(probs, prediction_map)
    confidence = probs.max(axis=1).astype(np.float32)
    entropy = (-(probs * np.log(np.clip(probs, 1e-30, None))).sum(axis=1)).astype(np.float32)
    return predictions, confidence, entropy


def centers_block(
    features: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The class centers for the map (C, D) float32 (empty classes as zeros), their labels
    (C,), and the centers as computed (NaN rows for empty classes; the center loss uses
    them): none at all for unlabelled data (no class has a known member)."""
    from protoview.core.geometry import class_centers

    d = features.shape[1]
    if not (labels >= 0).any():
        return np.zeros((0, d), np.float32), np.zeros(0, np.int64), None
    centers = class_centers(features, labels, num_classes)
    return (np.nan_to_num(centers.vectors.astype(np.float32)),
            np.asarray(centers.labels, np.int64), centers.vectors)


def geometry_metrics(
    features: np.ndarray, labels: np.ndarray, predictions: np.ndarray, with_logits: bool,
    center_vectors: np.ndarray | None,
) -> dict[str, float]:
    """``accuracy`` (with logits and a known label), ``center_loss`` (against
    ``center_vectors``, the centers as :func:`centers_block` computed them) and
    ``labelled_samples``."""
    from protoview.core.geometry import center_loss
    from protoview.core.metrics import accuracy

    metrics: dict[str, float] = {}
    known = labels >= 0
    if with_logits and known.any():
        metrics["accuracy"] = float(accuracy(predictions, labels))
    if known.any() and center_vectors is not None:
        metrics["center_loss"] = float(center_loss(features, labels, center_vectors))
    metrics["labelled_samples"] = float(known.sum())
    return metrics


@dataclass
class PlacedMap:
    """What :func:`place_joint` returns: the joint layout (rows.total, 2), which rows the
    update held in place, the map's k-NN graph, the fitted rows of a large map, and how
    the map was made (``MapResult.notes``)."""

    embedding: np.ndarray
    held: np.ndarray | None = None
    knn: tuple | None = None
    fitted: np.ndarray | None = None
    notes: str = ""


def place_joint(
    joint: np.ndarray,
    rows: JointRows,
    strata: np.ndarray,
    *,
    previous_embedding: np.ndarray | None = None,
    anchor_vectors: np.ndarray | None = None,
    previous_knn: tuple | None = None,
    new_rows: np.ndarray | None = None,
    seed: int = 0,
    max_map_points: int | None = None,
    progress=None,
    cancel=None,
) -> PlacedMap:
    """The joint map of ``joint`` (rows.total, D): a fresh fit, an anchored update from
    ``previous_embedding`` when its shape fits, or, above the point limit, a stratified
    subsample fitted (``strata``: each row's class, -1 unknown) and the rest placed
    (:func:`~protoview.core.projection.fit_large_map`; every row but the samples is always
    fitted)."""
    from protoview.core.projection import fit_large_map, fit_map, update_map
    from protoview.core.projection import max_map_points as limit_of

    update = previous_embedding is not None and previous_embedding.shape == (joint.shape[0], 2)
    if update and anchor_vectors is not None and anchor_vectors.shape != joint.shape:
        anchor_vectors = None
    fitted = None
    if joint.shape[0] > limit_of(max_map_points):
        result, fitted = fit_large_map(
            joint, strata, ~rows.mask("samples"), max_points=limit_of(max_map_points),
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
    return PlacedMap(result.embedding, result.held, (result.knn_indices, result.knn_dists),
                     fitted, result.notes)


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
    prediction_map: Any = None,
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
        ``state.attrs["map"]`` says how any map was made (k-NN search, layout engine and
        device, subsample and placement).
    progress, cancel: per map epoch, as in :func:`~protoview.core.projection.fit_map`
        (a cancelled map raises :class:`~protoview.errors.CancelledError`).
    prediction_map: the head's :class:`~protoview.core.heads.PredictionMap` (ImageNet-D):
        predictions and accuracy in its classes (``num_classes`` its count), or None.
    """
    # Long for its 17 keyword arguments (every caller's options); the work is in its parts.
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n, d = features.shape
    if logits is not None:
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim == 2 and logits.shape[1] == 0:
            logits = None  # an encoder without a head: no predictions
        elif prediction_map is not None:
            num_classes = prediction_map.num_classes
        else:
            num_classes = num_classes or logits.shape[1]
    predictions, confidence, entropy = prediction_statistics(logits, n, prediction_map)
    known = labels[labels >= 0]
    num_classes = num_classes or (int(known.max()) + 1 if known.size else 1)
    center_vecs, center_labels, raw_centers = centers_block(features, labels, num_classes)
    proxies, proxy_classes = _rows(proxies, d), _codes(proxy_classes)
    prototypes = _rows(prototypes, d)
    density = (np.zeros(len(prototypes), np.float32) if prototype_density is None
               else np.asarray(prototype_density, np.float32))
    metrics = geometry_metrics(features, labels, predictions, logits is not None, raw_centers)
    rows = JointRows(n, len(center_vecs), len(proxies), len(prototypes))

    t0 = time.perf_counter()
    if with_map:
        from protoview.core.projection import StackedRows
        from protoview.core.projection import max_map_points as max_map_points_of

        tail = np.concatenate([center_vecs, proxies.reshape(-1, d), prototypes.reshape(-1, d)])
        if rows.total > max_map_points_of(max_map_points):  # read in place, never stacked
            joint = StackedRows(features, tail)
        else:
            joint = np.concatenate([features, tail])
        strata = np.concatenate([labels, center_labels, proxy_classes, np.full(rows.prototypes, -1)])
        placed = place_joint(
            joint, rows, strata, previous_embedding=previous_embedding,
            anchor_vectors=anchor_vectors, previous_knn=previous_knn, new_rows=new_rows,
            seed=seed, max_map_points=max_map_points, progress=progress, cancel=cancel)
        if placed.fitted is not None:
            metrics["map_fitted_points"] = float(len(placed.fitted))
    else:
        placed = PlacedMap(np.full((rows.total, 2), np.nan, np.float32))
    metrics["map_seconds"] = time.perf_counter() - t0
    parts = rows.split(placed.embedding)
    return GeometryState(
        features=features, logits=logits, labels=labels, predictions=predictions,
        confidence=confidence, entropy=entropy, centers=center_vecs,
        center_labels=center_labels, proxies=proxies,
        proxy_classes=proxy_classes, prototypes=prototypes, prototype_density=density,
        embedding=parts["samples"], centers_embedding=parts["centers"],
        proxies_embedding=parts["proxies"], prototypes_embedding=parts["prototypes"],
        metrics=metrics, map_held=placed.held, map_knn=placed.knn, map_fitted=placed.fitted,
        attrs={"map": placed.notes} if placed.notes else {},
    )


def _rows(vectors: np.ndarray | None, d: int) -> np.ndarray:
    return np.zeros((0, d), np.float32) if vectors is None else np.asarray(vectors, np.float32)


def _codes(codes: np.ndarray | None) -> np.ndarray:
    return np.zeros(0, np.int64) if codes is None else np.asarray(codes, np.int64)



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
    old = state.rows
    kept = slice(0, old.slice("prototypes").start)  # samples, centers and proxies
    emb = np.asarray(state.embedding)
    ok = np.isfinite(emb).all(axis=1)
    if len(prototypes) and ok.any():
        start = place_points(state.features[ok], emb[ok], prototypes)
    else:
        start = np.zeros((len(prototypes), 2), np.float32)
    previous = np.concatenate([state.joint_embedding()[kept], start]).astype(np.float32)
    if anchors is not None and len(anchors) >= kept.stop:
        anchors = np.concatenate([np.asarray(anchors)[kept],
                                  prototypes.reshape(-1, anchors.shape[1])])
    else:
        anchors = None
    return previous, anchors, old.with_prototypes(len(prototypes)).mask("prototypes")


def build_state(model, dataset, result, *, seed: int = 0, with_map: bool = True) -> GeometryState:
    """:func:`compute_geometry` for a loaded model and its extracted features.

    model: a :class:`~protoview.core.model.SplitModel`; dataset: what the features came
    from (for its description); result: a :class:`~protoview.core.features.FeatureResult`.
    A self-supervised model whose features are its prototypes' space brings them as the
    map's prototypes, the samples assigned by SwAV's codes (:func:`model_prototypes`).
    """
    from protoview.core.data import preprocess_attrs
    from protoview.core.heads import map_proxies, prediction_map
    from protoview.core.state._prototypes import model_prototypes

    vectors, classes = map_proxies(model.classifier)
    mapping = prediction_map(model)
    info = model.info
    own = model_prototypes(model, result.features)
    state = compute_geometry(
        result.features,
        result.labels,
        logits=result.logits,
        proxies=vectors.float().cpu().numpy(),
        proxy_classes=classes.cpu().numpy(),
        prototypes=None if own is None else own.centroids,
        prototype_density=None if own is None else own.density,
        num_classes=(info.head.num_classes or None) if info else None,
        with_map=with_map,
        seed=seed,
        prediction_map=mapping,
    )
    if own is not None:  # the model's prototypes, the samples assigned by SwAV's codes
        state.assignment, state.assignment_target = own.assignments, "prototypes"
    state.attrs.update(
        checkpoint=info.path if info else "",
        checkpoint_sha256=info.sha256 if info else "",
        dataset=getattr(dataset, "description", str(dataset)),
        **preprocess_attrs(dataset),
    )
    return state
