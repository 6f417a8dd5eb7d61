"""A method registered in one line is everywhere: ``adapt --help``, ``methods``,
``make_adapter``, the window's method list and controls, and ``compare``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from protoview.cli import main
from protoview.core.adapt.baselines import NoAdapt
from protoview.core.adapt.params import Param, checked
from protoview.core.adapt.registry import (
    compare_method_names,
    make_adapter,
    method_class,
    method_defaults,
    method_names,
    method_params,
    method_summary,
    register,
    unregister,
    window_params,
)
from protoview.errors import ParameterError
from tests._tta_models import batches, tiny_model


class Dummy(NoAdapt):
    """The source model's logits times ``scale``: the same predictions as ``none``."""

    method = "dummy"
    summary = "a test method: the source model's logits times a scale"
    params = (
        Param("scale", 1.0, "multiplies the logits", low=0.0, low_open=True, high=10.0,
              window=True, decimals=2),
        Param("note", "hi", "a text the window does not show", kind="text"),
    )  # fmt: skip

    def __init__(self, model: nn.Module, scale: float = 1.0, note: str = "hi") -> None:
        super().__init__(model)
        self.scale, self.note = checked(self.params, scale=scale, note=note)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, logits = super()._features(x)
        return z, logits * self.scale


@pytest.fixture
def dummy():
    register("dummy", "tests.test_registry:Dummy")
    yield "dummy"
    unregister("dummy")


def test_the_dummy_is_a_method_with_its_parameters(dummy) -> None:
    assert method_names()[-1] == "dummy" and "dummy" in compare_method_names()
    assert method_class("dummy") is Dummy
    assert method_defaults("dummy") == {"scale": 1.0, "note": "hi"}
    assert [p.name for p in window_params("dummy")] == ["scale"]
    assert method_summary("dummy").startswith("a test method")
    adapter = make_adapter("dummy", tiny_model(), scale=2.0)
    assert isinstance(adapter, Dummy) and adapter.method == "dummy"
    x = batches(1)[0]
    torch.testing.assert_close(adapter.step(x), 2.0 * make_adapter("none", tiny_model()).step(x))
    with pytest.raises(ParameterError, match=r"^scale: must be a number in \(0, 10\], got 0$"):
        make_adapter("dummy", tiny_model(), scale=0)
    with pytest.raises(
        ParameterError,
        match=r"^lr: not a parameter of 'dummy' \(accepted: "
        r"scale, note\)$",
    ):
        make_adapter("dummy", tiny_model(), lr=0.1)


def test_the_dummy_is_in_adapt_help_and_methods(dummy, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["adapt", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "dummy: a test method: the source model's logits times a scale" in text
    assert "scale (float in (0, 10], default 1): multiplies the logits [window]" in text
    assert "note (text, default hi): a text the window does not show" in text
    assert re.search(r"--method \{[a-z0-9_,]*,dummy\}", text)
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    assert "dummy: a test method" in text and "scale (float in (0, 10]" in text
    assert main(["methods", "--markdown"]) == 0
    assert "| `dummy` | a test method" in capsys.readouterr().out
    assert main(["adapt", "demo", "demo", "--method", "dummy", "--param", "scale=0"]) == 2
    assert "protoview: error: scale: must be a number in (0, 10], got 0" in capsys.readouterr().err


def test_the_dummy_is_in_the_window_with_its_control(dummy, qtbot) -> None:
    from PySide6 import QtWidgets

    from protoview.gui.panels import AdaptPanel

    panel = AdaptPanel()
    qtbot.addWidget(panel)
    offered = [panel.method.itemText(i) for i in range(panel.method.count())]
    assert offered == list(method_names()) and panel.method.currentText() == "tsd"
    panel.method.setCurrentText("dummy")
    scale = panel.params_form.widget("scale")
    assert isinstance(scale, QtWidgets.QDoubleSpinBox)
    assert (scale.minimum(), scale.maximum(), scale.value()) == (0.01, 10.0, 1.0)
    assert panel.params_form.widget("note") is None and panel.lr is None
    scale.setValue(2.5)
    request = panel.request(1)
    assert request.method == "dummy" and request.params == (("scale", 2.5),)
    panel.method.setCurrentText("tent")  # each method keeps its own controls and values
    assert panel.request(1).params == (("lr", 1e-3),)
    panel.method.setCurrentText("dummy")
    assert panel.request(1).params == (("scale", 2.5),)


def test_compare_runs_the_dummy(dummy) -> None:
    from protoview.core.compare import compare_methods, method_params, parse_methods

    assert parse_methods("none,dummy") == ["none", "dummy"]
    assert method_params(["dummy"], {"*": {"scale": 3.0}}) == {"dummy": {"scale": 3.0}}
    table = compare_methods(
        "demo",
        ["demo:noise:1"],
        ["none", "dummy"],
        batch_size=512,
        params={"dummy": {"scale": 2.0}},
        device="cpu",
    )
    assert table.rows == ["none", "dummy"]
    # scaled logits predict the same classes as the source model
    assert np.isfinite(table.online).all() and table.online[0, 0] == table.online[1, 0]


def test_register_refuses_what_it_cannot_use() -> None:
    for name, target in (
        ("Bad Name", "a.b:C"),
        ("tsd:x", "a.b:C"),
        ("ok", "no_colon"),
        ("tent", "protoview.core.adapt.baselines:Tent"),
    ):
        with pytest.raises(ValueError):
            register(name, target)
    with pytest.raises(KeyError):
        unregister("never_registered")
    register("not_its_name", "protoview.core.adapt.baselines:Tent")
    try:
        with pytest.raises(TypeError, match="method = 'not_its_name'"):
            method_params("not_its_name")
    finally:
        unregister("not_its_name")
    with pytest.raises(ParameterError, match="unknown method 'no_such_method'; choose one of none"):
        method_params("no_such_method")


def test_the_readme_holds_the_generated_method_table() -> None:
    from protoview.cli._method_help import methods_markdown

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = "<!-- methods table: generated by `protoview methods --markdown` -->\n"
    end = "<!-- end of the methods table -->"
    assert start in readme and end in readme
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == methods_markdown(), "run `protoview methods --markdown` into the README"
