"""The window on a self-supervised encoder (SwAV, no classifier): its prototypes and SwAV's
codes on the map, no predictions, no proxies."""

from __future__ import annotations

import warnings

import numpy as np
from PySide6 import QtCore

from tests import _ssl_fixtures as sf


def test_real_window_on_a_swav_checkpoint(qtbot, tmp_path):
    from protoview.gui.window import MainWindow
    from protoview.present import OpenRequest

    path = sf.write_swav(tmp_path / "checkpoint.pth.tar", sf.swav_model())
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 3, 40))
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, warm_up=None, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with qtbot.waitSignal(w.worker.result, timeout=240_000,
                                  check_params_cb=lambda r: r.kind == "open" and not r.partial):
                w.submit(OpenRequest(checkpoint=str(path), data=str(data), arch="resnet18",
                                     preprocess="size=32", features="projection", device="cpu"))
            qtbot.waitUntil(lambda: w.state is not None and len(w.state.prototypes) == 10, timeout=60_000)
        state = w.state
        assert state.features.shape == (40, 16) and len(state.proxies) == 0
        assert (state.predictions == -1).all() and "accuracy" not in state.metrics
        assert state.assignment_target == "prototypes" and state.assignment.max() < 10
        assert np.isfinite(state.prototypes_embedding).all()
        w.set_color_mode("assignment")
        assert w.view.color_mode == "assignment"
        panel = w.adapt_panel  # no head, no adaptation: the buttons off, the reason said
        assert not panel.step_button.isEnabled() and not panel.pass_button.isEnabled()
        assert panel.adapt_note.isVisibleTo(panel)
        assert "checkpoint.pth.tar is a SwAV" in panel.adapt_note.text()
        assert "linear probe" in panel.adapt_note.text()
    finally:
        w.close()
