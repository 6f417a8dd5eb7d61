"""An adaptation run: an adapter walking over a dataset in seeded batches, with its history.

The dataset contract: ``dataset[i] -> (x, y)`` with ``x`` a float32 tensor (C, H, W) and
``y`` an int (``-1`` = unknown label), ``len(dataset)``, and optionally ``dataset.labels``
(N,) int64 (used instead of the items' ``y`` when present).

Batches are built by index. Pass ``k`` visits the samples in the order
``numpy.random.default_rng([seed, k]).permutation(N)`` (or ``0..N-1`` when
``shuffle=False``), so every record knows its sample indices and :meth:`AdaptRun.reset`
replays the same order. A last batch of a single sample is merged into the one before
(train-mode BatchNorm cannot normalise one sample); ``drop_last`` drops the short batch.

Accuracy "as the paper reports it" is the online accuracy: each batch is predicted before
the model adapts on it, and ``cumulative_accuracy`` pools those predictions over the
current pass. :meth:`AdaptRun.evaluate` gives the accuracy of the current model on the
whole set in the adapter's prediction mode (``Adapter.predict``: the source model for
none, the current templates for t3a; for bn, tent and tsd BatchNorm uses each batch's own
statistics, as the online predictions did). It runs over batches of ``batch_size`` in the
first pass's order (shuffled unless ``shuffle=False``, so that no batch is one class).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protoview.core.adapt.base import Adapter, AdapterSnapshot
from protoview.errors import CancelledError, DatasetError, ParameterError, ProtoviewError

Progress = Callable[[int, int], None]


@dataclass
class StepRecord:
    """One adaptation step.

    step: 1-based step number since the last reset; batch_indices: (B,) int64 dataset
    indices; online_logits: (B, C) float32 logits predicted before the update;
    online_predictions: (B,) int64; online_accuracy: this batch (NaN without labels);
    cumulative_accuracy: over the pass so far; full_accuracy: whole set (when evaluated);
    seconds: wall time of the step; pass_index: 0-based pass; loss: the adapter's loss.
    """

    step: int
    batch_indices: np.ndarray
    online_logits: np.ndarray
    online_predictions: np.ndarray
    online_accuracy: float
    cumulative_accuracy: float
    full_accuracy: float | None
    seconds: float
    pass_index: int = 0
    loss: float | None = None


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    known = labels >= 0
    return int((predictions[known] == labels[known]).sum()), int(known.sum())


def _cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


class AdaptRun:
    """Run an adapter over a dataset step by step (see the module docstring).

    Parameters
    ----------
    adapter: any :class:`~protoview.core.adapt.base.Adapter`.
    dataset: indexable, sized (see the module docstring).
    batch_size: >= 1; clamped to ``len(dataset)`` (noted in ``notes``).
    seed, shuffle, drop_last: the batch order.
    evaluate_every: fill ``full_accuracy`` every this many steps (0: never).
    guard_max_bytes: keep a copy of the state before each step (to undo a diverged step)
        when the model's state is at most this size; above it divergence is only detected.
    """

    def __init__(
        self,
        adapter: Adapter,
        dataset: Any,
        *,
        batch_size: int = 64,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        evaluate_every: int = 0,
        guard_max_bytes: int = 512 * 2**20,
    ) -> None:
        self.adapter, self.dataset = adapter, dataset
        self.where = str(getattr(dataset, "name", None) or type(dataset).__name__)
        self.notes: list[str] = []
        self.num_samples = self._dataset_length()
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
        self.batch_size, self.seed, self.shuffle = batch_size, int(seed), bool(shuffle)
        self.evaluate_every, self.guard_max_bytes = evaluate_every, guard_max_bytes
        self._labels = self._dataset_labels()
        self._bounds = self._plan(drop_last)
        self.steps_per_pass = len(self._bounds)
        self.history: list[StepRecord] = []
        self._start()

    # ---- set-up ---------------------------------------------------------------------------
    def _dataset_length(self) -> int:
        try:
            n = len(self.dataset)
        except TypeError:
            raise DatasetError(
                self.where, "the dataset has no length (len(dataset) failed)"
            ) from None
        if n < 1:
            raise DatasetError(self.where, "the dataset is empty")
        return int(n)

    def _dataset_labels(self) -> np.ndarray | None:
        labels = getattr(self.dataset, "labels", None)
        if labels is None:
            return None
        labels = (
            np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
            .astype(np.int64)
            .reshape(-1)
        )
        if labels.shape[0] != self.num_samples:
            raise DatasetError(
                self.where,
                f"dataset.labels holds {labels.shape[0]} labels for {self.num_samples} samples",
            )
        return labels

    def _plan(self, drop_last: bool) -> list[tuple[int, int]]:
        n, b = self.num_samples, self.batch_size
        bounds = [(start, min(start + b, n)) for start in range(0, n, b)]
        if drop_last and bounds[-1][1] - bounds[-1][0] < b:
            bounds.pop()
            self.notes.append(f"drop_last: the last {n % b} samples of each pass are not used")
        elif len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
            self.notes.append(
                f"the last batch of a pass holds {b + 1} samples (a batch of 1 merged into it)"
            )
        return bounds

    def _order(self, pass_index: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        return (
            np.random.default_rng([self.seed, pass_index])
            .permutation(self.num_samples)
            .astype(np.int64)
        )

    def _start(self) -> None:
        self.pass_index, self.position = 0, 0
        self._permutation = self._order(0)
        self._pass_correct = self._pass_known = 0

    # ---- data -----------------------------------------------------------------------------
    def _load(self, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        get_batch = getattr(self.dataset, "get_batch", None)
        if callable(get_batch):  # in-memory images: one tensor op instead of B item reads
            x, y = get_batch(indices)
            labels = self._labels[indices] if self._labels is not None else y.numpy()
            finite = torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
            if not bool(finite.all()):
                bad = [int(i) for i in np.asarray(indices)[~finite.numpy()]]
                raise DatasetError(self.where, f"samples {bad[:5]} contain NaN or infinite values")
            return x, np.asarray(labels, np.int64)
        xs, ys = [], []
        for i in indices.tolist():
            try:
                item = self.dataset[i]
                x, y = item[0], item[1]
            except (IndexError, KeyError, TypeError, ValueError, OSError) as exc:
                raise DatasetError(self.where, f"sample {i} could not be read ({exc})") from exc
            xs.append(torch.as_tensor(x, dtype=torch.float32))
            ys.append(int(y))
        try:
            batch = torch.stack(xs)
        except RuntimeError:
            shapes = sorted({tuple(x.shape) for x in xs})
            raise DatasetError(self.where, f"samples have different shapes {shapes[:3]}") from None
        if not bool(torch.isfinite(batch).all()):
            bad = [
                int(i)
                for i, x in zip(indices, xs, strict=True)
                if not bool(torch.isfinite(x).all())
            ]
            raise DatasetError(self.where, f"samples {bad[:5]} contain NaN or infinite values")
        labels = (
            self._labels[indices] if self._labels is not None else np.asarray(ys, dtype=np.int64)
        )
        return batch, labels

    # ---- stepping -------------------------------------------------------------------------
    def step(self) -> StepRecord:
        """Adapt on the next batch (a new pass starts when one ends) and record it."""
        if self.position >= self.steps_per_pass:
            self.pass_index += 1
            self.position = 0
            self._permutation = self._order(self.pass_index)
            self._pass_correct = self._pass_known = 0
        start, stop = self._bounds[self.position]
        indices = self._permutation[start:stop]
        x, labels = self._load(indices)
        started = time.perf_counter()
        logits = self._guarded_step(x, len(self.history) + 1)
        online = logits.float().cpu().numpy()
        predictions = online.argmax(1).astype(np.int64)
        correct, known = _accuracy(predictions, labels)
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
        )
        self.position += 1
        self.history.append(record)
        if self.evaluate_every and record.step % self.evaluate_every == 0:
            record.full_accuracy = self.evaluate()
        return record

    def _guarded_step(self, x: torch.Tensor, step: int) -> torch.Tensor:
        snap: AdapterSnapshot | None = None
        if self.adapter.state_bytes() <= self.guard_max_bytes:
            snap = self.adapter.snapshot()
        try:
            logits = self.adapter.step(x)
        except ParameterError as exc:
            if exc.where != "batch":
                raise
            raise DatasetError(self.where, exc.problem) from exc
        problem = self._divergence(logits)
        if problem is None:
            return logits
        if snap is not None:
            self.adapter.restore(snap)
            tail = "lower the learning rate or reset"
        else:
            tail = "the model is too large to keep a copy, so reset it and lower the learning rate"
        raise ProtoviewError("lr", f"adaptation diverged at step {step} ({problem}); {tail}")

    def _divergence(self, logits: torch.Tensor) -> str | None:
        loss = self.adapter.last_loss
        # NaN over an empty selection (PL's confident mask, EATA's and SAR's reliable samples)
        # is a mean of nothing, not divergence; the logits and weights are still checked.
        if loss is not None and not np.isfinite(loss) and self.adapter.last_selected != 0:
            return f"loss is {loss}"
        if not bool(torch.isfinite(logits).all()):
            return "logits are NaN or infinite"
        if not self.adapter.state_is_finite():
            return "weights are NaN or infinite"
        return None

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
            if _cancelled(cancel):
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
    def evaluate(self) -> float:
        """Accuracy of the current model on the whole set in the adapter's prediction mode,
        batches in the first pass's order (NaN without labels). Adapts nothing."""
        correct = known = 0
        order = self._order(0)
        for start, stop in self._plan_sequential():
            x, labels = self._load(order[start:stop])
            try:
                logits = self.adapter.predict(x)
            except ParameterError as exc:
                raise DatasetError(self.where, exc.problem) from exc
            c, k = _accuracy(logits.argmax(1).cpu().numpy(), labels)
            correct, known = correct + c, known + k
        return correct / known if known else float("nan")

    def features_all(
        self, *, progress: Progress | None = None, cancel: Any = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (N, D), logits (N, C) and labels (N,) of the whole set, in dataset order,
        as the adapted model sees it now: the adapter's prediction mode (batch statistics
        for BN-based methods) on batches of the run's size in the first pass's order, so the
        map and :meth:`evaluate` agree. Adapts nothing."""
        order = self._order(0)
        n = len(order)
        feats: np.ndarray | None = None
        logits: np.ndarray | None = None
        labels = np.full(n, -1, np.int64)
        plan = self._plan_sequential()
        for i, (start, stop) in enumerate(plan):
            if _cancelled(cancel):
                raise CancelledError("features of the adapted model were cancelled")
            idx = order[start:stop]
            x, y = self._load(idx)
            try:
                z, out = self.adapter.features(x)
            except ParameterError as exc:
                raise DatasetError(self.where, exc.problem) from exc
            z_np, out_np = z.float().cpu().numpy(), out.float().cpu().numpy()
            if feats is None:
                feats = np.empty((n, z_np.shape[1]), np.float32)
                logits = np.empty((n, out_np.shape[1]), np.float32)
            feats[idx], logits[idx], labels[idx] = z_np, out_np, y
            if progress is not None:
                progress(i + 1, len(plan))
        assert feats is not None and logits is not None
        return feats, logits, labels

    def _plan_sequential(self) -> list[tuple[int, int]]:
        n, b = self.num_samples, self.batch_size
        bounds = [(start, min(start + b, n)) for start in range(0, n, b)]
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def reset(self) -> None:
        """Source model, history cleared, the same batch order as the first time."""
        self.adapter.reset()
        self.history.clear()
        self._start()
