"""Every adaptation method can be chosen in the window and stepped on the real demo."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.core.adapt.registry import method_defaults as adapter_defaults
from protoview.core.adapt.registry import method_names, window_params

pytestmark = pytest.mark.slow

#: Which controls each method shows in the window (as before the registry generated them).
METHOD_PARAMS = {
    "tsd": ("lr", "filter_K", "lam", "update", "variant"),
    "tent": ("lr",),
    "t3a": ("filter_K", "variant"),
    "bn": (),
    "none": (),
    "pl": ("lr", "variant"),
    "plc": ("lr", "variant"),
    "shot_im": ("lr",),
    "eata": ("lr",),
    "sar": ("lr", "variant"),
    "lame": ("variant",),
    "rotta": ("lr", "memory_size", "update_frequency"),
    "deyo": ("lr", "plpd_threshold", "variant"),
    "roid": ("lr", "variant"),
    "cmf": ("lr", "variant"),
    "memo": ("lr", "n_augmentations", "variant"),
    "rmt": ("lr", "variant"),
    "santa": ("lr", "variant"),
    "gtta": ("lr", "style_transfer", "vgg_weights", "decoder"),
    "adacontrast": ("lr", "variant"),
    "cotta": ("lr", "rst", "ap", "variant"),
    "bn_alpha": ("alpha",),
    "bn_ema": (),
    "rpl": ("lr", "q"),
    "rdumb": ("lr", "reset_every"),
}
PANEL_METHODS = method_names()


def test_the_panel_offers_every_registered_method(qtbot) -> None:
    from protoview.gui.panels import AdaptPanel

    panel = AdaptPanel()
    qtbot.addWidget(panel)
    offered = [panel.method.itemText(i) for i in range(panel.method.count())]
    assert offered == list(method_names()) and set(offered) == set(METHOD_PARAMS)
    assert panel.method.currentText() == "tsd"
    for method, names in METHOD_PARAMS.items():
        assert tuple(p.name for p in window_params(method)) == names, method


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
        assert (panel.variant is not None) == ("variant" in METHOD_PARAMS[method])
        if method == "sar":
            panel.grab().save(str(tmp_path / "panel-sar.png"))
        needs = method in ("rmt", "santa", "gtta")
        assert panel.source_data.isVisibleTo(panel) == needs, method
        if needs:  # source data: refused in the panel until it has some
            panel.source_data.clear()
            with qtbot.assertNotEmitted(panel.step_requested):
                qtbot.mouseClick(panel.step_button, QtCore.Qt.MouseButton.LeftButton)
            assert panel.source_note.isVisibleTo(panel)
            assert f"{method} needs labelled source data" in panel.source_note.text()
            panel.source_data.setText("demo:source")
            assert panel.request(1).source_data == "demo:source"
        with _wait(qtbot, w, "step"):
            qtbot.mouseClick(panel.step_button, QtCore.Qt.MouseButton.LeftButton)
        assert [h.step for h in w.history] == [1], method  # a new method starts a new run
        assert w.state.attrs["method"] == method
        assert np.isfinite(w.state.metrics["accuracy"]), method
    assert (tmp_path / "panel-sar.png").stat().st_size > 0


def test_the_controls_take_the_room_of_the_shown_method_only(qtbot) -> None:
    """A method with one control left the room of TSD's five empty below it."""
    from protoview.gui.panels import AdaptPanel

    panel = AdaptPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.method.setCurrentText("tsd")
    qtbot.wait(50)
    tall = panel.params_form.sizeHint().height()
    panel.method.setCurrentText("tent")
    qtbot.wait(50)
    short = panel.params_form.sizeHint().height()
    assert short < tall / 2
    assert panel.params_form.height() <= short + 2


def test_gtta_style_transfer_files_from_the_window(qtbot) -> None:
    """GTTA-ST's switch and its two files are window controls; an empty file field is
    ``none`` (not the text "None"), a path is passed as typed."""
    from protoview.gui.panels._method_form import MethodParamsForm

    form = MethodParamsForm()
    qtbot.addWidget(form)
    form.set_method("gtta")
    values = dict(form.values())
    assert values["style_transfer"] is False
    assert values["vgg_weights"] is None and values["decoder"] is None
    assert form.widget("vgg_weights").placeholderText() == "none"
    form.widget("style_transfer").setChecked(True)
    form.widget("vgg_weights").setText(" /data/vgg_normalised.pth ")
    form.widget("decoder").setText("/data/decoder.pth")
    values = dict(form.values())
    assert values == {"lr": values["lr"], "style_transfer": True,
                      "vgg_weights": "/data/vgg_normalised.pth", "decoder": "/data/decoder.pth"}
