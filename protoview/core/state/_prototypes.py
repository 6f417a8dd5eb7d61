"""A self-supervised model's own prototypes on the map: SwAV's and DeepCluster-v2's
``prototypes`` rows, DINO's weight-normalised ``last_layer``.

They live in the projection head's output space (SwAV: ``normalize(projection_head(h))``,
DINO: ``normalize(mlp(h))``), so they are placed on the map only when its features are that
space (``--features projection``). With ``--features backbone`` (the default) they are not
placed: the backbone's space is not theirs, and there is no faithful place for a prototype
there (``info`` says so; ``--features projection`` shows them).

The samples' codes are SwAV's: the scores ``z @ prototypes.T`` of the projections ``z`` (as
``self.prototypes(x)`` in ``src/resnet50.py`` and DINO's ``last_layer``), made a balanced
assignment by :func:`protoview.core.sinkhorn.sinkhorn_knopp` (``exp(scores / eps)``,
eps 0.05, 3 iterations, as ``main_swav.py``'s ``distributed_sinkhorn`` on one process, over
the whole dataset as its batch). The map's assignment is each sample's largest code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: SwAV's defaults (main_swav.py: --epsilon 0.05, --sinkhorn_iterations 3)
SWAV_EPSILON, SWAV_ITERATIONS = 0.05, 3


@dataclass(frozen=True)
class ModelPrototypes:
    """The model's prototypes as the map holds them (the fields a k-means result gives the
    map: ``centroids``, ``density``, ``assignments``) and the codes behind the assignment.

    centroids: (K, P) float32, the prototype rows (set ``index`` of the model's);
    density: (K,) float32 zeros (no PCL concentration); assignments: (N,) int64, each
    sample's largest SwAV code; codes: the SinkhornResult (``Q`` (N, K)); method: the
    model's (``"SwAV"``, ``"DINO"`` ...); seconds: projection, scores and Sinkhorn.
    """

    centroids: np.ndarray
    density: np.ndarray
    assignments: np.ndarray
    codes: Any
    method: str
    seconds: float


def projections(model: Any, features: np.ndarray, batch: int = 4096) -> np.ndarray:
    """(N, P) float32: the features in the prototypes' space (``model.project``, on the CPU,
    in float32, in batches)."""
    head = model.projection
    was = head.training
    head.eval()
    out = []
    try:
        with torch.inference_mode():
            device = next(iter(head.buffers()), torch.zeros(0)).device
            for start in range(0, len(features), batch):
                x = torch.as_tensor(np.asarray(features[start:start + batch], np.float32), device=device)
                out.append(model.project(x).float().cpu().numpy())
    finally:
        head.train(was)
    return np.concatenate(out) if out else np.zeros((0, head.prototypes().shape[1]), np.float32)


def prototype_scores(model: Any, features: np.ndarray, index: int = 0) -> torch.Tensor:
    """(N, K) float32 scores ``z @ W.T`` of the samples against the model's prototype set
    ``index`` (SwAV's ``output``, DINO's head output)."""
    z = torch.from_numpy(projections(model, features))
    weight = model.projection.prototypes(index).detach().float().cpu()
    return z @ weight.T


def swav_codes(model: Any, features: np.ndarray, *, epsilon: float = SWAV_EPSILON,
               n_iters: int = SWAV_ITERATIONS, index: int = 0) -> Any:
    """SwAV's codes of the samples: a :class:`~protoview.core.sinkhorn.SinkhornResult` of
    :func:`~protoview.core.sinkhorn.sinkhorn_knopp` on :func:`prototype_scores`."""
    from protoview.core.sinkhorn import SinkhornResult, sinkhorn_knopp

    start = time.perf_counter()
    plan = sinkhorn_knopp(prototype_scores(model, features, index), epsilon=epsilon,
                          n_iters=n_iters)
    q = plan.float().cpu().numpy()
    return SinkhornResult(Q=q, assignments=np.argmax(q, axis=1).astype(np.int64),
                          balance=(q.sum(axis=0, dtype=np.float64) / q.shape[0]).astype(np.float32),
                          seconds=time.perf_counter() - start)


def places_prototypes(model: Any) -> bool:
    """Whether the map of ``model``'s features shows its own prototypes (it has some and its
    features are their space)."""
    return bool(getattr(model, "has_prototypes", False)) and model.feature_space == "projection"


def model_prototypes(model: Any, features: np.ndarray) -> ModelPrototypes | None:
    """The model's prototypes for the map of ``features`` (N, D), with SwAV's codes; None
    when the map does not show them (see :func:`places_prototypes`)."""
    if not places_prototypes(model):
        return None
    start = time.perf_counter()
    codes = swav_codes(model, features)
    weight = model.projection.prototypes(0).detach().float().cpu().numpy()
    info = getattr(model, "info", None)
    method = info.encoder.method if info is not None and info.encoder is not None else "model"
    return ModelPrototypes(weight, np.zeros(len(weight), np.float32), codes.assignments, codes,
                           method, time.perf_counter() - start)
