"""The whole set's features for a run's current model, refreshed batch by batch.

After an adaptation step only the step's batch has features of the new model (the step's
own forward pass: :attr:`StepRecord.batch_features`); re-extracting every sample after
every step costs a forward pass over the whole set. :class:`ProgressiveRefresh` keeps the
newest known features and logits of every sample, moves the step's batch at once, and
brings the rest up to the current model one batch of the run's refresh plan
(:meth:`AdaptRun.refresh_batches`) at a time, whenever the caller has time: the
*refresh of step k*.

- The plan's first batches are the probe (:meth:`AdaptRun.probe_batch_count`): a fixed,
  stratified subset refreshed first after each step, from which the full-set accuracy of
  every step is estimated (:meth:`ProgressiveRefresh.probe`, with a 95% interval). The
  estimate is a *difference estimator* (:func:`difference_estimate`): the exact accuracy of
  the last complete refresh (or of the arrays it started from) plus the change the probe
  sees on the same samples since then. It is unbiased like the probe's own accuracy, and
  far tighter, because most samples keep their verdict from one step to the next (on 2,000
  shifted digits and a probe of 1,024, the probe's own accuracy missed the exact one by up
  to 1.5 points over a pass; see bench/RESULTS.md for the estimator's).
- The other batches follow a rolling cursor: a refresh interrupted by a new step resumes
  at the next batch for the new model, so every part of the map keeps getting refreshed.
- Reproducible: a batch's numbers depend only on the model and the batch (the plan is fixed
  for the run), so a refresh of step k run in chunks, interrupted and resumed, equals
  :meth:`AdaptRun.features_all` of step k bit for bit.

Arrays handed out by :meth:`ProgressiveRefresh.arrays` are never written again (the next
write copies them first), so a state drawn from them stays as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoview.core.adapt.run import AdaptRun, StepRecord
from protoview.core.heads import predicted_classes
from protoview.errors import CancelledError, ParameterError, is_cancelled

UNTIL = ("all", "probe")


@dataclass(frozen=True)
class ProbeEstimate:
    """The full-set accuracy of one step estimated on the probe subset.

    accuracy: the estimate (:func:`difference_estimate`); low, high: its 95% interval (zero
    width when the probe is the whole set); size: labelled samples in the probe;
    population: labelled samples in the set; step: the model step it describes;
    probe_accuracy: the accuracy on the probe's samples themselves; anchor_step: the step
    whose exact numbers the estimate starts from (-1: the arrays the refresh started with).
    """

    accuracy: float
    low: float
    high: float
    size: int
    population: int
    step: int
    probe_accuracy: float = float("nan")
    anchor_step: int = -1

    @property
    def exact(self) -> bool:
        return self.size == self.population


def difference_estimate(
    correct: np.ndarray, anchor: np.ndarray, anchor_accuracy: float, population: int,
    z: float = 1.959964,
) -> tuple[float, float, float]:
    """The full-set accuracy from a probe, given an exactly known earlier state.

    correct, anchor: (n,) 0/1 verdicts of the probe's samples now and at the anchor;
    anchor_accuracy: the anchor's exact accuracy over all ``population`` labelled samples.
    Returns ``(estimate, low, high)``: ``anchor_accuracy + mean(correct - anchor)``, clipped
    to [0, 1], with a normal 95% interval from the differences' variance (finite-population
    corrected, and with one +1 and one -1 difference added so that a probe in which nothing
    changed does not claim zero width). A probe of the whole population gives its exact
    accuracy. NaN for an empty probe.
    """
    correct = np.asarray(correct, np.float64)
    anchor = np.asarray(anchor, np.float64)
    n = correct.shape[0]
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    if n >= population:
        exact = float(correct.mean())
        return exact, exact, exact
    d = correct - anchor
    estimate = float(np.clip(anchor_accuracy + d.mean(), 0.0, 1.0))
    spread = np.concatenate([d, [1.0, -1.0]]).var(ddof=1)
    fpc = (population - n) / (population - 1) if population > 1 else 0.0
    half = z * math.sqrt(max(fpc, 0.0) * spread / n)
    return estimate, max(0.0, estimate - half), min(1.0, estimate + half)


class ProgressiveRefresh:
    """Features and logits of every sample, refreshed to a run's current model in batches.

    Parameters
    ----------
    run: the :class:`AdaptRun` whose model and refresh plan are used.
    features: (N, D) float32, logits: (N, C) float32, labels: (N,) int64 (-1 unknown):
        what is known now (e.g. the source model's extraction).
    fresh: whether those rows already are the refresh of the run's current step.
    probe_size: samples of the probe (rounded up to whole batches; 0: no probe).
    """

    def __init__(
        self,
        run: AdaptRun,
        features: np.ndarray,
        logits: np.ndarray,
        labels: np.ndarray,
        *,
        fresh: bool = False,
        probe_size: int = 1000,
    ) -> None:
        n = run.num_samples
        if features.shape[0] != n or logits.shape[0] != n or labels.shape[0] != n:
            raise ParameterError(
                "features",
                f"expected {n} rows (the run's samples), got {features.shape[0]} features, "
                f"{logits.shape[0]} logits and {labels.shape[0]} labels",
            )
        self.run = run
        self.features = np.array(features, np.float32)
        self.logits = np.array(logits, np.float32)
        self.labels = np.array(labels, np.int64)
        self.step = len(run.history)
        self._plan = run.refresh_batches()
        self._done = np.full(len(self._plan), bool(fresh))
        self.fresh = np.full(n, bool(fresh))
        self._shared = False
        self._probe: ProbeEstimate | None = None
        self._anchor, self._anchor_step = self._verdicts(), -1
        self.probe_batches = 0
        self._cursor = 0
        self.set_probe_size(probe_size)

    # ---- settings and state -------------------------------------------------------------
    def set_probe_size(self, probe_size: int) -> None:
        """Use the first batches holding at least ``probe_size`` samples as the probe."""
        count = self.run.probe_batch_count(probe_size)
        if count != self.probe_batches:
            self.probe_batches, self._probe = count, None
            self._update_probe()
        self._cursor = max(self._cursor, self.probe_batches)

    @property
    def complete(self) -> bool:
        """Every sample holds the refresh of the current step."""
        return bool(self._done.all())

    @property
    def probe_complete(self) -> bool:
        return bool(self._done[: self.probe_batches].all())

    @property
    def fraction(self) -> float:
        """Share of the samples that hold the refresh of the current step."""
        return float(self.fresh.mean())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """features (N, D), logits (N, C), labels (N,) as they are now; never written
        again (the next update works on copies)."""
        self._shared = True
        return self.features, self.logits, self.labels

    def probe(self) -> ProbeEstimate | None:
        """The probe's estimate for the current step (None until its batches are done,
        without a probe, or without labels in it)."""
        return self._probe

    def exact_accuracy(self) -> float | None:
        """The full-set accuracy of the current step once the refresh is complete."""
        if not self.complete:
            return None
        known = self.labels >= 0
        if not known.any():
            return None
        return float((self._predicted(self.logits[known]) == self.labels[known]).mean())

    # ---- updates ------------------------------------------------------------------------
    def on_step(self, record: StepRecord) -> None:
        """The run took ``record``'s step: its batch takes the step's own features and
        online logits; every sample is stale for the new model."""
        self._own()
        rows = np.asarray(record.batch_indices, np.int64)
        if record.batch_features is not None:
            self.features[rows] = record.batch_features
        self.logits[rows] = record.online_logits
        self.step = record.step
        self._done[:] = False
        self.fresh[:] = False
        self._probe = None

    def advance(
        self,
        *,
        until: str = "all",
        max_batches: int | None = None,
        seconds: float | None = None,
        cancel: Any = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Refresh batches until the probe (``until="probe"``) or everything (``"all"``) is
        done, ``max_batches`` were run, or ``seconds`` passed (at least one batch runs when
        any is left). Returns the batches run.

        ``cancel`` (a callable or an Event) is checked before each batch and raises
        :class:`CancelledError`; the batches done so far are kept (each is exact).
        ``progress(done, total)`` counts the batches of the current step.
        """
        if until not in UNTIL:
            raise ParameterError("until", f"must be one of {', '.join(UNTIL)}, got {until!r}")
        started = time.perf_counter()
        ran = 0
        while True:
            number = self._next_batch(until)
            if number is None or (max_batches is not None and ran >= max_batches):
                break
            if ran and seconds is not None and time.perf_counter() - started >= seconds:
                break
            if is_cancelled(cancel):
                raise CancelledError(f"refresh of step {self.step} paused after {ran} batches")
            idx, z, out, y = self.run.batch_features(number)
            self._own()
            self.features[idx], self.logits[idx], self.labels[idx] = z, out, y
            self.fresh[idx] = True
            self._done[number] = True
            if number >= self.probe_batches:
                self._cursor = number + 1
            ran += 1
            if self.complete:  # the exact numbers of this step anchor the next estimates
                self._anchor, self._anchor_step = self._verdicts(), self.step
            self._update_probe()
            if progress is not None:
                progress(int(self._done.sum()), len(self._plan))
        return ran

    # ---- internals ----------------------------------------------------------------------
    def _own(self) -> None:
        if self._shared:
            self.features, self.logits = self.features.copy(), self.logits.copy()
            self.labels, self._shared = self.labels.copy(), False

    def _next_batch(self, until: str) -> int | None:
        for number in range(self.probe_batches):
            if not self._done[number]:
                return number
        if until == "probe":
            return None
        rest = len(self._plan) - self.probe_batches
        for k in range(rest):
            number = self.probe_batches + (self._cursor - self.probe_batches + k) % rest
            if not self._done[number]:
                return number
        return None

    def _predicted(self, logits: np.ndarray) -> np.ndarray:
        """The predicted classes of ``logits`` as the run scores them (its head's map)."""
        return predicted_classes(logits, getattr(self.run, "prediction_map", None))

    def _verdicts(self) -> np.ndarray:
        """(N,) int8: 1 predicted right, 0 wrong, -1 unknown label (from the arrays now)."""
        right = (self._predicted(self.logits) == self.labels).astype(np.int8)
        return np.where(self.labels >= 0, right, np.int8(-1))

    def _update_probe(self) -> None:
        if self._probe is not None or not self.probe_batches or not self.probe_complete:
            return
        rows = np.concatenate(self._plan[: self.probe_batches])
        rows = rows[self.labels[rows] >= 0]
        if rows.size == 0:
            return
        known = self.labels >= 0
        correct = (self._predicted(self.logits[rows]) == self.labels[rows]).astype(np.float64)
        anchor = self._anchor[rows].astype(np.float64)
        anchor_accuracy = float((self._anchor[known] == 1).mean())
        population = int(known.sum())
        if self._anchor_step == self.step:  # this step's exact numbers are known
            estimate = low = high = anchor_accuracy
        else:
            estimate, low, high = difference_estimate(correct, anchor, anchor_accuracy, population)
        self._probe = ProbeEstimate(estimate, low, high, int(rows.size), population, self.step,
                                    float(correct.mean()), self._anchor_step)
