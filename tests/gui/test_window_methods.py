"""Every adaptation method can be chosen in the window and stepped on the real demo."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.core.adapt.baselines import METHODS, adapter_defaults
from protoview.gui.panels import METHOD_PARAMS
from protoview.gui.panels import METHODS as PANEL_METHODS

pytestmark = pytest.mark.slow


def test_the_panel_offers_every_registered_method() -> None:
    assert set(PANEL_METHODS) == set(METHODS) == set(METHOD_PARAMS)
    for method, names in METHOD_PARAMS.items():
        assert set(names) <= set(adapter_defaults(method)), method


@pytest.fixture
def demo_window(qtbot, tmp_path):
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def _wait(qtbot, window, kind: str):
    return qtbot.waitSignal(
        window.worker.result, timeout=120_000,
        check_params_cb=lambda res: res.kind == kind and not res.partial,
    )  # fmt: skip


def test_each_method_is_chosen_and_stepped_on_the_demo(demo_window, qtbot, tmp_path) -> None:
    w = demo_window
    with _wait(qtbot, w, "open"):
        w.open_demo()
    panel = w.adapt_panel
    for method in PANEL_METHODS:
        panel.method.setCurrentText(method)
        request = panel.request(1)
        assert request.method == method
        assert [k for k, _ in request.params] == list(METHOD_PARAMS[method])
        if "lr" in METHOD_PARAMS[method]:
            assert dict(request.params)["lr"] == pytest.approx(adapter_defaults(method)["lr"])
        assert panel.variant.isEnabled() == ("variant" in METHOD_PARAMS[method])
        if method == "sar":
            panel.grab().save(str(tmp_path / "panel-sar.png"))
        with _wait(qtbot, w, "step"):
            qtbot.mouseClick(panel.step_button, QtCore.Qt.MouseButton.LeftButton)
        assert [h.step for h in w.history] == [1], method  # a new method starts a new run
        assert w.state.attrs["method"] == method
        assert np.isfinite(w.state.metrics["accuracy"]), method
    assert (tmp_path / "panel-sar.png").stat().st_size > 0
