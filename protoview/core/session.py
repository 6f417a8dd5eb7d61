"""A session: the model, the data, the current geometry and the run's history.

The GUI's compute worker and the CLI drive the same object through frozen requests
(:class:`OpenRequest`, :class:`StepRequest`, :class:`RefreshRequest`,
:class:`KMeansRequest`, :class:`SinkhornRequest`). Each method is a plain function of the
request that reads no widget; it returns a :class:`GeometryState` (numpy arrays only) for
the view to draw. Long methods take ``progress(done, total)`` and ``cancel() -> bool``; a
cancelled step leaves the session at the last completed step.

Live steps (``StepRequest(live=True)``, the window's): a step moves its batch's points at
once, from the step's own forward pass; the other samples are refreshed to the new model
batch by batch by :meth:`Session.refresh_some` (the window's worker calls it between and
after steps), the stratified probe first (its accuracy, with a 95% interval, estimates
the full-set accuracy of every step). ``state.metrics`` then says which step the map
shows and how much of it is refreshed (``map_step``, ``refreshed``); ``accuracy`` (the
exact full-set accuracy) is there only once the refresh is complete. :meth:`Session.refresh`
(or a :class:`RefreshRequest`) completes it at once; steps that are not live do so after
each request (and at the end of each pass), as the command line wants.

Runs side by side: a step with another method, parameter, batch size, seed or stream
starts a new run from the source model, and the session keeps the earlier ones
(:attr:`Session.runs`, :class:`~protoview.core.runs.RunRecord`: settings, history and the
predictions of their latest map); ``history`` and ``timeline`` are the current run's.
:meth:`Session.reset` ends the current run (it stays in ``runs``);
:meth:`Session.forget_runs` drops the others. A snapshot holds all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from protoview.core.runs import (  # the window reads runs through the session
    VERSUS_NAMES,  # noqa: F401
    HistoryRow,
    RunRecord,
    history_columns,
    rows_from_columns,  # noqa: F401
    run_from_snapshot,  # noqa: F401
    run_to_snapshot,
    versus_codes,  # noqa: F401
)
from protoview.core.state import (
    GeometryState,
    compute_geometry,
    joint_embedding,
    joint_vectors,
    layout_with_new_prototypes,
)
from protoview.errors import ParameterError

Progress = Callable[[int, int], None] | None
Cancel = Callable[[], bool] | None


@dataclass(frozen=True)
class OpenRequest:
    """What to open. checkpoint: a path, or ``demo`` / ``demo:linear`` / ``demo:cosine``;
    data: any dataset spec of :func:`protoview.core.data.open_dataset`; arch, trust,
    nb_proxy, split: as the command line's ``--arch`` ...; preprocess: ``--preprocess``
    (None: the model's own, see :mod:`protoview.core.preprocess`)."""

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


@dataclass(frozen=True)
class StepRequest:
    """Adaptation steps. method: any of ``protoview.core.adapt.METHOD_NAMES``; params go to
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
    shuffle: bool = True
    record_every: int = 0  # > 0: refresh the map and keep a timeline frame every K steps
    live: bool = False
    probe_size: int = 1000
    stream: str = "online"

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
    init: str = "random"  # random (PCL, faiss) | kmeans++


@dataclass(frozen=True)
class SinkhornRequest:
    target: str = "prototypes"  # prototypes | proxies | centers
    epsilon: float = 0.05
    n_iters: int = 3


@dataclass(frozen=True)
class ForgetRunsRequest:
    """Forget every run but the current one (their curves leave the chart)."""


@dataclass
class Session:
    """State of one open model + dataset. Create with :meth:`open`."""

    model: Any = None
    dataset: Any = None
    features: Any = None  # FeatureResult of the current model
    state: GeometryState | None = None
    source_accuracy: float = float("nan")
    history: list[HistoryRow] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    request: OpenRequest | None = None
    _run: Any = None
    _run_key: tuple | None = None
    _kmeans: Any = None
    _sinkhorn: Any = None
    _map_anchors: Any = None
    _live: Any = None  # ProgressiveRefresh of the run's current model
    device: str | None = None
    runs: list[RunRecord] = field(default_factory=list)
    current_run: RunRecord | None = None
    source_predictions: np.ndarray | None = None  # (N,) the unadapted model's, at open
    _runs_started: int = 0

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, req: OpenRequest, progress: Progress = None, cancel: Cancel = None) -> Session:
        model, dataset = open_model_and_data(req)
        from protoview.core.data import decoded_images

        dataset = decoded_images(dataset, req.decoded)
        session = cls(model=model, dataset=dataset, request=req, device=req.device)
        if req.adapt:
            session._check_adaptable()
        session._snapshot_source()
        session.refresh(progress=progress, cancel=cancel, fresh_map=True)
        session.source_accuracy = session.state.metrics.get("accuracy", float("nan"))
        session.source_predictions = session.state.predictions.copy()
        return session

    def _snapshot_source(self) -> None:
        import copy

        self._source_state = copy.deepcopy(self.model.state_dict())

    # ------------------------------------------------------------------ geometry
    def refresh(
        self, progress: Progress = None, cancel: Cancel = None, fresh_map: bool = False
    ) -> GeometryState:
        """The exact features of the current model, and the map updated to them (stable).

        With an adaptation run this completes its progressive refresh: the samples already
        refreshed for the current step are not run again. Cancellable during the
        extraction and the map; a cancelled refresh changes nothing that is shown
        (features, state and anchors are replaced together at the end)."""
        features = self._exact_features(progress, cancel)
        return self._set_map(features, fresh_map=fresh_map, cancel=cancel)

    def _exact_features(self, progress: Progress, cancel: Cancel):
        from protoview.core.features import extract_features

        if self.is_feature_file:
            return self._precomputed_features()
        if self._live is None:
            features = extract_features(
                self.model, self.dataset, batch_size=None, device=self.device,
                progress=progress, cancel=cancel,
            )
            if features.fell_back:
                self.device = "cpu"  # the GPU failed: the rest of the session runs on the CPU
            return features
        # The adapted model as the run sees it (batch statistics for BN-based methods),
        # so the map's accuracy is the run's full-set accuracy.
        t0 = time.perf_counter()
        left = int((~self._live.fresh).sum())
        self._live.advance(until="all", cancel=cancel, progress=progress)
        self._note_accuracy()
        return self._live_features(time.perf_counter() - t0, left)

    def _live_features(self, seconds: float = 0.0, computed: int = 0):
        """The run's features as they are now (a FeatureResult; not all fresh while a
        refresh is under way)."""
        from protoview.core.features import FeatureResult

        live = self._live
        feats, logits, labels = live.arrays()
        note = f"features of the model adapted by {self._run_key[0]} at step {live.step}"
        if not live.complete:
            note += f" ({live.fraction:.0%} refreshed)"
        return FeatureResult(
            feats, logits, labels, device=str(self.device or "auto"), seconds=seconds,
            images_per_second=computed / max(seconds, 1e-9), notes=[note], attrs={},
        )

    def _set_map(self, features, fresh_map: bool = False, cancel: Cancel = None) -> GeometryState:
        from protoview.core.heads import head_proxies

        vectors, classes = head_proxies(self.model.classifier)
        prev = None if fresh_map or self.state is None else joint_embedding(self.state)
        anchors = self._map_anchors if prev is not None else None
        protos = self._kmeans
        new_rows = None
        if prev is not None and protos is not None and not (
                np.shape(protos.centroids) == self.state.prototypes.shape
                and np.array_equal(protos.centroids, self.state.prototypes)):
            # new k-means prototypes: the samples stay where they are, the prototypes join
            prev, anchors, new_rows = layout_with_new_prototypes(
                self.state, protos.centroids, anchors)
        state = compute_geometry(
            features.features,
            features.labels,
            logits=features.logits,
            proxies=vectors.detach().float().cpu().numpy(),
            proxy_classes=classes.cpu().numpy(),
            prototypes=None if protos is None else protos.centroids,
            prototype_density=None if protos is None else protos.density,
            num_classes=self.model.info.head.num_classes if self.model.info else None,
            previous_embedding=prev,
            anchor_vectors=anchors,
            previous_knn=None if prev is None else self.state.map_knn,
            new_rows=new_rows,
            seed=self.request.seed if self.request else 0,
            cancel=cancel,
        )
        self.features, self.state = features, state
        if protos is not None:
            self.state.assignment = protos.assignments
        # each point's anchor: its vectors when its map position was last set
        joint = joint_vectors(self.state)
        held = self.state.map_held
        if anchors is None or held is None or anchors.shape != joint.shape:
            self._map_anchors = joint
        else:
            self._map_anchors = np.where(held[:, None], anchors, joint)
        self._describe_state()
        self._describe_freshness()
        run, live = self.current_run, self._live
        if run is not None and live is not None:
            run.predictions = self.state.predictions
            run.predictions_step, run.predictions_refreshed = live.step, live.fraction
        return self.state

    def _describe_freshness(self) -> None:
        """metrics: map_step and refreshed (with a run); the probe's estimate; accuracy
        only when every sample holds the current model's features."""
        live, metrics = self._live, self.state.metrics
        if live is None:
            return
        metrics["map_step"] = float(live.step)
        metrics["refreshed"] = live.fraction
        if not live.complete:
            metrics.pop("accuracy", None)  # a mix of models' predictions is no accuracy
        probe = live.probe()
        if probe is not None:
            metrics.update(
                probe_accuracy=probe.accuracy, probe_low=probe.low, probe_high=probe.high,
                probe_size=float(probe.size), probe_population=float(probe.population),
            )

    # ------------------------------------------------------------------ progressive refresh
    @property
    def refresh_pending(self) -> bool:
        """True while some sample does not hold the current model's features yet."""
        return self._live is not None and not self._live.complete

    @property
    def probe_pending(self) -> bool:
        """True while the probe's estimate of the current step is not computed."""
        return (
            self._live is not None and self._live.probe_batches > 0
            and not self._live.probe_complete
        )

    @property
    def at_pass_end(self) -> bool:
        """True when the last step ended a pass over the data."""
        run = self._run
        return run is not None and bool(run.history) and run.position >= run.steps_per_pass

    def refresh_some(
        self, seconds: float | None = 0.5, until: str = "all", cancel: Cancel = None
    ) -> GeometryState | None:
        """Refresh samples to the current model for about ``seconds`` (at least one batch;
        None: until ``until`` is done), the probe first, then update the map (anchored:
        only the refreshed points move). Returns the new state, or None when there was
        nothing to do. ``until``: ``"all"`` or ``"probe"``. ``cancel`` stops between
        batches (raising :class:`~protoview.errors.CancelledError`; the batches done are
        kept and shown by the next map)."""
        live = self._live
        if live is None or live.complete or (until == "probe" and not self.probe_pending):
            return None
        t0 = time.perf_counter()
        left = int((~live.fresh).sum())
        live.advance(until=until, seconds=seconds, cancel=cancel)
        self._note_accuracy()
        done = left - int((~live.fresh).sum())
        return self._set_map(self._live_features(time.perf_counter() - t0, done), cancel=cancel)

    def _note_accuracy(self) -> None:
        """Copy the probe's estimate and the exact accuracy of the current step into its
        history row."""
        live = self._live
        if live is None or not self.history or self.history[-1].step != live.step:
            return
        row = self.history[-1]
        probe = live.probe()
        if probe is not None:
            row.probe_accuracy, row.probe_low, row.probe_high = probe.accuracy, probe.low, probe.high
            row.probe_size = probe.size
        exact = live.exact_accuracy()
        if exact is not None:
            row.full_accuracy = exact

    def _check_adaptable(self) -> None:
        if self.is_feature_file:
            raise ParameterError(
                "data",
                f"{self.dataset.source} holds precomputed features: adaptation changes the "
                "featurizer, so it needs the images (open the image dataset instead)",
            )

    @property
    def is_feature_file(self) -> bool:
        """True when the data are precomputed features (nothing to extract or adapt)."""
        from protoview.core.data import FeatureSet

        return isinstance(self.dataset, FeatureSet)

    def _precomputed_features(self):
        """A features file: its features, and its logits (or the head's on its features)."""
        import torch

        from protoview.core.features import FeatureResult
        from protoview.errors import DatasetError

        fs = self.dataset
        feats = np.asarray(fs.features, np.float32)
        head_dim = self.model.info.head.feature_dim if self.model.info else feats.shape[1]
        if feats.shape[1] != head_dim:
            raise DatasetError(
                fs.source,
                f"features have {feats.shape[1]} dimensions but the checkpoint's head expects "
                f"{head_dim}: were they extracted with another model?",
            )
        if fs.logits is not None:
            logits = np.asarray(fs.logits, np.float32)
        else:
            with torch.inference_mode():
                head = self.model.classifier.float().cpu()
                logits = head(torch.from_numpy(feats)).float().numpy()
        return FeatureResult(
            feats, logits, np.asarray(fs.labels, np.int64), device="file",
            notes=[f"features read from {fs.source}"],
        )

    def _describe_state(self) -> None:
        from protoview.core.data import preprocess_attrs

        info = self.model.info
        self.state.attrs.update(
            checkpoint=info.path if info else "",
            checkpoint_sha256=info.sha256 if info else "",
            dataset=getattr(self.dataset, "description", ""),
            step=self.history[-1].step if self.history else 0,
            **preprocess_attrs(self.dataset),
            **self._run_attrs(),
        )

    def input_preview(self, index: int = 0):
        """Sample ``index`` as stored and as the model sees it, with its preprocessing.

        Returns (thumbnail uint8, model input as uint8 pixels, (min, max) of the input's
        values, the transform's description), or None for precomputed features.
        """
        if self.is_feature_file or not hasattr(self.dataset, "preview"):
            return None
        thumb, seen, (low, high) = self.dataset.preview(int(index))
        return thumb, seen, (low, high), self.dataset.transform.describe()

    def _run_attrs(self) -> dict[str, Any]:
        """``method`` and ``params`` of the run the model is at (``none``, ``{}``: the
        source model), so that a refresh after the steps (k-means, a map) records the
        run, not the default."""
        run = self.current_run
        if run is None:
            return {"method": "none", "params": {}}
        return {"method": run.method, "params": {**run.params, "batch_size": run.batch_size,
                                                 "seed": run.seed, "shuffle": run.shuffle,
                                                 "stream": run.stream}}

    # ------------------------------------------------------------------ adaptation
    def _ensure_run(self, req: StepRequest):
        from protoview.core.adapt.baselines import make_adapter
        from protoview.core.adapt.refresh import ProgressiveRefresh
        from protoview.core.adapt.run import AdaptRun
        from protoview.core.adapt.stream import parse_stream, stream_order

        self._check_adaptable()
        stream = parse_stream(req.stream)
        key = (req.method, req.batch_size, req.seed, req.params, req.shuffle, stream.text())
        if self._run is None or self._run_key != key:
            if stream.label_correlated:  # a stream that cannot be made leaves the run as it is
                labels = getattr(self.dataset, "labels", None)
                stream_order(stream, len(self.dataset), seed=req.seed, pass_index=0,
                             labels=labels, domains=getattr(self.dataset, "domains", None))
            # A different method or setting starts a new run from the source model; the
            # run before it is kept in self.runs (history and timeline are per run).
            if self._run is not None or self.history:
                self.model.load_state_dict(self._source_state)
            self._end_run()
            adapter = make_adapter(req.method, self.model, **req.param_dict())
            run = AdaptRun(
                adapter, self.dataset, batch_size=req.batch_size, seed=req.seed,
                shuffle=req.shuffle, stream=stream,
            )
            run.accelerate()  # CUDA only: channels-last, and AMP where it agrees with float32
            known = self.features
            self._live = ProgressiveRefresh(
                run, known.features, known.logits, known.labels, probe_size=req.probe_size
            )
            self._run, self._run_key = run, key
            self._runs_started += 1
            self.current_run = RunRecord(
                number=self._runs_started, method=req.method, params=req.param_dict(),
                batch_size=req.batch_size, seed=req.seed, shuffle=req.shuffle,
                stream=stream.text(), history=self.history, domain_names=run.domain_names,
            )
            self.runs.append(self.current_run)
        else:
            self._live.set_probe_size(req.probe_size)
        return self._run

    def _end_run(self) -> None:
        """The current run ends (kept in ``runs`` when it made a step); a new history and
        timeline start."""
        ended = self.current_run
        if ended is not None and not ended.history and ended in self.runs:
            self.runs.remove(ended)
        self.current_run = None
        self._run, self._run_key, self._live = None, None, None
        self.history, self.timeline = [], []

    def forget_runs(self) -> list[RunRecord]:
        """Drop every run but the current one; returns the runs left."""
        self.runs = [r for r in self.runs if r is self.current_run]
        return self.runs

    def step(
        self, req: StepRequest, progress: Progress = None, cancel: Cancel = None
    ) -> GeometryState:
        """Run ``req.n_steps`` adaptation steps (one pass if <= 0) and update the map.

        Each step moves its batch's points (the step's own features and online logits).
        Not live: after each step the probe is refreshed (its estimate goes into the
        history row), at the end of a pass the whole set (the exact full-set accuracy),
        and after the request (or every ``record_every`` steps) the whole set and the map.
        Live: after each ``record_every`` steps (default: the request) the map is updated
        from what is known; :meth:`refresh_some` does the rest.
        """
        run = self._ensure_run(req)
        live = self._live
        total = req.n_steps if req.n_steps > 0 else run.steps_per_pass
        chunk = req.record_every if req.record_every > 0 else total
        for done in range(total):
            record = run.run(1, cancel=cancel)[0]
            live.on_step(record)
            self.history.append(self._history_row(record))
            if progress:
                progress(done + 1, total)
            boundary = done + 1 == total or (done + 1) % chunk == 0
            if not req.live:
                if boundary:
                    self.refresh(cancel=cancel)
                elif self.at_pass_end:
                    live.advance(until="all", cancel=cancel)
                else:
                    live.advance(until="probe", cancel=cancel)
                self._note_accuracy()
            elif boundary:
                self._set_map(self._live_features(), cancel=cancel)
            if boundary:
                self._describe_state()
                self._record_frame()
        return self.state

    @staticmethod
    def _history_row(rec) -> HistoryRow:
        domain = -1
        if rec.batch_domains is not None and len(rec.batch_domains):
            domain = int(np.bincount(np.asarray(rec.batch_domains, np.int64)).argmax())
        return HistoryRow(
            rec.step,
            rec.cumulative_accuracy,
            rec.online_accuracy,
            float("nan"),
            rec.seconds,
            batch_indices=np.asarray(rec.batch_indices, np.int64),
            online_predictions=np.asarray(rec.online_predictions, np.int64),
            online_logits=np.asarray(rec.online_logits, np.float32),
            loss=float("nan") if rec.loss is None else float(rec.loss),
            domain=domain,
            domain_start=rec.domain_starts[0] if rec.domain_starts else -1,
        )

    def reset(self) -> GeometryState:
        """Back to the source model: the current run ends (it stays in ``runs``), the
        history starts empty; the map updates from where it is."""
        self.model.load_state_dict(self._source_state)
        if self._run is not None:
            self._run.reset()
        self._end_run()
        return self.refresh()

    def _record_frame(self) -> None:
        s = self.state
        self.timeline.append(
            {
                "step": self.history[-1].step if self.history else 0,
                "embedding": s.embedding.copy(),
                "predictions": s.predictions.copy(),
                "centers_embedding": s.centers_embedding.copy(),
                "proxies_embedding": s.proxies_embedding.copy(),
                "prototypes_embedding": s.prototypes_embedding.copy(),
                "accuracy": float(s.metrics.get("accuracy", float("nan"))),
            }
        )

    # ------------------------------------------------------------------ clustering
    def kmeans(
        self, req: KMeansRequest, progress: Progress = None, cancel: Cancel = None
    ) -> GeometryState:
        from protoview.core.cluster import kmeans_prototypes
        from protoview.core.metrics import clustering_scores

        features = self.features
        if self.refresh_pending:  # prototypes of the current model's features, not a mix
            features = self._exact_features(progress, cancel)
        km = kmeans_prototypes(
            features.features, req.k, niter=req.niter, nredo=req.nredo, seed=req.seed,
            init=req.init,
        )
        before, self._kmeans = self._kmeans, km
        try:
            # anchored, as a step: the samples keep their place, the prototypes are placed
            state = self.refresh(progress=progress, cancel=cancel)
        except BaseException:
            self._kmeans = before  # a cancelled (or failed) map leaves the old prototypes
            raise
        state.metrics["kmeans_seconds"] = km.seconds
        labels = self.features.labels
        if (labels >= 0).any():
            known = labels >= 0
            state.metrics.update(clustering_scores(km.assignments[known], labels[known]))
        return state

    def sinkhorn(self, req: SinkhornRequest) -> GeometryState:
        from protoview.core.sinkhorn import sinkhorn_assign

        s = self.state
        targets = {"prototypes": s.prototypes, "proxies": s.proxies, "centers": s.centers}.get(
            req.target
        )
        if targets is None:
            raise ParameterError(
                "target", f"unknown target {req.target!r}: use prototypes, proxies or centers"
            )
        if len(targets) == 0 and req.target == "centers":
            raise ParameterError("target", "there are no class centers: no sample has a known label (use proxies or prototypes)")
        if len(targets) == 0:
            raise ParameterError("target", f"there are no {req.target} yet (run k-means first)")
        res = sinkhorn_assign(s.features, targets, epsilon=req.epsilon, n_iters=req.n_iters)
        if req.target == "proxies":
            s.assignment = s.proxy_classes[res.assignments]
        else:
            s.assignment = res.assignments
        self._sinkhorn = (req, res)
        s.metrics["sinkhorn_seconds"] = res.seconds
        return s

    # ------------------------------------------------------------------ export
    def to_snapshot(self):
        from protoview.core.state import state_to_snapshot

        snap = state_to_snapshot(self.state)
        snap.history = history_columns(self.history)
        if "online_logits" in snap.history:
            snap.metrics["num_logits"] = int(self.history[0].online_logits.shape[1])
        snap.runs = [run_to_snapshot(r, r is self.current_run) for r in self.runs]
        source = self.source_predictions
        if source is not None and len(source) == len(snap.samples["labels"]):
            snap.samples["source_predictions"] = np.asarray(source, np.int64)
        names = tuple(getattr(self.dataset, "domain_names", ()) or ())
        domains = getattr(self.dataset, "domains", None)
        if names and domains is not None and len(domains) == len(snap.samples["labels"]):
            snap.samples["domain"] = np.asarray(domains, np.int64)
            snap.attrs["domain_names"] = json.dumps(list(names))
        snap.metrics["source_accuracy"] = float(self.source_accuracy)
        snap.timeline = [dict(f) for f in self.timeline]
        if self._sinkhorn is not None:
            req, res = self._sinkhorn
            snap.assignment = {"Q": res.Q}
            snap.assignment_attrs = asdict(req)
        return snap


def open_model_and_data(req: OpenRequest, *, warn: bool = True) -> tuple[Any, Any]:
    """The model and the dataset of ``req``, fitted to each other (see
    :func:`protoview.core.opening.open_model_and_data`)."""
    from protoview.core.opening import open_model_and_data as opener

    return opener(
        req.checkpoint, req.data, arch=req.arch, trust=req.trust, nb_proxy=req.nb_proxy,
        split=req.split, preprocess=req.preprocess, warn=warn,
    )


def method_defaults(method: str) -> dict[str, Any]:
    """The parameters of an adaptation method with their defaults (for the window's controls).

    See :func:`protoview.core.adapt.adapter_defaults`; an unknown method raises
    :class:`~protoview.errors.ParameterError`.
    """
    from protoview.core.adapt.baselines import adapter_defaults

    return adapter_defaults(method)


def warm_up(message: Callable[[str], None] = lambda text: None) -> float:
    """Pay the one-time costs of a session before the first click; returns seconds taken.

    The map engine's compilation (:func:`protoview.core.projection.warm_up`) and torch's
    first optimiser step (:func:`protoview.core.adapt.warm_up`). The window runs it on its
    worker at start-up.
    """
    from protoview.core.adapt import warm_up as warm_up_adaptation
    from protoview.core.projection import warm_up as warm_up_map

    return warm_up_map(message) + warm_up_adaptation()
