"""Declared parameters: one check with the messages the adapters gave, defaults equal to
each ``__init__``'s, text in and out."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest

from protoview.core.adapt.params import LR, Param, checked, format_value, parse_value
from protoview.core.adapt.registry import make_adapter, method_class, method_names
from protoview.core.adapt.tsd import TSDAdapter, TSDConfig
from protoview.errors import ParameterError
from tests._tta_models import tiny_model


def _init_defaults(name: str) -> dict[str, object]:
    cls = method_class(name)
    if cls is TSDAdapter:
        return {f.name: f.default for f in dataclasses.fields(TSDConfig)}
    signature = inspect.signature(cls.__init__)
    return {k: p.default for k, p in signature.parameters.items() if k not in ("self", "model")}


@pytest.mark.parametrize("name", method_names())
def test_declared_defaults_are_the_init_defaults(name: str) -> None:
    declared = {p.name: p.default for p in method_class(name).params}
    assert list(declared.items()) == list(_init_defaults(name).items())
    for p in method_class(name).params:
        assert p.check(p.default) == p.default  # each default passes its own check
        assert p.check(p.parse(format_value(p.default))) == p.default  # and survives text
        assert p.help and "\n" not in p.help


# the messages the adapters raised before the parameters were declared (tests and the
# bad-input corpus read them); TSD's update / variant now say it as every other method
MESSAGES = [
    ("tent", "lr", 0.0, "lr: the learning rate must be a finite number > 0, got 0.0"),
    ("tsd", "lr", True, "lr: the learning rate must be a finite number > 0, got True"),
    ("eata", "lr", float("inf"), "lr: the learning rate must be a finite number > 0, got inf"),
    ("t3a", "filter_K", 0, "filter_K: must be an integer >= 1, or -1 for all, got 0"),
    ("tsd", "filter_K", -2, "filter_K: must be an integer >= 1, or -1 for all, got -2"),
    ("tsd", "lam", -0.1, "lam: must be a finite number >= 0, got -0.1"),
    ("tsd", "update", "bias", "update: unknown choice 'bias'; choose one of all, affine, body, head"),
    ("tsd", "topk", 0, "topk: must be an integer >= 1, got 0"),
    ("tent", "steps", 0, "steps: must be an integer >= 1, got 0"),
    ("pl", "beta", 1.0, "beta: must be a number in [0, 1), got 1.0"),
    ("plc", "episodic", "yes", "episodic: must be True or False, got 'yes'"),
    ("eata", "e_margin", float("nan"), "e_margin: must be a finite number > 0, got nan"),
    ("eata", "d_margin", 0.0, "d_margin: must be a finite number > 0, got 0.0"),
    ("eata", "fisher_alpha", -1.0, "fisher_alpha: must be a finite number >= 0, got -1.0"),
    ("eata", "fisher_batches", 0, "fisher_batches: must be an integer >= 1, got 0"),
    ("sar", "rho", -0.1, "rho: must be a finite number >= 0, got -0.1"),
    ("sar", "margin_e0", 0.0, "margin_e0: must be a finite number > 0, got 0.0"),
    ("sar", "variant", "fixed", "variant: unknown choice 'fixed'; choose one of reference, corrected"),
    ("lame", "affinity", "cosine", "affinity: unknown choice 'cosine'; choose one of rbf, knn, linear"),
    ("lame", "knn", 2.5, "knn: must be an integer >= 1, got 2.5"),
    ("lame", "force_symmetry", "no", "force_symmetry: must be True or False, got 'no'"),
    ("bn", "lr", 0.1, "lr: not a parameter of 'bn' (accepted: none)"),
    ("tent", "filter_K", 5, "filter_K: not a parameter of 'tent' (accepted: lr, steps, episodic)"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "name", "value", "message"), MESSAGES)
def test_bad_values_give_the_same_messages(method, name, value, message) -> None:
    with pytest.raises(ParameterError) as info:
        make_adapter(method, tiny_model(), **{name: value})
    assert info.value.where == name and str(info.value) == message


def test_direct_construction_checks_through_the_declarations() -> None:
    from protoview.core.adapt.baselines import T3A, Tent

    with pytest.raises(ParameterError, match="^episodic: must be True or False, got 1$"):
        Tent(tiny_model(), episodic=1)  # was taken as bool(1) before it was declared
    assert T3A(tiny_model(), filter_K=-1).filter_K == -1
    assert TSDConfig(lr=1).lr == 1.0 and isinstance(TSDConfig(lr=1).lr, float)
    assert make_adapter("lame", tiny_model(), affinity="kNN").affinity == "knn"
    with pytest.raises(ParameterError, match="^method: unknown method 'no_such_method'; choose "):
        make_adapter("no_such_method", tiny_model())


def test_param_checks_each_kind() -> None:
    p = Param("k", 3, "k", kind="int", low=1, high=5)
    assert p.check(5) == 5 and p.requirement() == "an integer in [1, 5]"
    for bad in (0, 6, True, 2.0, "3", None):
        with pytest.raises(ParameterError, match=r"^k: must be an integer in \[1, 5\], got "):
            p.check(bad)
    q = Param("x", None, "x", low=0.0, high=1.0, low_open=True, optional=True)
    assert q.check(None) is None and q.check(1) == 1.0 and isinstance(q.check(1), float)
    assert q.spec() == "float in (0, 1] or none"
    for bad in (0.0, math.nan, math.inf, -math.inf, 1.5, "a"):
        with pytest.raises(ParameterError, match=r"^x: must be a number in \(0, 1\]"):
            q.check(bad)
    assert Param("u", 0.0, "u").requirement() == "a finite number"
    assert Param("t", "a", "t", kind="text").check("b") == "b"
    with pytest.raises(ParameterError, match="^t: must be a text, got 1$"):
        Param("t", "a", "t", kind="text").check(1)
    assert LR.describe() == (
        "lr (float > 0, default 0.0001): learning rate of the method's optimiser"
    )
    assert checked((LR, q), x=None, lr=1) == (None, 1.0)
    with pytest.raises(KeyError):
        checked((LR,), beta=1)


def test_bad_declarations_fail_at_once() -> None:
    with pytest.raises(ValueError):
        Param("a", 1, "a", kind="complex")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Param("a", "x", "a", kind="choice")  # no choices
    with pytest.raises(ParameterError):
        Param("a", 0.0, "a", low=0.0, low_open=True)  # a default its own check refuses


def test_text_is_read_as_the_parameter_reads_it() -> None:
    assert [parse_value(t) for t in ("true", "FALSE", "none", "3", "1e-3", "kNN", " 2 ")] == [
        True, False, None, 3, 1e-3, "kNN", 2]  # fmt: skip
    assert LR.parse("1") == 1.0 and isinstance(LR.parse("1"), float)
    assert LR.parse("lots") == "lots"  # and LR.check says what is wrong with it
    steps = Param("steps", 1, "s", kind="int", low=1)
    assert steps.parse("2") == 2 and steps.parse("2.5") == 2.5
    choice = Param("c", "a", "c", kind="choice", choices=("a", "1"))
    assert choice.parse("1") == "1" and choice.parse("None") is None
    assert [format_value(v) for v in (None, True, 1e-4, 2000.0, "rbf", 3)] == [
        "none", "true", "0.0001", "2000", "rbf", "3"]  # fmt: skip
