"""A run's batch order by default is the benchmark's own (issue 23, item 3).

CIFAR-10-C / CIFAR-100-C: the file order, as RobustBench's ``load_cifar10c`` and tent's
``cifar10c.py`` stream it (``shuffle=False``); CCC: always its order; everything else:
shuffled with the seed (TSD's ``adapt_loader`` and the toolkit shuffle). The order is
printed with the run, chosen with ``--order`` (``--no-shuffle`` = ``--order file``), and the
window's order control starts at the data's own.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from protoview.cli import main
from protoview.core.adapt.stream import run_order
from tests._benchmark_fixtures import make_cifar_c
from tests._ckpt_fixtures import write_arch_file

ARCH = """
    from torch import nn

    def build(classes=10):
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
"""


def _cifar_c_model(tmp_path):
    import importlib.util

    arch = write_arch_file(tmp_path / "net.py", ARCH)
    spec = importlib.util.spec_from_file_location("net_for_order_test", arch)
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    torch.manual_seed(0)
    model = net.build()
    torch.save(model.state_dict(), tmp_path / "c10.pt")
    make_cifar_c(tmp_path / "CIFAR-10-C", ("gaussian_noise", "fog"), n=24)
    return arch, model


def _open(spec: str):
    from protoview.core.data import open_dataset
    from protoview.core.preprocess import resolve_preprocess

    return open_dataset(spec, resolve_preprocess("size=32,mean=0,std=1", None, "")[0])


def test_the_data_say_their_order(tmp_path) -> None:
    make_cifar_c(tmp_path / "CIFAR-10-C", ("gaussian_noise", "fog"), n=4)
    one = _open(f"cifar10c:{tmp_path}:fog:3")
    assert run_order(one, None, 5) == (
        False, "file order, as RobustBench's load_cifar10c and tent's CIFAR-10-C scripts")
    assert run_order(one, True, 5) == (True, "shuffled, seed 5")
    assert run_order(one, False, 5) == (False, "file order")
    both = _open(f"cifar10c:{tmp_path}:gaussian_noise,fog:3")  # domains one after another
    assert run_order(both, None, 0)[0] is False
    from protoview.core.data import open_dataset

    assert run_order(open_dataset("demo:noise:3"), None, 2) == (True, "shuffled, seed 2")

    class CCC:  # a dataset whose order is the benchmark
        stream_order = "file"

    assert run_order(CCC(), True, 0) == (False, "file order, the benchmark's own stream")


def test_tent_by_default_equals_tents_cifar10c_loop(tmp_path, capsys) -> None:
    """``protoview adapt`` with no order option streams CIFAR-10-C as tent's script does:
    the batches are the file's rows in order, and the online logits equal the authors' Tent
    (the toolkit's port, tests/oracles/toolkit_tent.py) fed those rows batch by batch."""
    from protoview.core.snapshot import read_snapshot
    from tests.oracles.toolkit_tent import Tent

    arch, model = _cifar_c_model(tmp_path)
    out = tmp_path / "run.h5"
    argv = ["adapt", str(tmp_path / "c10.pt"), f"cifar10c:{tmp_path}:fog:5", "--arch",
            f"{arch}:build", "--split", "5", "--preprocess", "size=32,mean=0,std=1",
            "--method", "tent", "--batch-size", "8", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert ("order: file order, as RobustBench's load_cifar10c and tent's CIFAR-10-C "
            "scripts") in said
    s = read_snapshot(out)
    batches = s.history["batch_indices"]
    assert np.array_equal(np.concatenate(batches), np.arange(24))
    assert int(s.runs[0]["attrs"]["shuffle"]) == 0

    rows = np.load(tmp_path / "CIFAR-10-C" / "fog.npy")[4 * 24:]  # severity 5: the last fifth
    x = torch.from_numpy(rows).permute(0, 3, 1, 2).float() / 255
    oracle = Tent(copy.deepcopy(model), lr=1e-3)
    logits = np.concatenate(s.history["online_logits"]).reshape(24, 10)
    for k in range(3):
        expected = oracle(x[8 * k:8 * (k + 1)]).detach().numpy()
        np.testing.assert_allclose(logits[8 * k:8 * (k + 1)], expected, rtol=0, atol=1e-6)

    assert main(["info", str(tmp_path / "c10.pt"), f"cifar10c:{tmp_path}:fog:5", "--arch",
                 f"{arch}:build", "--split", "5", "--preprocess", "size=32,mean=0,std=1"]) == 0
    assert ("run order:   file order, as RobustBench's load_cifar10c and tent's CIFAR-10-C "
            "scripts (adapt / compare: --order shuffled to shuffle)") in capsys.readouterr().out
    assert main([*argv[:-2], "--order", "shuffled"]) == 0
    assert "order: shuffled, seed 0" in capsys.readouterr().out


def test_order_options_and_their_one_line(tmp_path, capsys) -> None:
    assert main(["adapt", "demo", "demo:noise:3", "--steps", "1", "--no-shuffle",
                 "--order", "shuffled"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-shuffle" in err[0] and "--order shuffled" in err[0]
    assert main(["adapt", "demo", "demo:noise:3", "--steps", "1", "--no-shuffle"]) == 0
    assert "order: file order\n" in capsys.readouterr().out
    assert main(["adapt", "demo", "demo:noise:3", "--steps", "1", "--seed", "4"]) == 0
    assert "order: shuffled, seed 4" in capsys.readouterr().out


def test_compare_says_the_order_in_its_protocol(tmp_path, capsys) -> None:
    arch, _model = _cifar_c_model(tmp_path)
    csv = tmp_path / "t.csv"
    argv = ["compare", str(tmp_path / "c10.pt"), f"cifar10c:{tmp_path}:fog:5", "--shifts",
            "fog,gaussian_noise", "--methods", "none,tent", "--arch", f"{arch}:build",
            "--split", "5", "--preprocess", "size=32,mean=0,std=1", "--batch-size", "8",
            "--device", "cpu", "--csv", str(csv)]
    assert main(argv) == 0
    text = capsys.readouterr().out + csv.read_text()
    assert "file order, as RobustBench's load_cifar10c" in text
    assert main([*argv, "--order", "shuffled"]) == 0
    text = capsys.readouterr().out + csv.read_text()
    assert "default_rng([seed, 0])" in text and "file order" not in text
