"""Presentation mode on a stage (issue 20, item 6): it names what runs in large type, the
legend stays small, outlines are readable on the dark background, dots do not merge."""

from __future__ import annotations

import numpy as np
from PySide6 import QtGui

from protoview.present import KMeansRequest, StepRequest


def _step(qtbot, w, request) -> None:
    with qtbot.waitSignal(w.worker.result, timeout=5000,
                          check_params_cb=lambda r: r.kind == "step" and not r.partial):
        w.submit(request)


def test_presentation_names_the_run_keeps_the_legend_small_and_outlines_light(opened, qtbot):
    w = opened
    w.shown.state.attrs.update(method="lame", params={"variant": "reference", "stream": "online"})
    w.resize(1600, 1000)
    assert not w.banner.isVisible()
    w.toggle_presentation(True)
    qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=2000)
    _step(qtbot, w, StepRequest(method="lame", n_steps=1))
    qtbot.wait(100)
    # the fake session writes no method into its states: the banner says what the state says
    state = w.shown.state
    state.attrs.update(method="lame", params={"variant": "reference", "stream": "online"},
                       step=1)
    w.shown.events.state.emit(state)  # draw it again, as a new result would
    text = w.banner.full_text()
    assert text.startswith("lame reference · online stream · step 1 · accuracy ")
    w.banner.ensurePolished()
    assert w.banner.font().bold()
    assert w.banner.font().pointSizeF() > 1.3 * w.status_label.font().pointSizeF()
    # the legend: the layers and one line for the classes named on their stars
    view = w.view
    legend = view.legend.boundingRect()
    share = legend.width() * legend.height() / (view.width() * view.height())
    assert share <= 0.15, f"the legend covers {share:.0%} of the map"
    labels = [label.text for _s, label in view.legend.items]
    assert any("named on its star" in t for t in labels) and "0" not in labels
    # coloured by k-means groups: one line too, the groups are named on their triangles
    with qtbot.waitSignal(w.worker.result, timeout=5000,
                          check_params_cb=lambda r: r.kind == "kmeans" and not r.partial):
        w.submit(KMeansRequest(k=10))
    w.set_color_mode("assignment")
    legend = view.legend.boundingRect()
    share = legend.width() * legend.height() / (view.width() * view.height())
    assert share <= 0.15, f"the legend covers {share:.0%} of the map"
    labels = [label.text for _s, label in view.legend.items]
    assert any("named on its triangle" in t for t in labels), labels
    assert not any(t.startswith("P0") for t in labels)
    w.set_color_mode("label")
    # outlines in the dark theme's light colour; dots no larger than 1.2 x their size
    pen = view.items["centers"].opts["pen"]
    assert QtGui.QColor(pen.color()).lightness() > 200
    assert view.glyph_scale >= 1.5
    sizes = np.asarray(view.items["samples"].data["size"])
    normal = 6.0 * max(0.75, view.fontMetrics().height() / 16.0)
    assert sizes.max() <= 1.2 * normal + 1e-6
    w.toggle_presentation(False)
    assert not w.banner.isVisible()
    assert QtGui.QColor(view.items["centers"].opts["pen"].color()).lightness() < 60
    assert len(view.legend.items) > 6  # every class again in the window's legend
