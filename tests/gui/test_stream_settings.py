"""The window's stream controls offer the toolkit's settings (reset each shift, gradual) where
the data allow them, and a gradual run steps in the window (offscreen)."""

from __future__ import annotations

import pytest

from protoview.gui.panels import AdaptPanel
from tests.gui.test_runs_window import _Results, demo_window  # noqa: F401 - the fixture


def _offered(combo, text: str) -> bool:
    return combo.model().item(combo.findText(text)).isEnabled()


def test_stream_controls_offer_gradual_and_reset_each_shift(qtbot) -> None:
    panel = AdaptPanel()
    qtbot.addWidget(panel)
    s = panel.stream
    assert [s.reset.itemText(i) for i in range(s.reset.count())] == [
        "online", "episodic", "reset each shift"]
    assert [s.domains.itemText(i) for i in range(s.domains.count())] == [
        "mixed", "continual", "gradual"]
    assert not _offered(s.reset, "reset each shift") and not _offered(s.domains, "gradual")
    # several domains at one severity: reset each shift, not gradual
    s.set_domains(("fog", "snow"), ("fog", "snow"), (5, 5))
    assert _offered(s.reset, "reset each shift") and not _offered(s.domains, "gradual")
    s.reset.setCurrentText("reset each shift")  # needs the shifts in sequence
    assert s.domains.currentText() == "continual"
    assert panel.request(1).stream == "reset_each_shift,continual"
    s.labels.setCurrentText("sorted by class")
    assert panel.request(1).stream == "reset_each_shift,continual,sorted"  # ..._correlated
    s.domains.setCurrentText("mixed")  # no shift to reset at
    assert s.reset.currentText() == "online" and panel.request(1).stream == "sorted"
    # each corruption at the five severities: gradual
    names = tuple(f"{c}:{k}" for c in ("fog", "snow") for k in range(1, 6))
    s.set_domains(names, tuple(n.split(":")[0] for n in names), (1, 2, 3, 4, 5) * 2)
    assert _offered(s.domains, "gradual")
    s.domains.setCurrentText("gradual")
    s.reset.setCurrentText("reset each shift")
    assert panel.request(1).stream == "reset_each_shift,gradual,sorted"
    # other data: gradual goes (and with it the choice), one domain: no reset each shift
    s.set_domains(("fog", "snow"), ("fog", "snow"), (3, 5))
    assert not _offered(s.domains, "gradual") and s.domains.currentText() == "mixed"
    s.set_domains(())
    assert s.reset.currentText() == "online" and panel.request(1).stream == "sorted"
    s.samples.setValue(500)  # the toolkit's NUM_EX
    assert panel.request(1).stream == "sorted,samples=500"


@pytest.mark.slow
def test_a_gradual_stream_in_the_window(demo_window, qtbot) -> None:  # noqa: F811
    from protoview.present import OpenRequest

    w = demo_window
    results = _Results(w)
    results.wait(qtbot, "open", lambda: w.submit(
        OpenRequest(checkpoint="demo:cosine", data="demo:noise:1-5")))
    panel = w.adapt_panel
    assert _offered(panel.stream.domains, "gradual")
    panel.probe_size.setValue(0)
    panel.batch_size.setValue(100)
    panel.method.setCurrentText("bn")
    panel.stream.domains.setCurrentText("gradual")
    results.wait(qtbot, "step", panel.step_button.click)
    qtbot.waitUntil(lambda: not w.numbers_pending, timeout=5000)
    assert [r.label for r in w.runs] == ["#1 bn · gradual"]
    assert [h.step for h in w.history] == [1]
    assert w.numbers.runs.mark_texts() == ["noise:1"]  # the first severity of the sequence
    # a batch of one sample: t3a takes it (bn would refuse it, tests/test_streams_toolkit.py)
    panel.batch_size.setValue(1)
    panel.method.setCurrentText("t3a")
    results.wait(qtbot, "step", panel.step_button.click)  # t3a takes one sample at a time
    assert [r.label for r in w.runs][-1] == "#2 t3a · gradual"
    assert len(w.history[-1].batch_indices) == 1
