"""One adaptation step's record, :class:`StepRecord`: what
:class:`~protoview.core.adapt.run.AdaptRun` keeps in its history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StepRecord:
    """One adaptation step.

    step: 1-based step number since the last reset; batch_indices: (B,) int64 dataset
    indices; online_logits: (B, C) float32 logits predicted before the update;
    online_predictions: (B,) int64; online_accuracy: this batch (NaN without labels);
    cumulative_accuracy: over the pass so far; full_accuracy: whole set (when evaluated);
    seconds: wall time of the step; pass_index: 0-based pass; loss: the adapter's loss;
    batch_features: (B, D) float32 features of the same forward pass as the online logits
    (None when the adapter's featurizer was not called); batch_domains: (B,) int64 domain
    of each sample (None for data of one domain); domain_starts: the domains whose first
    sample of this pass is in this batch, in stream order (``continual``, ``gradual``: the
    domain whose segment starts here, where the stream changes shift or severity);
    reset_before: the adapter was reset to the source before this batch (``episodic``,
    ``reset_each_shift``).
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
    batch_features: np.ndarray | None = None
    batch_domains: np.ndarray | None = None
    domain_starts: tuple[int, ...] = ()
    reset_before: bool = False
