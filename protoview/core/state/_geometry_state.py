"""The geometry of one moment (:class:`GeometryState`) and the rows of its joint map
(:class:`JointRows`): samples, class centers, proxies and prototypes, in that order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The blocks of the joint map, in the order their rows are stacked.
BLOCKS = ("samples", "centers", "proxies", "prototypes")


@dataclass(frozen=True)
class JointRows:
    """How many rows each block holds in the joint map (samples first, then class centers,
    proxies and prototypes), and where each block starts: the one place that knows the
    order, instead of offset arithmetic at every use.

    ``rows.slice("proxies")`` are the proxies' rows of any (N + C + M + K, ...) array;
    ``rows.split(array)`` cuts one into its four blocks; ``rows.mask("prototypes")`` is a
    (N + C + M + K,) bool mask of one block.
    """

    samples: int
    centers: int
    proxies: int
    prototypes: int

    @classmethod
    def of(cls, state: GeometryState) -> JointRows:
        return cls(state.num_samples, len(state.centers), len(state.proxies),
                   len(state.prototypes))

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        return (self.samples, self.centers, self.proxies, self.prototypes)

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def slice(self, block: str) -> slice:
        """The rows of ``block`` (one of :data:`BLOCKS`)."""
        index = BLOCKS.index(block)
        start = sum(self.sizes[:index])
        return slice(start, start + self.sizes[index])

    def mask(self, *blocks: str) -> np.ndarray:
        """(total,) bool: True on the rows of ``blocks``."""
        out = np.zeros(self.total, bool)
        for block in blocks:
            out[self.slice(block)] = True
        return out

    def split(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """The four blocks of a (total, ...) array, by name (views, not copies)."""
        return {block: array[self.slice(block)] for block in BLOCKS}

    def with_prototypes(self, k: int) -> JointRows:
        return JointRows(self.samples, self.centers, self.proxies, int(k))


@dataclass
class GeometryState:
    """Everything the map shows at one step. Arrays are numpy; -1 marks unknown labels.

    features (N, D) float32; logits (N, C) float32 or None; labels, predictions (N,) int64;
    confidence, entropy (N,) float32; centers (C, D) and center_labels (C,) (C = 0 when
    no label is known: unlabelled target data has no class centers);
    proxies (M, D) and proxy_classes (M,); prototypes (K, D), prototype_density (K,)
    (K may be 0); embedding (N, 2) and *_embedding for the small sets (NaN when no map);
    assignment (N,) int64 or None, indices of ``assignment_target``.
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
    #: what ``assignment``'s codes index: ``prototypes`` (k-means, or Sinkhorn to them),
    #: or ``proxies`` / ``centers`` (Sinkhorn to those: the codes are classes)
    assignment_target: str = "prototypes"
    metrics: dict[str, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    map_held: np.ndarray | None = None  # (rows.total,) bool: kept in place by the last update
    map_knn: tuple | None = None  # (indices, dists) of the map's k-NN graph, for the next update
    map_fitted: np.ndarray | None = None  # joint rows the layout was fitted on (large maps), else None

    @property
    def num_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def rows(self) -> JointRows:
        """The blocks of the joint map (see :class:`JointRows`)."""
        return JointRows.of(self)

    @property
    def labels_known(self) -> str:
        """``"all"``, ``"some"`` or ``"none"``: how many samples have a known label."""
        return labels_known(self.labels)

    def joint_vectors(self) -> np.ndarray:
        """The (rows.total, D) vectors in the order of the joint map."""
        return np.concatenate([self.features, self._joint_tail()])

    def joint_rows(self) -> Any:
        """The joint vectors as :meth:`joint_vectors`, read on demand
        (:class:`~protoview.core.projection.StackedRows`: no stacked copy of the features)."""
        from protoview.core.projection import StackedRows

        return StackedRows(self.features, self._joint_tail())

    def _joint_tail(self) -> np.ndarray:
        """The centers, proxies and prototypes (rows after the samples in the joint map)."""
        d = self.features.shape[1]
        return np.concatenate([np.asarray(b).reshape(-1, d) for b in
                               (self.centers, self.proxies, self.prototypes)])

    def anchors_after(self, anchors: np.ndarray | None, *, shared: bool) -> np.ndarray:
        """Each joint row's anchor once this map is drawn from ``anchors`` (the previous
        ones, or None): a point held in place keeps its anchor, a moved one is anchored at
        its vector now; without usable anchors, the joint vectors. Only the moved rows are
        read and written, in ``anchors`` itself unless ``shared`` (someone else holds
        them: written in a copy)."""
        held, shape = self.map_held, (self.rows.total, self.features.shape[1])
        if anchors is None or held is None or anchors.shape != shape:
            return self.joint_vectors()
        if shared:
            anchors = anchors.copy()
        moved = np.flatnonzero(~held)
        anchors[moved] = self.joint_rows()[moved]
        return anchors

    def joint_embedding(self) -> np.ndarray:
        """The (rows.total, 2) layout in the order of the joint map."""
        return np.concatenate([self.embedding, self.centers_embedding, self.proxies_embedding,
                               self.prototypes_embedding])

    def summary(self) -> str:
        acc = self.metrics.get("accuracy")
        if self.labels_known == "none":
            acc_s = ", no labels (accuracy unknown)"
        else:
            acc_s = f", accuracy {acc:.1%}" if acc is not None and np.isfinite(acc) else ""
        return (
            f"{self.num_samples:,} samples, {int((~self.empty_centers()).sum())} centers, "
            f"{len(self.proxies)} proxies, {len(self.prototypes)} prototypes{acc_s}"
        )

    def empty_centers(self) -> np.ndarray:
        """(C,) bool: the centers whose class has no labelled sample (their vectors are
        zeros standing in for NaN; the window draws, names and counts none of them)."""
        classes = np.asarray(self.center_labels, np.int64)
        known = np.asarray(self.labels, np.int64)
        known = known[known >= 0]
        size = int(max(classes.max(initial=-1), known.max(initial=-1))) + 1
        return np.bincount(known, minlength=size)[classes] == 0

def labels_known(labels: np.ndarray) -> str:
    """``"all"``, ``"some"`` or ``"none"`` of ``labels`` (N,) are known (``>= 0``).

    ``"none"`` is unlabelled target data, the usual test-time-adaptation setting: then there
    are no class centers and no accuracy-type numbers (they show as "no labels").
    """
    known = int(np.count_nonzero(np.asarray(labels) >= 0))
    return "none" if known == 0 else ("all" if known == np.asarray(labels).size else "some")
