"""``protoview adapt``: every registered method is a choice; ``--param NAME=VALUE`` reaches it."""

from __future__ import annotations

import argparse

import pytest

from protoview.cli import build_parser, main
from protoview.cli._science import _adapt_params
from protoview.core.adapt.registry import method_names
from protoview.errors import ParameterError


def test_method_names_are_the_registry() -> None:
    names = method_names()
    assert len(names) == len(set(names))
    for name in ("pl", "plc", "shot_im", "eata", "sar", "lame"):
        assert name in names
    parser = build_parser()
    for name in names:  # every registered method is a --method choice
        assert parser.parse_args(["adapt", "demo", "demo", "--method", name]).method == name


def _args(**kw) -> argparse.Namespace:
    base = {"lr": None, "filter_k": None, "lam": None, "update": None, "variant": None, "param": []}
    return argparse.Namespace(**{**base, **kw})


def test_param_values_are_typed() -> None:
    params = _adapt_params(_args(lr=0.01, param=[
        "beta=0.8", "steps=2", "episodic=true", "e_margin=none", "affinity=kNN", " knn = 3 ",
    ]))  # fmt: skip
    assert params == (
        ("lr", 0.01), ("beta", 0.8), ("steps", 2), ("episodic", True), ("e_margin", None),
        ("affinity", "kNN"), ("knn", 3),
    )  # fmt: skip


@pytest.mark.parametrize("bad", [["beta"], ["=3"], ["lr=1", "lr=2"]])
def test_malformed_or_repeated_params_are_refused(bad: list[str]) -> None:
    with pytest.raises(ParameterError) as info:
        _adapt_params(_args(param=bad))
    assert info.value.where == "--param"
    with pytest.raises(ParameterError, match="given twice"):
        _adapt_params(_args(lr=0.1, param=["lr=0.2"]))


@pytest.mark.slow
def test_adapt_with_a_new_method_and_a_param(capsys, tmp_path) -> None:
    out = tmp_path / "run.h5"
    argv = ["adapt", "demo", "demo:noise:3", "--method", "pl", "--steps", "2",
            "--param", "beta=0.8", "--variant", "corrected", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "after 2 steps of pl" in text
    from protoview.core.snapshot import read_snapshot

    attrs = read_snapshot(out).attrs
    assert attrs["method"] == "pl"
    assert attrs["params"]["beta"] == 0.8 and attrs["params"]["variant"] == "corrected"


@pytest.mark.slow
def test_a_parameter_out_of_range_is_one_line_naming_it(capsys) -> None:
    argv = ["adapt", "demo", "demo:noise:3", "--method", "sar", "--steps", "1",
            "--param", "rho=-1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("protoview: error: rho: must be") and "Traceback" not in err[-1]
