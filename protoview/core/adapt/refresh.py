"""The whole set's features for a run's current model, refreshed batch by batch.

After an adaptation step only the step's batch has features of the new model (the step's
own forward pass: :attr:`StepRecord.batch_features`); re-extracting every sample after
every step costs a forward pass over the whole set. :class:`ProgressiveRefresh` keeps the
newest known features and logits of every sample, moves the step's batch at once, and
brings the rest up to the current model one batch of the run's refresh plan
(:meth:`AdaptRun.refresh_batches`) at a time, whenever the caller has time: the
*refresh of step k*.

- The plan's first batches are the probe (:meth:`AdaptRun.probe_batch_count`): a fixed,
  stratified subset whose accuracy estimates the full-set accuracy at every step
  (:meth:`ProgressiveRefresh.probe`, with a 95% interval), refreshed first after each step.
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
from protoview.errors import CancelledError, ParameterError

UNTIL = ("all", "probe")


@dataclass(frozen=True)
class ProbeEstimate:
    """The full-set accuracy of one step estimated on the probe subset.

    accuracy: on the probe's labelled samples; low, high: its 95% interval (Wilson, with
    the finite-population correction: zero width when the probe is the whole set);
    size: labelled samples in the probe; population: labelled samples in the set;
    step: the model step it describes.
    """

    accuracy: float
    low: float
    high: float
    size: int
    population: int
    step: int

    @property
    def exact(self) -> bool:
        return self.size == self.population


def accuracy_interval(
    correct: int, n: int, population: int, z: float = 1.959964
) -> tuple[float, float]:
    """A 95% interval for an accuracy of ``correct / n`` on a sample of ``n`` drawn without
    replacement from ``population``: the Wilson score interval on the effective size
    ``n / fpc`` (``fpc = (population - n) / (population - 1)``). NaN for ``n == 0``; the
    point itself when the sample is the population."""
    if n <= 0:
        return float("nan"), float("nan")
    p = correct / n
    fpc = (population - n) / (population - 1) if population > 1 else 0.0
    if fpc <= 0:
        return p, p
    m = n / fpc
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z / (1 + z * z / m) * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
    return max(0.0, centre - half), min(1.0, centre + half)


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
        return float((self.logits[known].argmax(1) == self.labels[known]).mean())

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
            if cancel is not None and (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
                raise CancelledError(f"refresh of step {self.step} paused after {ran} batches")
            idx, z, out, y = self.run.batch_features(number)
            self._own()
            self.features[idx], self.logits[idx], self.labels[idx] = z, out, y
            self.fresh[idx] = True
            self._done[number] = True
            if number >= self.probe_batches:
                self._cursor = number + 1
            ran += 1
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

    def _update_probe(self) -> None:
        if self._probe is not None or not self.probe_batches or not self.probe_complete:
            return
        rows = np.concatenate(self._plan[: self.probe_batches])
        labels = self.labels[rows]
        known = labels >= 0
        population = int((self.labels >= 0).sum())
        if not known.any():
            return
        correct = int((self.logits[rows][known].argmax(1) == labels[known]).sum())
        n = int(known.sum())
        low, high = accuracy_interval(correct, n, population)
        self._probe = ProbeEstimate(correct / n, low, high, n, population, self.step)
