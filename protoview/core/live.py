"""One adaptation run, owned whole: :class:`LiveRun`.

A live run holds the adapter walking its test stream (:class:`~protoview.core.adapt.run.AdaptRun`),
the progressive refresh of every sample's features to the current model
(:class:`~protoview.core.adapt.refresh.ProgressiveRefresh`), the run's history (one
:class:`~protoview.core.runs.HistoryRow` per step), its timeline (one recorded map per
step: the latest map of that step) and its record among the session's runs
(:class:`~protoview.core.runs.RunRecord`).

:meth:`LiveRun.steps` is the one step policy, a generator the window's worker and the
command line drive alike (as Orange's ``TSNERunner`` / napari's ``thread_worker``):

- live (the window): after each step its map (the batch's points moved, from the step's
  own forward pass), then its probe (the full-set accuracy estimated on a stratified
  subset; at a pass end the whole set instead). A probe that covered every sample
  completes the refresh: one more map, the exact one; otherwise only the estimate goes
  out and the map waits for the refresh slices (:meth:`LiveRun.refresh_some`). So a step
  costs one map update, plus one per refresh slice, no more.
- not live (the command line): each step's probe (the whole set at a pass end), and after
  the request (or every ``record_every`` steps) the whole set refreshed and one map.

The session gives the run a ``draw(features) -> GeometryState`` callable (its map: anchored
updates, the head's proxies, its attributes); the run adds what only it knows (which step
the map shows, how much of it is refreshed, the probe's estimate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoview.core.requests import StepRequest
from protoview.core.runs import HistoryRow, RunRecord
from protoview.core.state import GeometryState, timeline_frame
from protoview.errors import CancelledError, ParameterError, is_cancelled

Progress = Callable[[int, int], None] | None
#: ``detail(done, total, text)``: the phase being done, how far (``text`` for people)
Detail = Callable[[int, int, str], None] | None
Cancel = Callable[[], bool] | None


@dataclass(frozen=True)
class StepEvent:
    """What :meth:`LiveRun.steps` yields: ``kind`` ``"step"`` (a new map: the step's, or its
    completed refresh) or ``"probe"`` (the step's estimate; the map is the one before);
    ``partial``: more of the request follows; ``followed``: the same step's next event
    follows at once."""

    kind: str
    partial: bool = False
    followed: bool = False


def _teller(detail: Detail, done: int, total: int, step: int) -> Callable[[int, int, str], None]:
    """``detail(done, total, text)`` with the text prefixed by the step it is about
    (``"step 3 (3 of 10): probe: 512 of 1,024 samples"``); a no-op without a callback."""
    if detail is None:
        return lambda *_args: None
    prefix = f"step {step}" + (f" ({done + 1} of {total})" if total > 1 else "")
    return lambda d, t, text: detail(d, t, f"{prefix}: {text}")


def run_key(req: StepRequest) -> tuple:
    """The settings that make a run: another method, parameter, batch size, seed, order or
    stream starts a new run (the probe size does not)."""
    from protoview.core.adapt.stream import parse_stream

    return (req.method, req.batch_size, req.seed, req.params, req.shuffle,
            parse_stream(req.stream).text(), req.source_data)


def check_startable(req: StepRequest, model: Any, dataset: Any) -> None:
    """Raise :class:`ParameterError` when a run of ``req`` cannot start on ``dataset``: a
    stream the data cannot make (``--stream``), or batches of one sample the method cannot
    adapt on (``--batch-size``); checked before the current run is left."""
    from protoview.core.adapt.stream import parse_stream, stream_plan

    stream, data = parse_stream(req.stream), dataset
    stream_plan(stream, len(data), seed=req.seed, pass_index=0,
                labels=getattr(data, "labels", None), domains=getattr(data, "domains", None),
                shifts=getattr(data, "domain_shifts", None),
                severities=getattr(data, "domain_severities", None))
    if req.batch_size == 1:
        from protoview.core.adapt.registry import make_adapter
        from protoview.core.adapt.run import check_batch_size

        check_batch_size(make_adapter(req.method, model, **req.param_dict()), 1)

def open_source_data(spec: str, dataset: Any, model: Any) -> Any:
    """The labelled source data ``spec`` names (None for ""), prepared as ``dataset`` is and
    checked against the model's classes (``--source-data``)."""
    if not spec:
        return None
    from protoview.core.data import fit_classes, open_dataset

    source = open_dataset(spec, getattr(dataset, "transform", None))
    if getattr(source, "transform", None) is None:
        raise ParameterError("--source-data", f"{spec} holds precomputed features: the source "
                                              "data must be images (the model is adapted)")
    fit_classes(source, model.info.head.num_classes)
    return source


def history_row(record: Any) -> HistoryRow:
    """The history row of a :class:`~protoview.core.adapt.run.StepRecord` (the full-set and
    probe numbers are filled in later)."""
    domain = -1
    if record.batch_domains is not None and len(record.batch_domains):
        domain = int(np.bincount(np.asarray(record.batch_domains, np.int64)).argmax())
    return HistoryRow(
        record.step, record.cumulative_accuracy, record.online_accuracy, float("nan"),
        record.seconds, batch_indices=np.asarray(record.batch_indices, np.int64),
        online_predictions=np.asarray(record.online_predictions, np.int64),
        online_logits=np.asarray(record.online_logits, np.float32),
        loss=float("nan") if record.loss is None else float(record.loss), domain=domain,
        domain_start=record.domain_starts[0] if record.domain_starts else -1,
        pass_index=int(record.pass_index),
    )


class LiveRun:
    """See the module docstring.

    Parameters
    ----------
    request: the first StepRequest (its method, parameters, batch order and stream).
    model: the session's SplitModel, at the source weights; dataset: its data.
    known: a FeatureResult of every sample now (the source model's): where the refresh starts.
    number: the run's number in the session; draw: the session's map (see above).
    """

    def __init__(self, request: StepRequest, model: Any, dataset: Any, known: Any, number: int,
                 draw: Callable[..., GeometryState]) -> None:
        from protoview.core.adapt import AdaptRun
        from protoview.core.adapt.refresh import ProgressiveRefresh
        from protoview.core.adapt.registry import make_adapter
        from protoview.core.adapt.stream import parse_stream

        stream = parse_stream(request.stream)
        self.key = run_key(request)
        self.run = AdaptRun(make_adapter(request.method, model, **request.param_dict()), dataset,
                            batch_size=request.batch_size, seed=request.seed,
                            shuffle=request.shuffle, stream=stream,
                            source=open_source_data(request.source_data, dataset, model))
        self.run.accelerate()  # CUDA only: channels-last, and AMP where it agrees with float32
        self.refresh = ProgressiveRefresh(self.run, known.features, known.logits, known.labels,
                                          probe_size=request.probe_size)
        self.history: list[HistoryRow] = []
        self.timeline: list[dict[str, Any]] = []
        self.record = RunRecord(
            number=number, method=request.method, params=request.param_dict(),
            batch_size=request.batch_size, seed=request.seed, shuffle=self.run.shuffle,
            stream=stream.text(), history=self.history, domain_names=self.run.domain_names,
        )
        self.device = str(known.device)
        self._draw = draw

    # ---------------------------------------------------------------- where the run is
    @property
    def step(self) -> int:
        return self.refresh.step

    @property
    def refresh_pending(self) -> bool:
        """Some sample does not hold the current model's features yet."""
        return not self.refresh.complete

    @property
    def probe_pending(self) -> bool:
        """The probe's estimate of the current step is not computed yet."""
        return self.refresh.probe_batches > 0 and not self.refresh.probe_complete

    @property
    def at_pass_end(self) -> bool:
        """The last step ended a pass over the data."""
        return bool(self.run.history) and self.run.position >= self.run.steps_per_pass

    def steps_left_in_pass(self) -> int:
        """Steps to the end of the current pass (a whole pass at a pass boundary)."""
        left = self.run.steps_per_pass - self.run.position
        return left if left > 0 else self.run.steps_per_pass

    # ---------------------------------------------------------------- the step policy
    def steps(self, req: StepRequest, progress: Progress = None, cancel: Cancel = None,
              detail: Detail = None) -> Iterator[StepEvent]:
        """Run ``req.n_steps`` steps (the rest of the pass when <= 0), yielding as the module
        docstring says. ``progress(done, total)`` counts the steps; ``detail(done, total,
        text)``, when given instead, tells each phase as it goes ("step 3 (3 of 10): probe:
        512 of 1,024 samples"); ``cancel`` is checked before each step and inside each refresh (a
        cancelled request leaves the run at its last completed step)."""
        self.refresh.set_probe_size(req.probe_size)
        total = req.n_steps if req.n_steps > 0 else self.steps_left_in_pass()
        chunk = req.record_every if req.record_every > 0 else total
        for done in range(total):
            if is_cancelled(cancel):
                raise CancelledError(f"cancelled after {done} of {total} steps")
            tell = _teller(detail, done, total, len(self.history) + 1)
            tell(done, total, f"adapting on {self.next_batch_size()} images")
            record = self.run.step()
            self.refresh.on_step(record)
            self.history.append(history_row(record))
            if progress is not None and detail is None:  # the details count the steps too
                progress(done + 1, total)
            last = done + 1 == total
            if req.live:
                yield from self._live_step(last, cancel, tell)
            elif last or (done + 1) % chunk == 0:
                self._advance("all", cancel, tell)
                self._show(append_frame=True, cancel=cancel)
                yield StepEvent("step", partial=not last)
            else:  # the probe, or at a pass end the exact number of the pass
                self._advance("all" if self.at_pass_end else "probe", cancel, tell)

    def _live_step(self, last: bool, cancel: Cancel,
                   tell: Callable[[int, int, str], None]) -> Iterator[StepEvent]:
        state = self._show(append_frame=True, cancel=cancel)  # the pixels first: the batch moved
        until = "all" if self.at_pass_end else "probe"
        more = self.refresh_pending if until == "all" else self.probe_pending
        yield StepEvent("step", partial=more or not last, followed=more)
        if not more:
            return
        self._advance(until, cancel, tell)
        if self.refresh.complete:  # the probe held every sample, or the pass ended
            self._show(cancel=cancel)
            yield StepEvent("step", partial=not last)
        else:  # the estimate only: the refresh slices move the map
            self._describe_probe(state)
            yield StepEvent("probe", partial=not last)

    # ---------------------------------------------------------------- the refresh
    def refresh_some(self, seconds: float | None = 0.5, until: str = "all",
                     cancel: Cancel = None) -> GeometryState | None:
        """Refresh samples to the current model for about ``seconds`` (at least one batch;
        None: until ``until`` is done), then the map (anchored: only the refreshed points
        move). None when there was nothing to do. ``cancel`` stops between batches
        (CancelledError; the batches done are kept and shown by the next map)."""
        if self.refresh.complete or (until == "probe" and not self.probe_pending):
            return None
        t0, left = time.perf_counter(), self._stale()
        self.refresh.advance(until=until, seconds=seconds, cancel=cancel)
        self._note_accuracy()
        return self._show(self.features(time.perf_counter() - t0, left - self._stale()),
                          cancel=cancel)

    def complete(self, progress: Progress = None, cancel: Cancel = None) -> Any:
        """Every sample refreshed to the current model; returns the features (a
        FeatureResult, exact). Draws nothing."""
        t0, left = time.perf_counter(), self._stale()
        self.refresh.advance(until="all", cancel=cancel, progress=progress)
        self._note_accuracy()
        return self.features(time.perf_counter() - t0, left)

    def show_complete(self, progress: Progress = None, cancel: Cancel = None) -> GeometryState:
        """The exact map of the current model (the rest of the refresh, then one map)."""
        return self._show(self.complete(progress, cancel), cancel=cancel)

    def features(self, seconds: float = 0.0, computed: int = 0) -> Any:
        """The run's features as they are now (a FeatureResult; not all fresh while a
        refresh is under way)."""
        from protoview.core.features import FeatureResult

        feats, logits, labels = self.refresh.arrays()
        note = f"features of the model adapted by {self.record.method} at step {self.step}"
        if not self.refresh.complete:
            note += f" ({self.refresh.fraction:.0%} refreshed)"
        return FeatureResult(feats, logits, labels, device=self.device, seconds=seconds,
                             images_per_second=computed / max(seconds, 1e-9), notes=[note],
                             attrs={})

    def describe(self, state: GeometryState) -> None:
        """What the map of the run shows, in ``state.metrics``: ``map_step`` and
        ``refreshed``; the probe's estimate; ``accuracy`` only when every sample holds the
        current model's features. The run's record keeps the map's predictions. Called for
        every map the run draws (:meth:`_show`)."""
        state.metrics["map_step"] = float(self.step)
        state.metrics["refreshed"] = self.refresh.fraction
        if not self.refresh.complete:
            state.metrics.pop("accuracy", None)  # a mix of models' predictions is no accuracy
        self._describe_probe(state)
        self.record.predictions = state.predictions
        self.record.predictions_step = self.step
        self.record.predictions_refreshed = self.refresh.fraction

    # ---------------------------------------------------------------- internals
    def _stale(self) -> int:
        return int((~self.refresh.fresh).sum())

    def _advance(self, until: str, cancel: Cancel,
                 tell: Callable[[int, int, str], None] | None = None) -> None:
        """The probe (or everything) of the current step, timed into its history row."""
        plan = self.run.refresh_batches()
        sizes = np.cumsum([len(b) for b in plan])
        batches = self.refresh.probe_batches if until == "probe" else len(plan)
        what = "probe" if until == "probe" else "refreshing every sample"

        def report(done: int, _total: int) -> None:
            done = min(done, batches)
            samples = int(sizes[done - 1]) if done else 0
            tell(done, batches, f"{what}: {samples:,} of {int(sizes[batches - 1]):,} samples")

        t0 = time.perf_counter()
        ran = self.refresh.advance(until=until, cancel=cancel,
                                   progress=None if tell is None or not batches else report)
        if ran and self.history and self.history[-1].step == self.step:
            self.history[-1].probe_seconds = time.perf_counter() - t0
        self._note_accuracy()

    def next_batch_size(self) -> int:
        """The number of samples the next step adapts on."""
        position = self.run.position if self.run.position < self.run.steps_per_pass else 0
        start, stop = self.run.batch_bounds(position)
        return stop - start

    def _show(self, features: Any = None, append_frame: bool = False,
              cancel: Cancel = None) -> GeometryState:
        """Draw the run's features (``features``, default: as they are now), describe the
        map (:meth:`describe`) and keep it as the current step's frame. ``cancel`` stops
        the map between epochs (a cancelled draw changes nothing)."""
        state = self._draw(self.features() if features is None else features, cancel=cancel)
        self.describe(state)
        self._record_frame(state, append_frame)
        return state

    def _record_frame(self, state: GeometryState, append: bool) -> None:
        """The timeline holds the latest map of each recorded step: a later map of the same
        step (its refresh went on) replaces it; ``append`` records a new step."""
        frame = timeline_frame(state, self.step, self.refresh.fraction)
        if self.timeline and self.timeline[-1]["step"] == self.step:
            self.timeline[-1] = frame
        elif append:
            self.timeline.append(frame)

    def _describe_probe(self, state: GeometryState | None) -> None:
        probe = self.refresh.probe()
        if state is None or probe is None:
            return
        state.metrics.update(
            probe_accuracy=probe.accuracy, probe_low=probe.low, probe_high=probe.high,
            probe_size=float(probe.size), probe_population=float(probe.population),
        )

    def _note_accuracy(self) -> None:
        """The probe's estimate and the exact accuracy of the current step, into its row."""
        if not self.history or self.history[-1].step != self.step:
            return
        row = self.history[-1]
        probe = self.refresh.probe()
        if probe is not None:
            row.probe_accuracy, row.probe_low, row.probe_high = probe.accuracy, probe.low, probe.high
            row.probe_size = probe.size
        exact = self.refresh.exact_accuracy()
        if exact is not None:
            row.full_accuracy = exact


def warm_up(message: Callable[[str], None] = lambda text: None) -> float:
    """Pay the one-time costs of live runs before the first click; returns seconds taken.

    The map engine's compilation (:func:`protoview.core.projection.warm_up`) and torch's
    first optimiser step (:func:`protoview.core.adapt.warm_up`). The window runs it on its
    worker at start-up.
    """
    from protoview.core.adapt import warm_up as warm_up_adaptation
    from protoview.core.projection import warm_up as warm_up_map

    return warm_up_map(message) + warm_up_adaptation()

