"""``protoview adapt --stream`` and ``protoview compare``: one clear line for each bad input."""

from __future__ import annotations

import pytest

from protoview.cli import main
from protoview.cli._compare import _params
from protoview.errors import ParameterError


def test_compare_params_go_to_one_method_or_to_all() -> None:
    assert _params(["tent.lr=1e-3", "filter_K=20", "tsd:corrected.lam=0.5"]) == {
        "tent": {"lr": 1e-3}, "*": {"filter_K": 20}, "tsd:corrected": {"lam": 0.5}}
    with pytest.raises(ParameterError, match="given twice"):
        _params(["tent.lr=1", "tent.lr=2"])
    with pytest.raises(ParameterError, match="expected"):
        _params(["lr"])


@pytest.mark.parametrize(("argv", "line"), [
    (["adapt", "demo", "demo", "--stream", "sideways"], "stream: unknown setting 'sideways'"),
    (["adapt", "demo", "demo", "--stream", "dirichlet=0"], "stream: the Dirichlet concentration must be a finite number > 0"),
    (["compare", "demo", "demo", "--methods", "bn,magic"], "methods: unknown method 'magic'"),
    (["compare", "demo", "demo", "--stream", "online,episodic"], "stream: online and episodic are both given"),
    (["compare", "demo", "demo", "--methods", "bn", "--param", "lr=1"], "lr: no compared method takes it"),
    (["compare", "demo", "demo", "--methods", "tent", "--param", "tent.beta=1"], "beta: not a parameter of 'tent'"),
    (["compare", "demo", "demo", "--shifts", "noise,,blur"], "has an empty entry"),
    (["compare", "demo", "demo", "--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    (["compare", "demo", "/nonexistent/folder", "--shifts", "a"], "names no shift or domain to replace"),
    (["compare", "demo", "demo", "--csv", "/nonexistent/folder/t.csv"], "the folder to write into does not exist"),
    (["compare", "demo", "demo", "--seeds", ""], "--seeds: expected seeds like 1,2,3 or 1-5, got ''"),
    (["compare", "demo", "demo", "--seeds", "1,,2"], "--seeds: expected seeds like 1,2,3 or 1-5, got '1,,2'"),
    (["compare", "demo", "demo", "--seeds", "1,x"], "--seeds: expected seeds like 1,2,3 or 1-5, got 'x'"),
    (["compare", "demo", "demo", "--seeds", "1-"], "--seeds: expected seeds like 1,2,3 or 1-5, got '1-'"),
    (["compare", "demo", "demo", "--seeds", "-1"], "--seeds: a seed must be >= 0, got -1"),
    (["compare", "demo", "demo", "--seeds=-3,1"], "--seeds: a seed must be >= 0, got -3"),
    (["compare", "demo", "demo", "--seeds", "5-1"], "--seeds: the range 5-1 runs backwards"),
    (["compare", "demo", "demo", "--seeds", "1-3,2"], "--seeds: seed 2 is listed twice"),
    (["compare", "demo", "demo", "--seeds", "4294967296"], "--seeds: a seed must be between 0 and 4294967295"),
    (["compare", "demo", "demo", "--seeds", "0-5000"], "--seeds: at most 1000 seeds"),
    (["compare", "demo", "demo", "--seed", "-2"], "--seed: a seed must be between 0 and 4294967295, got -2"),
    (["compare", "demo", "demo", "--seed", "1", "--seeds", "1,2"], "--seeds: give --seed N or --seeds LIST, not both"),
    (["compare", "demo", "demo", "--metric", "top5"], "--metric: unknown metric 'top5'; choose accuracy or error"),
    (["compare", "demo", "demo", "--metric", ""], "--metric: unknown metric ''"),
])
def test_bad_input_is_one_line(capsys, argv, line) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("protoview: error: ") and line in err[0], err


@pytest.mark.slow
def test_compare_prints_and_writes_the_table(capsys, tmp_path) -> None:
    csv_path, md_path = tmp_path / "t.csv", tmp_path / "t.md"
    argv = ["compare", "demo:linear", "demo:noise:3", "--shifts", "noise,blur", "--methods",
            "none,bn,tsd:corrected", "--device", "cpu", "--csv", str(csv_path),
            "--markdown", str(md_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "online accuracy over one pass (%); demo:linear on demo:noise:3" in out
    assert "tsd:corrected" in out and f"wrote {csv_path}" in out
    first = csv_path.read_text()
    rows = [r for r in first.splitlines() if not r.startswith("# ")]
    assert rows[0] == "method,noise,blur,mean" and [r.split(",")[0] for r in rows[1:]] == [
        "none", "bn", "tsd:corrected"]
    assert "\n| method | noise | blur | mean |\n" in md_path.read_text()
    assert main(argv) == 0  # seeded: the same table again, protocol and all
    assert csv_path.read_text() == first


@pytest.mark.slow
def test_adapt_continual_says_each_domains_online_accuracy(capsys, tmp_path) -> None:
    out = tmp_path / "run.h5"
    argv = ["adapt", "demo", "demo:noise,blur:3", "--method", "bn", "--stream", "continual",
            "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "steps of bn (continual stream)" in text
    assert "online accuracy per domain: noise " in text and ", blur " in text
    assert main(["info", str(out)]) == 0
    # batches are cut per domain (the toolkit's loaders): 539 = 8 x 64 + 27, twice
    assert "Runs (1): #1 bn, stream continual, 18 steps" in capsys.readouterr().out


@pytest.mark.slow
def test_streams_and_compare_on_the_benchmark_layouts(capsys, tmp_path) -> None:
    """CIFAR-10-C corruptions in sequence (continual, Dirichlet labels) and PACS domains as
    the columns of a table, as they lie on disk, with a model of one's own."""
    import torch

    from tests._benchmark_fixtures import make_cifar_c, make_domainbed
    from tests._ckpt_fixtures import write_arch_file

    arch = write_arch_file(tmp_path / "net.py", """
        from torch import nn

        def build(classes=10):
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

        def build7():
            return build(7)
    """)
    import importlib.util

    spec = importlib.util.spec_from_file_location("net_for_test", arch)
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    torch.manual_seed(0)
    torch.save(net.build().state_dict(), tmp_path / "c10.pt")
    torch.save(net.build7().state_dict(), tmp_path / "pacs.pt")

    make_cifar_c(tmp_path / "CIFAR-10-C", ("gaussian_noise", "fog"), n=20)
    run = tmp_path / "run.h5"
    argv = ["adapt", str(tmp_path / "c10.pt"), f"cifar10c:{tmp_path}:gaussian_noise,fog:3",
            "--arch", f"{arch}:build", "--split", "5", "--preprocess", "cifar10", "--method", "tent",
            "--stream", "continual,dirichlet=0.5", "--batch-size", "8", "--out", str(run)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(continual,dirichlet=0.5 stream)" in out
    assert "online accuracy per domain: gaussian_noise " in out and ", fog " in out

    make_domainbed(tmp_path, per_class=3)
    argv = ["compare", str(tmp_path / "pacs.pt"), f"pacs:{tmp_path}:art_painting",
            "--shifts", "art_painting,cartoon", "--methods", "none,bn,tent", "--arch",
            f"{arch}:build7", "--split", "5", "--preprocess", "domainbed,size=16", "--batch-size", "8",
            "--device", "cpu"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["method", "art_painting", "cartoon", "mean"]
    assert [line.split()[0] for line in lines[2:5]] == ["none", "bn", "tent"]
