"""A session's map: the state it shows, the features it was made of, each point's anchor,
and the k-means prototypes on it.

:meth:`SessionMap.draw` turns a model's features into the next map, *anchored* on the one
shown (points whose vectors did not move since their position was last set stay exactly
in place; see :func:`~protoview.core.projection.update_map`); new k-means prototypes join
the map where their nearest samples are. :meth:`SessionMap.save` / :meth:`SessionMap.restore`
keep a map whole (the source model's, which Reset and a new run return to, bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from protoview.core.state import GeometryState, compute_geometry, layout_with_new_prototypes
from protoview.errors import ParameterError


@dataclass(frozen=True)
class SavedMap:
    """A map kept whole: its state, features (a FeatureResult), anchors, prototypes and
    Sinkhorn plan."""

    state: GeometryState
    features: Any
    anchors: np.ndarray | None
    kmeans: Any
    sinkhorn: Any


@dataclass(frozen=True)
class Head:
    """The classifier's rows on the map: proxies (M, D) float32, their classes (M,) int64,
    the head's number of classes (None: from the logits), and the map its predictions are
    scored through (a :class:`~protoview.core.heads.PredictionMap`: ImageNet-D; None)."""

    proxies: np.ndarray
    proxy_classes: np.ndarray
    num_classes: int | None
    prediction_map: Any = None

    @classmethod
    def of(cls, model: Any) -> Head:
        """The head of ``model`` (a SplitModel) as the map shows it
        (:func:`~protoview.core.heads.map_proxies`)."""
        from protoview.core.heads import map_proxies, prediction_map

        vectors, classes = map_proxies(model.classifier)
        info = model.info
        return cls(vectors.detach().float().cpu().numpy(), classes.cpu().numpy(),
                   (info.head.num_classes or None) if info else None, prediction_map(model))


class SessionMap:
    """See the module docstring. ``seed`` seeds every layout."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.state: GeometryState | None = None
        self.features: Any = None  # FeatureResult the state was made of
        self.anchors: np.ndarray | None = None  # (rows.total, D) each point's anchor
        self._anchors_own = False  # True: no saved map shares self.anchors (updated in place)
        self.kmeans: Any = None  # KMeansResult whose centroids are the map's prototypes
        #: (SinkhornRequest, SinkhornResult) behind the map's assignment, while it holds
        self.sinkhorn: tuple[Any, Any] | None = None
        self.preview = False  # the state's layout is the quick preview, not the UMAP map

    def draw(self, features: Any, head: Head, *, fresh: bool = False,
             cancel: Any = None) -> GeometryState:
        """The map of ``features`` (a FeatureResult) with the head's proxies and the k-means
        prototypes: a fresh fit when ``fresh`` or there is no map yet, else an anchored
        update of the one shown. Cancellable (per map epoch); a cancelled draw changes
        nothing."""
        previous = None if fresh or self.state is None else self.state.joint_embedding()
        anchors = self.anchors if previous is not None else None
        protos, new_rows = self.kmeans, None
        if previous is not None and protos is not None and not _same(protos.centroids,
                                                                     self.state.prototypes):
            # new k-means prototypes: the samples stay where they are, the prototypes join
            previous, anchors, new_rows = layout_with_new_prototypes(
                self.state, protos.centroids, anchors)
        state = compute_geometry(
            features.features, features.labels, logits=features.logits,
            proxies=head.proxies, proxy_classes=head.proxy_classes,
            prototypes=None if protos is None else protos.centroids,
            prototype_density=None if protos is None else protos.density,
            num_classes=head.num_classes, prediction_map=head.prediction_map,
            previous_embedding=previous,
            anchor_vectors=anchors, previous_knn=None if previous is None else self.state.map_knn,
            new_rows=new_rows, seed=self.seed, cancel=cancel,
        )
        if protos is not None:
            state.assignment = protos.assignments
        self.sinkhorn = None  # a new map holds the k-means assignment (or none)
        self.preview = False
        # a saved map may share the anchors: then they are written in a copy
        self.anchors = state.anchors_after(
            anchors, shared=anchors is self.anchors and not self._anchors_own)
        self._anchors_own = True
        self.features, self.state = features, state
        return state

    def draw_preview(self, features: Any, head: Head) -> GeometryState:
        """A map of ``features`` whose layout is the quick PCA preview
        (:func:`~protoview.core.projection.preview_layout`), drawn at once; the numbers are
        the map's. ``metrics["map_preview"]`` says so; the next :meth:`draw` (fresh) fits
        the UMAP map. The prototypes (k-means', or a self-supervised model's own) are in it."""
        from protoview.core.projection import preview_layout

        protos = self.kmeans
        state = compute_geometry(
            features.features, features.labels, logits=features.logits,
            proxies=head.proxies, proxy_classes=head.proxy_classes,
            prototypes=None if protos is None else protos.centroids,
            prototype_density=None if protos is None else protos.density,
            num_classes=head.num_classes, prediction_map=head.prediction_map,
            with_map=False, seed=self.seed)
        if protos is not None:
            state.assignment = protos.assignments
        parts = state.rows.split(preview_layout(state.joint_vectors(), self.seed))
        state.embedding, state.centers_embedding = parts["samples"], parts["centers"]
        state.proxies_embedding = parts["proxies"]
        state.prototypes_embedding = parts["prototypes"]
        state.metrics["map_preview"] = 1.0
        self.features, self.state, self.anchors, self.preview = features, state, None, True
        return state

    def set_assignment(self, assignment: np.ndarray, request: Any, result: Any,
                       **metrics: float) -> GeometryState:
        """The map with the samples assigned by Sinkhorn (``request``, ``result``: the
        SinkhornRequest and its result; ``assignment`` (N,) indices of its target), as a new
        state."""
        self.state = replace(self.state, assignment=np.asarray(assignment, np.int64),
                             assignment_target=request.target,
                             metrics={**self.state.metrics, **metrics})
        self.sinkhorn = (request, result)
        return self.state

    def save(self) -> SavedMap:
        self._anchors_own = False  # the saved map shares them: the next draw copies first
        return SavedMap(self.state, self.features, self.anchors, self.kmeans, self.sinkhorn)

    def restore(self, saved: SavedMap) -> GeometryState:
        """Show ``saved`` again, exactly as it was (the same arrays; its numbers and
        attributes copied, so that describing the restored map leaves ``saved`` as it is)."""
        self.state = replace(saved.state, metrics=dict(saved.state.metrics),
                             attrs=dict(saved.state.attrs))
        self.features = saved.features
        self.anchors, self.kmeans, self.sinkhorn = saved.anchors, saved.kmeans, saved.sinkhorn
        self._anchors_own = False
        return self.state


def sinkhorn_targets(state: GeometryState, target: str, has_head: bool) -> np.ndarray:
    """The rows of ``state`` a Sinkhorn assignment to ``target`` (``prototypes``, ``proxies``
    or ``centers``) assigns the samples to; :class:`ParameterError` naming ``target`` for an
    unknown target or one with no rows (``has_head``: the model has a classifier head)."""
    targets = {"prototypes": state.prototypes, "proxies": state.proxies,
               "centers": state.centers}.get(target)
    if targets is None:
        raise ParameterError(
            "target", f"unknown target {target!r}: use prototypes, proxies or centers")
    if len(targets) == 0 and target == "centers":
        raise ParameterError("target", "there are no class centers: no sample has a known "
                                       "label (use proxies or prototypes)")
    if len(targets) == 0 and target == "proxies" and not has_head:
        raise ParameterError("target", "the model has no classifier head, so no proxies "
                                       "(use prototypes or centers)")
    if len(targets) == 0:
        raise ParameterError("target", f"there are no {target} yet (run k-means first)")
    return targets

def _same(centroids: np.ndarray, shown: np.ndarray) -> bool:
    return np.shape(centroids) == np.shape(shown) and np.array_equal(centroids, shown)

