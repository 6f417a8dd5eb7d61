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


def test_probe_command_gives_an_encoder_a_head(tmp_path, capsys):
    import warnings

    from protoview.cli import main
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.session import Session
    from tests import _ssl_fixtures as sf

    path = sf.write_swav(tmp_path / "swav.pth.tar", sf.swav_model())
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8), y=np.arange(30) % 3)
    out = tmp_path / "probe.pt"
    common = ["--arch", "resnet18", "--preprocess", "size=32", "--device", "cpu", "--no-cache"]
    assert main(["probe", str(path), str(data), *common, "--epochs", "3", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "held-out accuracy" in said and "on 15 samples" in said and "as its fc (3 classes)" in said
    encoder = load_checkpoint(path, "resnet18")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probed = load_checkpoint(out)
    assert probed.has_head and probed.info.head.num_classes == 3 and probed.info.arch == "resnet18 (torchvision)"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(probed.featurizer(x), encoder.featurizer(x))
    assert probed.info.transform.size == (32, 32)
    session = Session(probed, None)
    session.check_adaptable()  # a head: adaptation may run
    assert main(["probe", str(path), str(data), *common, "--features", "projection", "--out", str(out)]) == 2
    assert "--out: a probe checkpoint puts the probe in the architecture's head" in capsys.readouterr().err
