"""The linear probe equals SimSiam's main_lincls.py training on the same features, its
held-out accuracy equals a plain top-1; a probe checkpoint gives an encoder a head."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from protoview.core.probe import probe_accuracy, probe_split, train_linear_probe
from protoview.errors import ParameterError
from tests.oracles.simsiam_lincls import main_lincls


def _blobs(n=150, d=12, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centers = rng.normal(size=(c, d)) * 2
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize(("batch_size", "epochs", "wd"), [(32, 7, 0.0), (50, 3, 1e-4), (256, 5, 0.0)])
def test_probe_equals_main_lincls(batch_size, epochs, wd):
    x, y = _blobs()
    ours = train_linear_probe(x, y, 3, epochs=epochs, batch_size=batch_size, lr=0.1,
                              weight_decay=wd, seed=4)
    args = argparse.Namespace(lr=0.1, batch_size=batch_size, momentum=0.9, weight_decay=wd,
                              epochs=epochs, start_epoch=0)
    theirs = main_lincls(torch.from_numpy(x), torch.from_numpy(y), 3, args, seed=4)
    assert torch.equal(ours.head.weight, theirs.weight) and torch.equal(ours.head.bias, theirs.bias)


def test_held_out_accuracy_is_plain_top1():
    x, y = _blobs(200)
    train, held = probe_split(y, 0.5, seed=1)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 200
    probe = train_linear_probe(x, y, 3, train=train, held_out=held, epochs=20, seed=0)
    with torch.no_grad():
        logits = x[held] @ probe.head.weight.numpy().T + probe.head.bias.numpy()
    assert probe.held_out_accuracy == pytest.approx(float((logits.argmax(1) == y[held]).mean()), abs=0)
    assert probe.held_out_accuracy > 0.9  # separated blobs
    assert np.isnan(probe_accuracy(probe.head, x[:0], y[:0]))


def test_bad_probe_inputs():
    x, y = _blobs(30)
    with pytest.raises(ParameterError, match="--fraction"):
        probe_split(y, 1.0)
    with pytest.raises(ParameterError, match="no labels"):
        probe_split(np.full(5, -1), 0.5)
    with pytest.raises(ParameterError, match="--epochs"):
        train_linear_probe(x, y, 3, epochs=0)
    with pytest.raises(ParameterError, match="NaN"):
        train_linear_probe(np.full_like(x, np.nan), y, 3)
    with pytest.raises(ParameterError, match="probe has 2 classes"):
        train_linear_probe(x, y, 2)
