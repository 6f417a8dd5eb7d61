"""The window on ImageNet-D (164 classes, a 1000-class head): predictions, accuracy, per-class
numbers and the proxies on the map are in the 164 classes through the toolkit's map; a
step adapts on the 1000-way logits."""

from __future__ import annotations

import warnings

import numpy as np
from PySide6 import QtCore

from protoview.core.data._imagenet_d import IMAGENET_D_FROM_1K
from protoview.core.data._variants import IMAGENET_D_MAP
from protoview.core.heads import predicted_classes
from tests.test_imagenet_d import PRE, _layout, _model


def test_the_window_scores_imagenet_d_through_the_map(qtbot, tmp_path):
    from protoview.gui.window import MainWindow
    from protoview.present import OpenRequest, StepRequest

    root = _layout(tmp_path / "imagenet-d")
    checkpoint, arch, _net = _model(tmp_path)
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, warm_up=None, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with qtbot.waitSignal(w.worker.result, timeout=240_000,
                                  check_params_cb=lambda r: r.kind == "open" and not r.partial):
                w.submit(OpenRequest(checkpoint=checkpoint, data=f"imagenet-d:{root}:clipart",
                                     arch=arch, preprocess=PRE, device="cpu"))
            qtbot.waitUntil(lambda: w.state is not None and w.state.logits is not None,
                            timeout=60_000)
        state = w.state
        assert state.logits.shape == (16, 1000)
        mapped = predicted_classes(state.logits, IMAGENET_D_MAP)
        assert np.array_equal(state.predictions, mapped)
        assert state.metrics["accuracy"] == float((mapped == state.labels).mean())
        assert len(state.proxies) == sum(c >= 0 for c in IMAGENET_D_FROM_1K) == 464
        assert state.proxy_classes.max() < 164 and len(state.centers) == 164
        assert len(w.shown.class_names) == 164 and w.shown.class_names[47] == "dog"
        qtbot.waitUntil(lambda: len(w.numbers.per_class_shown) == 164, timeout=10_000)
        shown = np.asarray(w.numbers.per_class_shown)
        counts = np.bincount(state.labels, minlength=164)
        assert np.isclose(np.nansum(shown * counts) / counts.sum(), state.metrics["accuracy"])
        with qtbot.waitSignal(w.worker.result, timeout=120_000,
                              check_params_cb=lambda r: r.kind == "step" and not r.partial):
            w.submit(StepRequest(method="tent", n_steps=2, batch_size=4))
        row = w.shown.history[-1]
        assert row.online_predictions is not None
        assert set(np.asarray(row.online_predictions).tolist()) - {-1} <= set(range(164))
    finally:
        w.close()
