"""``protoview compare`` made reproducible: several seeds (mean ± sample std, every seed's
row in the CSV), error or accuracy, and the protocol every table carries."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from protoview.cli import main
from protoview.core.adapt.baselines import NoAdapt
from protoview.core.adapt.params import Param, checked
from protoview.core.adapt.registry import register, unregister
from protoview.core.compare import (
    CompareTable,
    compare_methods,
    parse_seeds,
    read_protocol,
    seed_everything,
)
from protoview.errors import ParameterError


def test_seeds_are_lists_ranges_or_both() -> None:
    assert parse_seeds("1,2,3,4,5") == parse_seeds("1-5") == parse_seeds([1, 2, 3, 4, 5])
    assert parse_seeds(" 0, 10-12 ") == [0, 10, 11, 12] and parse_seeds("7") == [7]
    assert parse_seeds([np.int64(3)]) == [3]
    for bad, line in (("", "expected seeds"), ("1,,2", "expected seeds"), ("²", "expected seeds"),
                      ("-1", ">= 0, got -1"), ("3-1", "runs backwards"), ("1,1", "listed twice"),
                      ([], "got none"), ([1.5], "whole number"), ([True], "whole number"),
                      ("0-4294967295", "at most 1000 seeds"), ([2**32], "between 0 and")):
        with pytest.raises(ParameterError, match=line) as info:
            parse_seeds(bad, "--seeds")
        assert info.value.where == "--seeds"


def _table(metric: str = "accuracy", seeds: tuple[int, ...] = (1, 2, 3)) -> CompareTable:
    """One method, two shifts, three seeds of made-up accuracies; full-set too."""
    online = np.array([[[0.50, 0.80]], [[0.60, 0.70]], [[0.55, 0.90]]])[: len(seeds)]
    full = online + 0.05
    return CompareTable(["tent"], ["noise", "blur"], online.mean(axis=0), full.mean(axis=0),
                        seeds=list(seeds), per_seed_online=online if len(seeds) > 1 else None,
                        per_seed_full=full if len(seeds) > 1 else None, metric=metric,
                        protocol={"batch_size": "64", "method tent": '{"lr": 0.001}'},
                        settings="batch 64")


def test_cells_are_the_mean_and_sample_std_over_seeds() -> None:
    table = _table()
    mean, std = table.summary()
    per_seed = [[0.50, 0.80], [0.60, 0.70], [0.55, 0.90]]
    for k in range(2):
        column = [row[k] for row in per_seed]
        assert mean[0, k] == pytest.approx(statistics.mean(column))
        assert std[0, k] == pytest.approx(statistics.stdev(column))  # ddof=1
    shift_means = [statistics.mean(row) for row in per_seed]  # the mean column: per seed first
    assert mean[0, 2] == pytest.approx(statistics.mean(shift_means))
    assert std[0, 2] == pytest.approx(statistics.stdev(shift_means))
    text = table.text().splitlines()
    assert text[0] == ("online accuracy over one pass / full-set accuracy after it (%), "
                       "mean ± std over 3 seeds; batch 64")
    assert text[2].split()[:4] == ["tent", "55.0", "±", f"{100 * std[0, 0]:.2f}"]
    rows = table.csv().splitlines()
    body = [r for r in rows if not r.startswith("# ")]
    assert body[0] == "method,seed,noise,blur,mean,noise full,blur full,mean full"
    assert [r.split(",")[:3] for r in body[1:]] == [
        ["tent", "1", "50.00"], ["tent", "2", "60.00"], ["tent", "3", "55.00"],
        ["tent", "mean", "55.00"], ["tent", "std", f"{100 * std[0, 0]:.2f}"]]
    assert body[1].split(",")[5] == "55.00"  # seed 1's full-set accuracy on noise
    assert table.markdown().splitlines()[-1].startswith(f"| tent | 55.0 ± {100 * std[0, 0]:.2f} / ")


def test_error_is_100_minus_accuracy_and_the_header_says_so() -> None:
    accuracy, error = _table(), _table("error")
    (acc_mean, acc_std), (err_mean, err_std) = accuracy.summary(), error.summary()
    np.testing.assert_allclose(err_mean, 1 - acc_mean)
    np.testing.assert_allclose(err_std, acc_std)
    assert error.text().startswith("online error over one pass / full-set error after it (%)")
    assert read_protocol(error.csv())["metric"].startswith("online error over one pass")
    seed_rows = [r.split(",") for r in error.csv(protocol=False).splitlines()[1:4]]
    assert [r[2] for r in seed_rows] == ["50.00", "40.00", "45.00"]


def test_one_seed_keeps_the_table_as_it_was() -> None:
    table = _table(seeds=(0,))
    assert table.text().splitlines()[:3] == [
        "online accuracy over one pass / full-set accuracy after it (%); batch 64",
        "method        noise         blur         mean",
        "tent    50.0 / 55.0  80.0 / 85.0  65.0 / 70.0"]
    assert table.csv(protocol=False).splitlines() == [
        "method,noise,blur,mean,noise full,blur full,mean full",
        "tent,50.00,80.00,65.00,55.00,85.00,70.00"]
    assert table.markdown(protocol=False).splitlines()[0] == "| method | noise | blur | mean |"
    csv_text, md_text = table.csv(), table.markdown()
    assert csv_text.endswith(table.csv(protocol=False))
    assert read_protocol(csv_text) == read_protocol(md_text) == {
        "metric": "online accuracy over one pass / full-set accuracy after it (%)",
        "batch_size": "64", "method tent": '{"lr": 0.001}'}


def test_seed_everything_seeds_torch_numpy_and_python() -> None:
    seed_everything(7)
    first = (torch.rand(3), np.random.rand(3), random.random())
    seed_everything(7)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]


class Drawer(NoAdapt):
    """The source model's logits plus noise drawn from torch's, numpy's and python's
    global generators: its predictions depend on every one of them."""

    method = "drawer"
    summary = "a test method: the source logits plus noise from torch, numpy and random"
    params = (Param("scale", 3.0, "noise scale", low=0.0, high=100.0),)

    def __init__(self, model: nn.Module, scale: float = 3.0) -> None:
        super().__init__(model)
        (self.scale,) = checked(self.params, scale=scale)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, logits = super()._features(x)
        n, c = logits.shape
        noise = (torch.randn(n, c) + torch.from_numpy(np.random.standard_normal((n, c))).float()
                 + torch.tensor([[random.gauss(0.0, 1.0) for _ in range(c)] for _ in range(n)]))
        return z, logits + self.scale * noise.to(logits)


@pytest.fixture
def drawer():
    register("drawer", "tests.test_compare_seeds:Drawer")
    yield "drawer"
    unregister("drawer")


@pytest.fixture(scope="module")
def small_shifts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two shifts of 48 demo digits each (npz), so that a run is a few small batches."""
    from protoview.core.data import open_dataset

    folder = tmp_path_factory.mktemp("shifts")
    paths = []
    for shift in ("noise", "blur"):
        data = open_dataset(f"demo:{shift}:3")
        path = folder / f"{shift}.npz"
        np.savez(path, x=data._images.numpy()[:48], y=data.labels[:48])
        paths.append(str(path))
    return paths


def test_each_seed_is_its_own_reproducible_run(drawer, small_shifts) -> None:
    """Every generator a method may draw from is seeded before each run: the same seeds give
    the same table, another seed another one, and a seed's row is that seed's run alone."""
    kwargs = dict(names=["noise", "blur"], batch_size=16, device="cpu")
    table = compare_methods("demo:linear", small_shifts, ["none", "drawer"], seeds="1-2", **kwargs)
    again = compare_methods("demo:linear", small_shifts, ["none", "drawer"], seeds=[1, 2], **kwargs)
    alone = compare_methods("demo:linear", small_shifts, ["drawer"], seed=2, **kwargs)
    assert table.seeds == [1, 2] and table.per_seed_online.shape == (2, 2, 2)
    assert np.array_equal(table.per_seed_online, again.per_seed_online)
    assert np.array_equal(table.per_seed_online[1, 1], alone.online[0])
    assert not np.array_equal(table.per_seed_online[0, 1], table.per_seed_online[1, 1])
    assert np.array_equal(table.per_seed_online[0, 0], table.per_seed_online[1, 0])  # none
    np.testing.assert_array_equal(table.online, table.per_seed_online.mean(axis=0))
    protocol = read_protocol(table.csv())
    assert protocol["method drawer"] == '{"scale": 3.0}' and protocol["method none"] == "{}"
    assert protocol["seeds"] == "1, 2" and protocol["samples_per_domain"] == "noise 48, blur 48"
    assert "numpy.random.seed(seed)" in protocol["seeding"]


def _protocol_of(path: Path) -> dict[str, str]:
    return read_protocol(path.read_text())


def test_two_tables_are_told_apart_by_their_headers(capsys, tmp_path, small_shifts) -> None:
    """Two tables of the same methods on the same data, made with other settings: their
    headers (CSV and Markdown alike) differ exactly where the settings do."""
    data = small_shifts[0]
    common = ["compare", "demo:linear", data, "--methods", "none,tent", "--device", "cpu"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*common, "--seeds", "1,2", "--metric", "error", "--batch-size", "16",
                 "--csv", f"{a}.csv", "--markdown", f"{a}.md"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("online error over one pass (%), mean ± std over 2 seeds; "
                              f"demo:linear on {data}; batch 16, seeds 1,2, ")
    assert main([*common, "--batch-size", "32", "--param", "tent.lr=0.01", "--stream",
                 "episodic", "--csv", f"{b}.csv", "--markdown", f"{b}.md"]) == 0
    capsys.readouterr()
    first, second = _protocol_of(Path(f"{a}.csv")), _protocol_of(Path(f"{b}.csv"))
    assert first == _protocol_of(Path(f"{a}.md")) and second == _protocol_of(Path(f"{b}.md"))
    differ = {k for k in first.keys() | second.keys() if first.get(k) != second.get(k)}
    assert differ == {"metric", "seeds", "spread", "setting", "batch_size", "method tent"}
    assert first["method tent"] == '{"lr": 0.001, "steps": 1, "episodic": false}'
    assert second["method tent"] == '{"lr": 0.01, "steps": 1, "episodic": false}'
    assert first["spread"] == "sample standard deviation over the seeds (ddof=1)"
    assert second["setting"].startswith("episodic (episodic (reset before every batch)); each")
    assert first["batch_size"] == "16" and first["samples_per_domain"].endswith(" 48")
    from protoview import __version__

    assert first["protoview_version"] == __version__ and len(first["checkpoint_sha256"]) == 64
    assert first["preprocess"].startswith("size=8,channels=1,") and first["preprocess_source"]
    assert first["data"] == data and first[f"dataset {first['order_of_domains']}"].endswith(
        f"({data})")
    rows = [r.split(",") for r in Path(f"{a}.csv").read_text().splitlines()
            if not r.startswith("# ")]
    assert rows[0][:2] == ["method", "seed"] and rows[0][-1] == "mean"
    assert [r[:2] for r in rows[1:]] == [["none", "1"], ["none", "2"], ["none", "mean"],
                                         ["none", "std"], ["tent", "1"], ["tent", "2"],
                                         ["tent", "mean"], ["tent", "std"]]
    for r in rows[1:]:
        assert all(0.0 <= float(v) <= 100.0 for v in r[2:])
