"""The requests of a session: frozen values, each naming one thing to do.

The window's panels and the command line build them; :class:`~protoview.core.session.Session`
carries them out (:meth:`~protoview.core.session.Session.run`). A request reads no widget and
holds no model: it can be queued, compared and shown (the window keeps the request behind
each result it shows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OpenRequest:
    """What to open. checkpoint: a path, or ``demo`` / ``demo:linear`` / ``demo:cosine``;
    data: any dataset spec of :func:`protoview.core.data.open_dataset`; arch, trust,
    nb_proxy, split: as the command line's ``--arch`` ...; preprocess: ``--preprocess``
    (None: the model's own, see :mod:`protoview.core.preprocess`); features, dino_weights: a
    self-supervised encoder's ``--features backbone|projection`` and
    ``--dino-weights teacher|student``."""

    checkpoint: str = "demo:cosine"
    data: str = "demo:noise:3"
    arch: str | None = None
    trust: bool = False
    nb_proxy: int | None = None
    split: str | None = None
    device: str | None = None
    seed: int = 0
    adapt: bool = False  # True: refuse data that cannot be adapted (features files) at once
    preprocess: str | None = None
    decoded: str = "auto"  # image folders decoded once: auto | memory | disk | off
    class_order: str = "auto"  # --class-order: auto | data | pycil[:SEED] | FILE
    features: str = "backbone"  # an encoder's feature space: backbone | projection
    dino_weights: str | None = None  # a DINO checkpoint's network: teacher | student


@dataclass(frozen=True)
class StepRequest:
    """Adaptation steps. method: a registered method (``protoview.core.adapt.registry.method_names()``); params go to
    the adapter (e.g. lr, filter_K, lam, update, variant); n_steps <= 0 means one pass;
    stream: the test stream as ``--stream`` text (``online``, ``episodic``, ``continual``,
    ``sorted``, ``dirichlet=0.1`` and their combinations, see
    :mod:`protoview.core.adapt.stream`).

    live: False (the command line): the map and the exact full-set accuracy are refreshed
    after the request (every ``record_every`` steps when > 0) and at the end of each pass.
    True (the window): each step moves only its batch's points; the rest is left to
    :meth:`Session.refresh_some` (the probe too). probe_size: samples of the stratified
    probe whose accuracy estimates the full-set accuracy at every step (rounded up to
    whole batches; 0: none); changing it does not start a new run.
    """

    method: str = "tsd"
    n_steps: int = 1
    batch_size: int = 64
    seed: int = 0
    params: tuple[tuple[str, Any], ...] = ()
    #: None: the data's own order (file order for CIFAR-10-C, as RobustBench and tent; else
    #: shuffled with ``seed``: :func:`protoview.core.adapt.stream.run_order`)
    shuffle: bool | None = None
    record_every: int = 0  # > 0: refresh the map and keep a timeline frame every K steps
    live: bool = False
    probe_size: int = 1000
    stream: str = "online"
    #: labelled source data (any ``open_dataset`` spelling) for a method that needs them
    #: (RMT); opened with the test data's preprocessing. "": none.
    source_data: str = ""

    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class RefreshRequest:
    """The exact map and full-set accuracy of the current model, now (completes the
    progressive refresh; the samples already refreshed for this step are not run again)."""


@dataclass(frozen=True)
class KMeansRequest:
    k: int = 10
    niter: int = 20
    nredo: int = 5
    seed: int = 0
    init: str = "auto"  # auto (by size) | pcl (PCL's faiss seeding; old name: random) | kmeans++


@dataclass(frozen=True)
class SinkhornRequest:
    target: str = "prototypes"  # prototypes | proxies | centers
    epsilon: float = 0.05
    n_iters: int = 3


@dataclass(frozen=True)
class ForgetRunsRequest:
    """Forget every run but the current one (their curves leave the chart)."""


@dataclass(frozen=True)
class ResetRequest:
    """Back to the source model and its launch map (the current run ends, kept in ``runs``)."""


@dataclass(frozen=True)
class GeometryRequest:
    """The geometry of the current model's feature space, measured (the window's Geometry
    view; ``protoview geometry`` measures a checkpoint): neural collapse, k-NN and
    nearest-center accuracy beside the head's, k-means NMI / ARI and the groups with the
    most errors, and CKA against the source model when a run has adapted it (see
    :func:`protoview.core.measures.measure_geometry`). The map is refreshed first (every
    sample holds the current model's features). The knobs are ``protoview geometry``'s:
    kmeans_k None: the head's classes; knn_queries / rbf_samples 0: every sample."""

    kmeans_k: int | None = None
    knn_k: int = 20
    knn_temperature: float = 0.07
    knn_queries: int = 10_000
    rbf_samples: int = 3000
    seed: int = 0
