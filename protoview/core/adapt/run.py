"""An adaptation run: an adapter walking over a dataset in seeded batches, with its history.

The dataset contract: ``dataset[i] -> (x, y)`` with ``x`` a float32 tensor (C, H, W) and
``y`` an int (``-1`` = unknown label), ``len(dataset)``, and optionally ``dataset.labels``
(N,) int64 (used instead of the items' ``y`` when present).

Batches are built by index. Pass ``k`` visits the samples in the order of the run's
*stream* (:mod:`protoview.core.adapt.stream`): by default (``online``)
``numpy.random.default_rng([seed, k]).permutation(N)`` (or ``0..N-1`` when
``shuffle=False``); ``continual`` takes the dataset's domains (``dataset.domains``, (N,)
int64, and ``dataset.domain_names``) one after another, ``gradual`` each corruption's
severities 1-5-1 (``dataset.domain_shifts`` and ``dataset.domain_severities``: the
corruption and severity of each domain), ``sorted`` / ``dirichlet=ALPHA`` correlate the
labels, ``samples=N`` keeps N samples of each domain, ``episodic`` resets the adapter
before every batch and ``reset_each_shift`` before the first batch of each shift. Batches
are cut per segment of the stream (a domain, a severity: the toolkit's loaders), so no
batch holds two domains. Every record knows its sample indices and their domains, and
:meth:`AdaptRun.reset` replays the same order.

Batch sizes: an adapter that normalises BatchNorm with the batch's own statistics refuses
``batch_size=1`` on a model with BatchNorm layers (:mod:`~protoview.core.adapt._one_sample`);
``drop_last`` drops each segment's short last batch (:mod:`~protoview.core.adapt._cut`).
The run's pieces: the dataset's checks and the source data in ``_run_data``, the record of
a step in ``_step_record``, the divergence guard in ``_guard``.

Accuracy "as the paper reports it" is the online accuracy: each batch is predicted before
the model adapts on it, and ``cumulative_accuracy`` pools those predictions over the
current pass. :meth:`AdaptRun.evaluate` gives the accuracy of the current model on the
whole set in the adapter's prediction mode (``Adapter.predict``: the source model for
none, the current templates for t3a; for bn, tent and tsd BatchNorm uses each batch's own
statistics, as the online predictions did). It runs over the *refresh plan*
(:meth:`AdaptRun.refresh_batches`): batches of ``batch_size`` in a seeded, stratified
order (:func:`stratified_order`: every prefix holds each class in proportion, so no batch
is one class), the same plan :meth:`AdaptRun.features_all` and the map use. Its first
batches form the probe subset (:meth:`AdaptRun.probe_batch_count`), so a probe's numbers
are exactly the full refresh's numbers for those samples, and a refresh run batch by
batch (:meth:`AdaptRun.batch_features`) equals one run in a piece, bit for bit.

On CUDA, :meth:`AdaptRun.accelerate` turns on channels-last memory and, when its
predictions agree with float32's on a probe, bfloat16 / float16 autocast (steps only in
bfloat16); batches go through pinned memory with non-blocking copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from protoview.core.accel import (
    FLOAT32,
    Precision,
    channels_last_input,
    choose_precision,
    use_channels_last,
)
from protoview.core.adapt._batches import (
    batch_bounds,
    count_correct,
    read_batch,
    stratified_order,
)
from protoview.core.adapt._cut import cut_batches
from protoview.core.adapt._guard import guarded_step
from protoview.core.adapt._one_sample import check_batch_size, one_sample_problem
from protoview.core.adapt._run_data import (
    dataset_domains,
    dataset_labels,
    dataset_length,
    domain_shifts,
    give_source,
)
from protoview.core.adapt._step_record import StepRecord
from protoview.core.adapt.base import Adapter
from protoview.core.adapt.stream import StreamPlan, StreamSpec, parse_stream, run_order, stream_plan
from protoview.core.heads import predicted_classes, prediction_map
from protoview.errors import CancelledError, DatasetError, ParameterError, is_cancelled

Progress = Callable[[int, int], None]
#: The refresh plan's batch size for a run on batches of one sample whose adapter predicts
#: each sample alike in any batch (the map is not refreshed one sample at a time).
REFRESH_BATCH_FOR_ONE = 64


class AdaptRun:
    """Run an adapter over a dataset step by step (see the module docstring).

    Parameters
    ----------
    adapter: any :class:`~protoview.core.adapt.base.Adapter`.
    dataset: indexable, sized (see the module docstring).
    batch_size: >= 1; clamped to ``len(dataset)`` (noted in ``notes``).
    seed, shuffle, drop_last: the batch order; ``shuffle=None`` (default) is the data's own
        (:func:`~protoview.core.adapt.stream.run_order`: file order for CIFAR-10-C as
        RobustBench and tent, shuffled with ``seed`` otherwise), said in ``order``.
    evaluate_every: fill ``full_accuracy`` every this many steps (0: never).
    guard_max_bytes: keep a copy of the state before each step (to undo a diverged step)
        when the model's state is at most this size; above it divergence is only detected.
    stream: the test stream, a :class:`~protoview.core.adapt.stream.StreamSpec` or its
        ``--stream`` text (default ``online``).
    source: labelled source data (a dataset of ``(x, y)``), for a method that needs them
        (``adapter.needs_source``; RMT): given to it as shuffled batches before the first step.
    """

    def __init__(
        self,
        adapter: Adapter,
        dataset: Any,
        *,
        batch_size: int = 64,
        seed: int = 0,
        shuffle: bool | None = None,
        drop_last: bool = False,
        evaluate_every: int = 0,
        guard_max_bytes: int = 512 * 2**20,
        stream: StreamSpec | str | None = None,
        source: Any = None,
    ) -> None:
        self.adapter, self.dataset = adapter, dataset
        #: the head's map of predictions to the data's classes (ImageNet-D), or None: every
        #: prediction this run scores is ``predicted_classes(logits, prediction_map)``
        self.prediction_map = prediction_map(getattr(adapter, "model", None))
        if getattr(dataset, "transform", None) is not None:
            adapter.input_transform = dataset.transform  # what augmenting methods undo
        self.stream = parse_stream(stream)
        self.where = str(getattr(dataset, "name", None) or type(dataset).__name__)
        self.notes: list[str] = []
        self.num_samples = dataset_length(dataset, self.where)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParameterError("batch_size", f"must be an integer >= 1, got {batch_size!r}")
        if batch_size > self.num_samples:
            self.notes.append(
                f"batch size {batch_size} clamped to the {self.num_samples} samples of the dataset"
            )
            batch_size = self.num_samples
        if not isinstance(evaluate_every, int) or evaluate_every < 0:
            raise ParameterError(
                "evaluate_every", f"must be an integer >= 0, got {evaluate_every!r}"
            )
        check_batch_size(adapter, batch_size)
        self.batch_size, self.seed = batch_size, int(seed)
        #: whether the batches are drawn shuffled, and the line that says the run's order
        self.shuffle, self.order = run_order(dataset, shuffle, self.seed)
        if shuffle and not self.shuffle:  # CCC: the order on disk is the benchmark
            self.notes.append(f"{self.where}: run in file order, the benchmark's own stream")
        #: the refresh plan's batch size: the run's, or 64 for a run on batches of one whose
        #: adapter predicts each sample alike in any batch (``per_sample_predictions``)
        self.refresh_batch_size = (
            min(REFRESH_BATCH_FOR_ONE, self.num_samples)
            if batch_size == 1 and getattr(adapter, "per_sample_predictions", False)
            else batch_size)
        self.evaluate_every, self.guard_max_bytes = evaluate_every, guard_max_bytes
        self._drop_last = bool(drop_last)
        self._merge_single = one_sample_problem(adapter) is not None
        self._labels = dataset_labels(dataset, self.num_samples, self.where)
        self.domains, self.domain_names = dataset_domains(dataset, self.num_samples, self.where)
        self.domain_shifts, self.domain_severities = domain_shifts(dataset, self.domains)
        self.history: list[StepRecord] = []
        self.precision: Precision = FLOAT32
        self._channels_last = False
        self._refresh_plan: list[np.ndarray] | None = None
        give_source(adapter, source, self.batch_size)
        self._start()

    # ---- set-up ---------------------------------------------------------------------------
    @property
    def labels(self) -> np.ndarray | None:
        """(N,) int64 labels of the dataset (-1 unknown), or None when it has no ``labels``
        (then each batch's labels come from its items)."""
        return self._labels

    def stream_plan(self, pass_index: int = 0) -> StreamPlan:
        """The stream's plan of pass ``pass_index`` (its order and segments)."""
        return stream_plan(
            self.stream, self.num_samples, seed=self.seed, pass_index=pass_index,
            shuffle=self.shuffle, labels=self._labels, domains=self.domains,
            shifts=self.domain_shifts, severities=self.domain_severities,
        )

    def _order(self, pass_index: int) -> np.ndarray:
        return self.stream_plan(pass_index).order

    def pass_order(self, pass_index: int = 0) -> np.ndarray:
        """The sample order (L,) int64 of pass ``pass_index`` (the batches of the pass are
        consecutive pieces of it, :meth:`batch_bounds`). L is N unless the stream keeps
        ``samples=N`` of each domain or meets some twice (``gradual``)."""
        return self._order(pass_index).copy()

    def _start(self) -> None:
        self.pass_index, self.position = 0, 0
        self._new_pass(0)

    def _new_pass(self, pass_index: int) -> None:
        plan = self.stream_plan(pass_index)
        self._permutation = plan.order
        self._bounds, self._resets, self._first = cut_batches(
            plan, self.batch_size, stream=self.stream, domains=self.domains,
            drop_last=self._drop_last, merge_single=self._merge_single, adapter=self.adapter,
            notes=self.notes)
        self.steps_per_pass = len(self._bounds)
        self._pass_correct = self._pass_known = 0

    # ---- data -----------------------------------------------------------------------------
    def _load(self, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        x, labels = self._read(indices)
        device = self.adapter.device
        if device.type == "cuda" and x.device != device:  # pinned, so the copy overlaps
            x = x.pin_memory().to(device, non_blocking=True)
        return channels_last_input(x, self._channels_last), labels

    def _read(self, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        return read_batch(self.dataset, indices, self._labels, self.adapter.device, self.where)

    # ---- stepping -------------------------------------------------------------------------
    def step(self) -> StepRecord:
        """Adapt on the next batch (a new pass starts when one ends) and record it."""
        if self.position >= self.steps_per_pass:
            self.pass_index += 1
            self.position = 0
            self._new_pass(self.pass_index)
        start, stop = self._bounds[self.position]
        indices = self._permutation[start:stop]
        x, labels = self._load(indices)
        started = time.perf_counter()
        # episodic: each batch adapted on from the source state alone; reset_each_shift: each
        # shift from the source state (the toolkit's test_time.py lines 72-75)
        reset = self.stream.episodic or self.position in self._resets
        if reset:
            self.adapter.reset()
        with self.precision.autocast(x.device, training=True):
            logits = guarded_step(self.adapter, x, len(self.history) + 1,
                                  self.guard_max_bytes, self.where)
        online = logits.float().cpu().numpy()
        z = self.adapter.last_features
        predictions = predicted_classes(online, self.prediction_map)
        correct, known = count_correct(predictions, labels)
        self._pass_correct += correct
        self._pass_known += known
        record = StepRecord(
            step=len(self.history) + 1,
            batch_indices=indices.copy(),
            online_logits=online,
            online_predictions=predictions,
            online_accuracy=correct / known if known else float("nan"),
            cumulative_accuracy=self._pass_correct / self._pass_known
            if self._pass_known
            else float("nan"),
            full_accuracy=None,
            seconds=time.perf_counter() - started,
            pass_index=self.pass_index,
            loss=self.adapter.last_loss,
            batch_features=None if z is None else z.float().cpu().numpy(),
            batch_domains=None if self.domains is None else self.domains[indices],
            domain_starts=tuple(d for d, p in self._first if start <= p < stop),
            reset_before=reset,
        )
        self.position += 1
        self.history.append(record)
        if self.evaluate_every and record.step % self.evaluate_every == 0:
            record.full_accuracy = self.evaluate()
        return record

    def run(
        self, n_steps: int, *, progress: Progress | None = None, cancel: Any = None
    ) -> list[StepRecord]:
        """Run ``n_steps`` steps; ``cancel`` (a callable or an Event) is checked before each.

        ``progress(done, total)`` is called after each step. On cancel raises
        :class:`CancelledError`; the state is that of the last completed step.
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ParameterError("n_steps", f"must be an integer >= 0, got {n_steps!r}")
        records = []
        for done in range(n_steps):
            if is_cancelled(cancel):
                raise CancelledError(f"cancelled after {done} of {n_steps} steps")
            records.append(self.step())
            if progress is not None:
                progress(done + 1, n_steps)
        return records

    def run_pass(self, *, progress: Progress | None = None, cancel: Any = None) -> list[StepRecord]:
        """Run to the end of the current pass (a whole pass when at a pass boundary)."""
        remaining = self.steps_per_pass - self.position
        return self.run(
            remaining if remaining > 0 else self.steps_per_pass, progress=progress, cancel=cancel
        )

    # ---- whole set ------------------------------------------------------------------------
    def refresh_batches(self) -> list[np.ndarray]:
        """The refresh plan: the whole set as batches of ``refresh_batch_size`` (the run's
        batch size, see ``__init__``) dataset indices in
        :func:`stratified_order` (seeded by the run's seed; a last batch of one sample is
        merged into the one before). Fixed for the run."""
        if self._refresh_plan is None:
            labels = self._labels if self._labels is not None else np.full(self.num_samples, -1)
            order = stratified_order(labels, self.seed)
            self._refresh_plan = [order[start:stop] for start, stop in self._plan_sequential()]
        return self._refresh_plan

    def probe_batch_count(self, probe_size: int) -> int:
        """How many leading batches of the refresh plan hold at least ``probe_size``
        samples (all of them when ``probe_size`` >= N; 0 for 0)."""
        if isinstance(probe_size, bool) or not isinstance(probe_size, int) or probe_size < 0:
            raise ParameterError("probe_size", f"must be an integer >= 0, got {probe_size!r}")
        if probe_size == 0:
            return 0
        sizes = np.cumsum([len(b) for b in self.refresh_batches()])
        return int(min(np.searchsorted(sizes, probe_size) + 1, len(sizes)))

    def batch_features(
        self, number: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Batch ``number`` of the refresh plan through the current model in the adapter's
        prediction mode: its indices (B,), features (B, D), logits (B, C) float32 and
        labels (B,) int64. Adapts nothing; depends only on the model and the batch."""
        idx = self.refresh_batches()[number]
        x, y = self._load(idx)
        try:
            with self.precision.autocast(x.device):
                z, out = self.adapter.features(x)
        except ParameterError as exc:
            raise DatasetError(self.where, exc.problem) from exc
        if z.ndim > 2:
            z = z.flatten(1)
        return idx, z.float().cpu().numpy(), out.float().cpu().numpy(), y

    def evaluate(self) -> float:
        """Accuracy of the current model on the whole set in the adapter's prediction mode,
        over the refresh plan (NaN without labels). Adapts nothing."""
        correct = known = 0
        for idx in self.refresh_batches():
            x, labels = self._load(idx)
            try:
                with self.precision.autocast(x.device):
                    logits = self.adapter.predict(x)
            except ParameterError as exc:
                raise DatasetError(self.where, exc.problem) from exc
            c, k = count_correct(predicted_classes(logits.float().cpu().numpy(),
                                                   self.prediction_map), labels)
            correct, known = correct + c, known + k
        return correct / known if known else float("nan")

    def features_all(
        self, *, progress: Progress | None = None, cancel: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (N, D), logits (N, C) and labels (N,) of the whole set, in dataset order,
        as the adapted model sees it now: :meth:`batch_features` over the refresh plan, so
        the map and :meth:`evaluate` agree. Adapts nothing."""
        plan = self.refresh_batches()
        n = self.num_samples
        feats: np.ndarray | None = None
        logits: np.ndarray | None = None
        labels = np.full(n, -1, np.int64)
        for i in range(len(plan)):
            if is_cancelled(cancel):
                raise CancelledError("features of the adapted model were cancelled")
            idx, z_np, out_np, y = self.batch_features(i)
            if feats is None:
                feats = np.empty((n, z_np.shape[1]), np.float32)
                logits = np.empty((n, out_np.shape[1]), np.float32)
            feats[idx], logits[idx], labels[idx] = z_np, out_np, y
            if progress is not None:
                progress(i + 1, len(plan))
        assert feats is not None and logits is not None
        return feats, logits, labels

    def batch_bounds(self, position: int) -> tuple[int, int]:
        """``(start, stop)`` of the batch at ``position`` of a pass (in the pass's order)."""
        return self._bounds[position]

    def _plan_sequential(self) -> list[tuple[int, int]]:
        return batch_bounds(self.num_samples, self.refresh_batch_size)

    # ---- CUDA ---------------------------------------------------------------------------
    def accelerate(self, probe_size: int = 256, min_agreement: float = 0.99) -> Precision:
        """On CUDA: channels-last memory, and the autocast precision whose predictions on
        the first ``probe_size`` samples of the refresh plan agree with float32's
        (:func:`~protoview.core.accel.choose_precision`). Nothing on other devices."""
        device = self.adapter.device
        if device.type != "cuda":
            return self.precision
        self._channels_last = use_channels_last(self.adapter.model, device)
        order = np.concatenate(self.refresh_batches())
        x, _ = self._load(order[: max(1, min(probe_size, self.num_samples))])
        self.precision = choose_precision(self.adapter.predict, x, device,
                                          min_agreement=min_agreement)
        self.notes.append(self.precision.note)
        return self.precision

    def reset(self) -> None:
        """Source model, history cleared, the same batch order as the first time."""
        self.adapter.reset()
        self.history.clear()
        self._start()
