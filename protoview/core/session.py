"""A session: the model, the data, their map, the adaptation runs.

The window's compute worker and the command line drive the same object through frozen
requests (:mod:`protoview.core.requests`): :meth:`Session.run` carries one out as a
generator of :class:`~protoview.core.updates.Update` (numpy arrays and numbers only, with
the request it answers), the window's worker emits each as it comes and the command line
keeps the last; :meth:`Session.step`, :meth:`Session.kmeans` ... are the same for scripts.
Long jobs take ``progress(done, total)`` and ``cancel() -> bool``; a cancelled job leaves
the session at its last completed step.

The session owns the pieces, each of which owns its state: :class:`~protoview.core.maps.SessionMap`
(the map shown, its anchors and k-means prototypes), :class:`~protoview.core.live.LiveRun`
(the current run: its adapter and stream, the progressive refresh, history and timeline,
and the step policy), and the source model's map (:attr:`Session.source`), which Reset and
every new run start from, bit for bit.

Runs side by side: a step with another method, parameter, batch size, seed or stream starts
a new run from the source model and its map; the session keeps the earlier ones
(:attr:`Session.runs`, :class:`~protoview.core.runs.RunRecord`); ``history`` and ``timeline``
are the current run's. :meth:`Session.reset` ends the current run (it stays in ``runs``);
:meth:`Session.forget_runs` drops the others. A snapshot holds all of them.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from protoview.core.live import Detail, LiveRun, run_key
from protoview.core.maps import Head, SavedMap, SessionMap
from protoview.core.opening import open_request
from protoview.core.requests import (
    ForgetRunsRequest,
    GeometryRequest,
    KMeansRequest,
    OpenRequest,
    RefreshRequest,
    ResetRequest,
    SinkhornRequest,
    StepRequest,
)
from protoview.core.runs import HistoryRow, RunRecord, history_columns, run_to_snapshot
from protoview.core.state import GeometryState
from protoview.core.updates import (
    DataView,
    Update,
    detached,
    detached_history,
    detached_runs,
)
from protoview.errors import ParameterError

Progress = Callable[[int, int], None] | None
Cancel = Callable[[], bool] | None


class Session:
    """State of one open model + dataset. Create with :meth:`open`."""

    def __init__(self, model: Any, dataset: Any, request: OpenRequest | None = None,
                 device: str | None = None) -> None:
        self.model, self.dataset, self.request, self.device = model, dataset, request, device
        self.map = SessionMap(seed=request.seed if request else 0)
        self.live: LiveRun | None = None  # the current run (None: the source model)
        self.runs: list[RunRecord] = []
        self.source: SavedMap | None = None  # the source model's map
        self.source_accuracy = float("nan")
        self.source_predictions: np.ndarray | None = None  # (N,) the unadapted model's
        self._source_weights = copy.deepcopy(model.state_dict())  # Reset and new runs
        self._runs_started = 0

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, req: OpenRequest, progress: Progress = None, cancel: Cancel = None,
             preview: bool = False) -> Session:
        """Open the model and data of ``req`` and draw their map; ``preview``: a quick PCA
        layout first (the window's first start, while the map engine compiles), the UMAP
        map by :meth:`finish_open`."""
        from protoview.core.data import decoded_images

        model, dataset = open_request(req)
        session = cls(model, decoded_images(dataset, req.decoded), request=req, device=req.device)
        if req.adapt:
            session.check_adaptable()
        session.refresh(progress=progress, cancel=cancel, fresh_map=True, preview=preview)
        session.source_accuracy = session.state.metrics.get("accuracy", float("nan"))
        session.source_predictions = session.state.predictions.copy()
        return session

    # ------------------------------------------------------------------ what is shown
    @property
    def state(self) -> GeometryState | None:
        """The map now (see :class:`~protoview.core.state.GeometryState`)."""
        return self.map.state

    @property
    def features(self) -> Any:
        """The FeatureResult the map was made of."""
        return self.map.features

    @property
    def history(self) -> list[HistoryRow]:
        return self.live.history if self.live is not None else []

    @property
    def timeline(self) -> list[dict[str, Any]]:
        return self.live.timeline if self.live is not None else []

    @property
    def current_run(self) -> RunRecord | None:
        return self.live.record if self.live is not None else None

    @property
    def refresh_pending(self) -> bool:
        """True while some sample does not hold the current model's features."""
        return self.live is not None and self.live.refresh_pending

    @property
    def probe_pending(self) -> bool:
        return self.live is not None and self.live.probe_pending

    @property
    def is_feature_file(self) -> bool:
        """True when the data are precomputed features (nothing to extract or adapt)."""
        from protoview.core.data import FeatureSet

        return isinstance(self.dataset, FeatureSet)

    # ------------------------------------------------------------------ jobs
    def run(self, request: Any, progress: Progress = None, cancel: Cancel = None,
            detail: Detail = None) -> Iterator[Update]:
        """Carry out ``request``, yielding an :class:`Update` after each part (a step's map,
        its probe, ...). The window's worker emits each; :meth:`step` and the others keep
        the last. ``detail(done, total, text)``: each phase of a step as it goes (see
        :meth:`LiveRun.steps`)."""
        t0 = time.perf_counter()
        if isinstance(request, StepRequest):
            for event in self._run_for(request).steps(request, progress, cancel, detail):
                yield self.update(event.kind, request, t0, event.partial, event.followed)
            return
        if isinstance(request, ResetRequest):
            self.reset()
            kind = "reset"
        elif isinstance(request, ForgetRunsRequest):
            self.forget_runs()
            kind = "runs"
        elif isinstance(request, RefreshRequest):
            self.refresh(progress=progress, cancel=cancel)
            kind = "refresh"
        elif isinstance(request, KMeansRequest):
            self.kmeans(request, progress=progress, cancel=cancel)
            kind = "kmeans"
        elif isinstance(request, SinkhornRequest):
            self.sinkhorn(request)
            kind = "sinkhorn"
        elif isinstance(request, GeometryRequest):
            measured = self.geometry(request, progress=progress, cancel=cancel, detail=detail)
            yield replace(self.update("geometry", request, t0), payload=measured)
            return
        else:
            raise TypeError(f"unknown request {request!r}")
        yield self.update(kind, request, t0)

    def background(self, seconds: float = 0.5, cancel: Cancel = None) -> Update | None:
        """One slice of the progressive refresh (the window's worker, when idle); None when
        there was nothing to refresh."""
        t0 = time.perf_counter()
        if self.refresh_some(seconds=seconds, cancel=cancel) is None:
            return None
        return self.update("refresh", RefreshRequest(), t0, partial=self.refresh_pending)

    def update(self, kind: str, request: Any = None, started: float | None = None,
               partial: bool = False, followed: bool = False) -> Update:
        """What the session shows now, detached (see :class:`Update`)."""
        history = detached_history(self.history)
        ds = self.dataset
        return Update(
            kind=kind, state=detached(self.state), history=history,
            runs=detached_runs(self.runs, self.current_run, history),
            current_run=0 if self.live is None else self.live.record.number,
            source_state=None if self.source is None else self.source.state,
            source_accuracy=float(self.source_accuracy),
            class_names=list(getattr(ds, "class_names", []) or []),
            thumbnail=getattr(ds, "thumbnail", None), request=request,
            data=DataView.of(ds, self.model) if kind == "open" else None,
            partial=partial, followed=followed,
            seconds=0.0 if started is None else time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ the map
    @property
    def map_pending(self) -> bool:
        """The map shown is the quick preview: :meth:`finish_open` draws the UMAP map."""
        return self.map.preview

    def finish_open(self, request: Any = None, progress: Progress = None,
                    cancel: Cancel = None) -> Iterator[Update]:
        """After an open with a preview: the UMAP map (fitted afresh), as an ``open`` Update;
        nothing otherwise."""
        if self.map_pending:
            t0 = time.perf_counter()
            self.refresh(progress=progress, cancel=cancel, fresh_map=True)
            yield self.update("open", request, t0)

    def refresh(self, progress: Progress = None, cancel: Cancel = None,
                fresh_map: bool = False, preview: bool = False) -> GeometryState:
        """The exact features of the current model, and the map updated to them (stable).

        With a run this completes its progressive refresh (the samples already refreshed
        for the current step are not run again); the source model's features are
        extracted once. ``fresh_map``: the map fitted afresh; ``preview``: the quick PCA
        layout instead (see :meth:`open`). Cancellable; a cancelled refresh changes nothing
        that is shown."""
        if self.live is not None:
            return self.live.show_complete(progress, cancel)
        features = self.map.features  # the source model's never change once extracted
        if features is None:
            features = self._source_features(progress, cancel)
            if self.map.kmeans is None:  # a self-supervised model's own prototypes
                from protoview.core.state import model_prototypes

                self.map.kmeans = model_prototypes(self.model, features.features)
        state = self._draw(features, fresh=fresh_map, cancel=cancel, preview=preview)
        own = self.map.kmeans
        if getattr(own, "codes", None) is not None and self.map.sinkhorn is None:
            from protoview.core.requests import SinkhornRequest

            state = self.map.set_assignment(own.assignments, SinkhornRequest("prototypes"),
                                            own.codes, sinkhorn_seconds=own.codes.seconds)
        if not preview:
            self.source = self.map.save()  # the source model's map, as Reset shows it
        return state

    def refresh_some(self, seconds: float | None = 0.5, until: str = "all",
                     cancel: Cancel = None) -> GeometryState | None:
        """Refresh samples to the current model for about ``seconds`` (None: until
        ``until``, ``"all"`` or ``"probe"``, is done), the probe first, then update the map;
        None when there was nothing to do (see :meth:`LiveRun.refresh_some`)."""
        if self.live is None:
            return None
        return self.live.refresh_some(seconds, until, cancel)

    def _draw(self, features: Any, fresh: bool = False, cancel: Cancel = None,
              preview: bool = False) -> GeometryState:
        """The map of ``features`` with the head's proxies (``preview``: the quick PCA
        layout), described (what it shows)."""
        from protoview.core.heads import head_proxies

        vectors, classes = head_proxies(self.model.classifier)
        info = self.model.info
        head = Head(vectors.detach().float().cpu().numpy(), classes.cpu().numpy(),
                    (info.head.num_classes or None) if info else None)
        state = (self.map.draw_preview(features, head) if preview
                 else self.map.draw(features, head, fresh=fresh, cancel=cancel))
        self._describe(state)
        return state

    def _describe(self, state: GeometryState) -> None:
        from protoview.core.data import preprocess_attrs

        info, run = self.model.info, self.current_run
        params = {} if run is None else {**run.params, "batch_size": run.batch_size,
                                         "seed": run.seed, "shuffle": run.shuffle,
                                         "stream": run.stream}
        state.attrs.update(
            checkpoint=info.path if info else "", checkpoint_sha256=info.sha256 if info else "",
            dataset=getattr(self.dataset, "description", ""),
            step=self.history[-1].step if self.history else 0,
            method="none" if run is None else run.method, params=params,
            **preprocess_attrs(self.dataset),
        )

    def _source_features(self, progress: Progress, cancel: Cancel) -> Any:
        from protoview.core.features import extract_features, precomputed_features

        if self.is_feature_file:
            return precomputed_features(self.dataset, self.model)
        features = extract_features(self.model, self.dataset, batch_size=None,
                                    device=self.device, progress=progress, cancel=cancel)
        if features.fell_back:
            self.device = "cpu"  # the GPU failed: the rest of the session runs on the CPU
        return features

    # ------------------------------------------------------------------ adaptation
    def step(self, req: StepRequest, progress: Progress = None,
             cancel: Cancel = None) -> GeometryState:
        """Run ``req.n_steps`` adaptation steps (one pass if <= 0) and update the map, as
        :meth:`LiveRun.steps` says (live: each step's batch moves at once and the rest is
        left to :meth:`refresh_some`; not live: the map is exact after the request)."""
        for _update in self.run(req, progress, cancel):
            pass
        return self.state

    def _run_for(self, req: StepRequest) -> LiveRun:
        """The run for ``req``: the current one when its settings match, else a new run from
        the source model and its map (the one before stays in ``runs``)."""
        self.check_adaptable()
        if self.live is not None and self.live.key == run_key(req):
            return self.live
        from protoview.core.adapt.stream import parse_stream, stream_plan

        # a stream or batch size that cannot be made leaves the run as it is
        stream, data = parse_stream(req.stream), self.dataset
        stream_plan(stream, len(data), seed=req.seed, pass_index=0,
                    labels=getattr(data, "labels", None), domains=getattr(data, "domains", None),
                    shifts=getattr(data, "domain_shifts", None),
                    severities=getattr(data, "domain_severities", None))
        if req.batch_size == 1:
            from protoview.core.adapt.registry import make_adapter
            from protoview.core.adapt.run import check_batch_size

            check_batch_size(make_adapter(req.method, self.model, **req.param_dict()), 1)
        self._back_to_source()
        self._runs_started += 1
        self.live = LiveRun(req, self.model, self.dataset, self.map.features, self._runs_started,
                            self._draw)
        self.runs.append(self.live.record)
        return self.live

    def _back_to_source(self) -> None:
        """The source model and its map; the current run ends (kept in ``runs`` when it made
        a step)."""
        if self.live is not None:
            self.model.load_state_dict(self._source_weights)
            if not self.live.history:
                self.runs.remove(self.live.record)
            self.live = None
        if self.source is not None:
            self._describe(self.map.restore(self.source))

    def reset(self) -> GeometryState:
        """Back to the source model and its launch map, bit for bit (the current run ends;
        it stays in ``runs``, the history starts empty)."""
        self._back_to_source()
        return self.state

    def forget_runs(self) -> list[RunRecord]:
        """Drop every run but the current one; returns the runs left."""
        self.runs = [r for r in self.runs if r is self.current_run]
        return self.runs

    def check_adaptable(self) -> None:
        """Raise ParameterError naming the data when they cannot be adapted on (features),
        or the checkpoint when it has no classifier head (a self-supervised encoder)."""
        from protoview.core.opening import check_has_head

        check_has_head(self.model)
        if self.is_feature_file:
            raise ParameterError(
                "data",
                f"{self.dataset.source} holds precomputed features: adaptation changes the "
                "featurizer, so it needs the images (open the image dataset instead)",
            )

    # ------------------------------------------------------------------ clustering
    def kmeans(self, req: KMeansRequest, progress: Progress = None,
               cancel: Cancel = None) -> GeometryState:
        """k-means prototypes of the current model's features (exact: a refresh under way
        is completed first), placed on the map where their members are."""
        from protoview.core.cluster import kmeans_prototypes
        from protoview.core.metrics import clustering_scores

        features = (self.live.complete(progress, cancel) if self.refresh_pending
                    else self.map.features)
        km = kmeans_prototypes(features.features, req.k, niter=req.niter, nredo=req.nredo,
                               seed=req.seed, init=req.init)
        before, self.map.kmeans = self.map.kmeans, km
        try:
            # anchored, as a step: the samples keep their place, the prototypes are placed
            state = self.refresh(progress=progress, cancel=cancel)
        except BaseException:
            self.map.kmeans = before  # a cancelled (or failed) map leaves the old prototypes
            raise
        state.metrics["kmeans_seconds"] = km.seconds
        state.attrs["kmeans"] = km.notes  # which path ran (the CLI and the status line say it)
        labels = self.features.labels
        if (labels >= 0).any():
            known = labels >= 0
            state.metrics.update(clustering_scores(km.assignments[known], labels[known]))
        return state

    def sinkhorn(self, req: SinkhornRequest) -> GeometryState:
        """Sinkhorn-Knopp balanced assignment of the samples to the prototypes, proxies or
        class centers (the map's ``assignment``: prototype indices, or classes)."""
        from protoview.core.sinkhorn import sinkhorn_assign

        s = self.state
        own = self.map.kmeans
        if req.target == "prototypes" and getattr(own, "codes", None) is not None:
            # the model's own prototypes: SwAV's codes on its scores (not cosines)
            from protoview.core.state import swav_codes

            res = swav_codes(self.model, s.features, epsilon=req.epsilon, n_iters=req.n_iters)
            state = self.map.set_assignment(res.assignments, req, res, sinkhorn_seconds=res.seconds)
            if self.live is None:
                self.source = self.map.save()
            return state
        targets = {"prototypes": s.prototypes, "proxies": s.proxies, "centers": s.centers}.get(
            req.target)
        if targets is None:
            raise ParameterError(
                "target", f"unknown target {req.target!r}: use prototypes, proxies or centers")
        if len(targets) == 0 and req.target == "centers":
            raise ParameterError("target", "there are no class centers: no sample has a known "
                                           "label (use proxies or prototypes)")
        if len(targets) == 0 and req.target == "proxies" and not self.model.has_head:
            raise ParameterError("target", "the model has no classifier head, so no proxies "
                                           "(use prototypes or centers)")
        if len(targets) == 0:
            raise ParameterError("target", f"there are no {req.target} yet (run k-means first)")
        res = sinkhorn_assign(s.features, targets, epsilon=req.epsilon, n_iters=req.n_iters)
        codes = s.proxy_classes[res.assignments] if req.target == "proxies" else res.assignments
        state = self.map.set_assignment(codes, req, res, sinkhorn_seconds=res.seconds)
        if self.live is None:
            self.source = self.map.save()
        return state

    # ------------------------------------------------------------------ geometry
    def geometry(self, req: GeometryRequest, progress: Progress = None, cancel: Cancel = None,
                 detail: Detail = None) -> Any:
        """The current model's feature space measured (a
        :class:`~protoview.core.measures.MapGeometry`): a refresh under way is completed
        first (the map drawn exact, as k-means does), then neural collapse, k-NN / NCC
        accuracy, k-means NMI / ARI and the error groups of the map's features with the
        head's rows; with a run, CKA and k-NN consistency against the source model's
        features of the same samples. ``detail(done, total, text)`` names each part and
        ``cancel`` is looked at between them (a part runs to its end: at 50,000 x 512 on two
        CPU cores, 25 s for the measures and 48 s for the comparison)."""
        from protoview.core.measures import (
            MapGeometry,
            class_major_rows,
            compare_representations,
            measure_geometry,
        )
        from protoview.errors import CancelledError

        if self.refresh_pending:
            self.refresh(progress=progress, cancel=cancel)
        features = self.map.features
        if features is None or features.logits is None:
            raise ParameterError("geometry", "the map has no logits: geometry needs the "
                                             "model's head")
        rows = class_major_rows(self.model.classifier)  # in the data's class order
        info = self.model.info
        source = None if self.source is None else self.source.features
        comparing = self.live is not None and source is not None
        say = detail or (lambda _done, _total, _text: None)
        say(0, 1 + comparing, "geometry: neural collapse, k-NN accuracy, k-means")
        # the k-NN's similarity blocks run where the features were extracted (a GPU when one was)
        device = features.device if str(features.device).startswith("cuda") else None
        report = measure_geometry(
            features.features, features.logits, features.labels,
            head_rows=rows, nb_proxy=info.head.nb_proxy if info else 1,
            cosine_head=bool(info) and info.head.kind == "cosine", kmeans_k=req.kmeans_k,
            knn_k=req.knn_k, knn_temperature=req.knn_temperature,
            knn_max_queries=req.knn_queries or None, seed=req.seed, device=device)
        comparison, note = None, ""
        if self.live is None and not getattr(self.model, "has_head", True):
            note = ("an encoder without a head is not adapted: CKA between two checkpoints is "
                    "protoview geometry CKPT DATA --versus CKPT2")
        elif self.live is None:
            note = "the source model is shown: CKA compares it with an adapted run (take a step)"
        elif source is None:
            note = "the source model's map is not drawn yet: no CKA"
        else:
            if cancel is not None and cancel():
                raise CancelledError("geometry cancelled before the comparison")
            say(1, 2, "geometry: CKA and k-NN consistency against the source model")
            comparison = compare_representations(
                source.features, features.features, where="geometry",
                rbf_max_samples=req.rbf_samples or None,
                knn_max_queries=req.knn_queries or None, seed=req.seed, device=device)
        run = self.current_run
        return MapGeometry(report, comparison, run=0 if run is None else run.number,
                           step=self.history[-1].step if self.history else 0,
                           method="none" if run is None else run.method, versus_note=note)

    # ------------------------------------------------------------------ export
    def to_snapshot(self):
        """A :class:`~protoview.core.snapshot.Snapshot` of the map, the current run's history
        and timeline, every run, the source model's predictions and the Sinkhorn plan."""
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
        if self.map.sinkhorn is not None:
            req, res = self.map.sinkhorn
            snap.assignment = {"Q": res.Q}
            snap.assignment_attrs = asdict(req)
        return snap
