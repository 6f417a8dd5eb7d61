"""A linear probe on frozen features: the evaluation self-supervised papers report, and a head
for an encoder that has none.

:func:`train_linear_probe` trains ``nn.Linear(D, C)`` as facebookresearch/simsiam's
``main_lincls.py`` trains its ``fc`` (commit a7bc177, the SGD path; oracle
``tests/oracles/simsiam_lincls.py``): weight ~ N(0, 0.01), bias 0, cross-entropy, SGD with
momentum 0.9 and weight decay 0 at ``lr * batch_size / 256``, the learning rate set at each
epoch's start to ``init_lr * 0.5 * (1 + cos(pi * epoch / epochs))``, the samples reshuffled
every epoch, 90 epochs. The differences, by design: it trains on the frozen features of the
images as the data give them (no RandomResizedCrop / flip: the features are extracted once,
so the probe takes seconds), and one seeded generator (``seed``) draws the initial weights
and the loader's order (the script uses the global RNG).

:func:`probe_split` holds out part of a labelled dataset (stratified by class); the held-out
accuracy is what ``main_lincls.py``'s ``validate`` reports (top-1 of ``argmax`` logits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from protoview.errors import ParameterError


@dataclass
class LinearProbe:
    """A trained probe. head: ``nn.Linear(D, C)`` (eval mode, CPU); train_accuracy /
    held_out_accuracy: top-1 on the training / held-out samples (NaN when there are none);
    train / held_out: the sample indices; epochs, lr (the initial, scaled), batch_size."""

    head: nn.Linear
    train_accuracy: float
    held_out_accuracy: float
    train: np.ndarray
    held_out: np.ndarray
    epochs: int
    lr: float
    batch_size: int


def check_fraction(fraction: float) -> None:
    """ParameterError (``--fraction``) unless 0 < fraction < 1."""
    if not 0.0 < float(fraction) < 1.0:
        raise ParameterError("--fraction", f"must be between 0 and 1 (exclusive), got {fraction}")


def probe_split(labels: Any, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: ``fraction`` of each class's labelled samples (at least one)
    for training, the rest held out; unlabelled samples (-1) in neither.

    Raises ParameterError (``--fraction``) for a fraction outside (0, 1) and when no sample
    has a label.
    """
    check_fraction(fraction)
    y = np.asarray(labels, np.int64)
    if not (y >= 0).any():
        raise ParameterError("--fraction", "the data have no labels: a probe needs labelled samples")
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(y[y >= 0]):
        members = rng.permutation(np.flatnonzero(y == c))
        k = min(len(members), max(1, round(fraction * len(members))))
        train.append(members[:k])
        held.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _check(features: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int, lr: float) -> None:
    if features.ndim != 2 or len(features) == 0:
        raise ParameterError("features", f"must be a non-empty (N, D) array, got {features.shape}")
    if not np.isfinite(features).all():
        raise ParameterError("features", "hold NaN or Inf values")
    if (labels < 0).any():
        raise ParameterError("labels", "every training sample needs a label (>= 0)")
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(name, f"must be a whole number >= 1, got {value!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise ParameterError("--lr", f"must be a positive number, got {lr!r}")


def train_linear_probe(
    features: Any, labels: Any, num_classes: int, *, train: Any = None, held_out: Any = None,
    epochs: int = 90, batch_size: int = 256, lr: float = 0.1, momentum: float = 0.9,
    weight_decay: float = 0.0, seed: int = 0,
) -> LinearProbe:
    """Train ``nn.Linear(D, num_classes)`` on ``features[train]`` (see the module docstring).

    features: (N, D) float; labels: (N,) int64; train / held_out: index arrays (None: every
    labelled sample trains, none is held out); lr: per 256 samples (``main_lincls.py``'s
    ``--lr``, scaled by ``batch_size / 256``). Deterministic for a seed.
    """
    x_all = np.asarray(features, np.float32)
    y_all = np.asarray(labels, np.int64)
    train = np.flatnonzero(y_all >= 0) if train is None else np.asarray(train, np.int64)
    held_out = np.zeros(0, np.int64) if held_out is None else np.asarray(held_out, np.int64)
    x, y = torch.from_numpy(x_all[train]), torch.from_numpy(y_all[train])
    _check(x_all[train], y_all[train], epochs, batch_size, float(lr))
    if num_classes < 1 or int(y.max()) >= num_classes:
        raise ParameterError("labels", f"labels go up to {int(y.max())} but the probe has {num_classes} classes")
    generator = torch.Generator().manual_seed(int(seed))
    head = nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(mean=0.0, std=0.01, generator=generator)
        head.bias.zero_()
    init_lr = lr * batch_size / 256
    optimizer = torch.optim.SGD(head.parameters(), init_lr, momentum=momentum, weight_decay=weight_decay)
    criterion = nn.CrossEntropyLoss()
    # the authors' loader: shuffled every epoch, the last batch kept (one process, no workers)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                         shuffle=True, generator=generator)
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = init_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        for inputs, target in loader:
            loss = criterion(head(inputs), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    return LinearProbe(head, probe_accuracy(head, x_all[train], y_all[train]),
                       probe_accuracy(head, x_all[held_out], y_all[held_out]), train, held_out,
                       epochs, init_lr, batch_size)


@torch.no_grad()
def probe_accuracy(head: nn.Module, features: Any, labels: Any) -> float:
    """Top-1 accuracy of ``argmax head(features)`` against ``labels`` (NaN for no sample)."""
    y = np.asarray(labels, np.int64)
    if len(y) == 0:
        return float("nan")
    logits = head(torch.as_tensor(np.asarray(features, np.float32)))
    return float((logits.argmax(1).numpy() == y).mean())
