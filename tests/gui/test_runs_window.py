"""Runs side by side in the window: overlaid accuracy curves with a legend, the shift marks of
a continual stream, the fixed / broken colour mode, the stream controls, and snapshots."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.gui.map import EmbeddingView
from protoview.gui.panels import AdaptPanel, NumbersPanel
from protoview.present import HistoryRow, RunRecord
from protoview.present.derive import versus_codes
from tests.gui.fakes import random_state


def _run(number, method, steps, start=0.5, stream="online", marks=(), names=(), **params):
    rows = [HistoryRow(s, start + 0.01 * s, 0.5, np.nan, 0.01,
                       domain_start=dict(marks).get(s, -1)) for s in range(1, steps + 1)]
    return RunRecord(number, method, dict(params), stream=stream, history=rows,
                     domain_names=tuple(names))


def _legend_texts(legend) -> list[str]:
    return [label.text for _sample, label in legend.items]


def test_the_chart_overlays_the_runs_with_a_legend(qtbot) -> None:
    panel = NumbersPanel()
    qtbot.addWidget(panel)
    runs = [_run(1, "tent", 9), _run(2, "bn", 12, start=0.6),
            _run(3, "tsd", 5, variant="corrected")]
    panel.set_history(runs[2].history, 0.55, runs, current_run=3)
    shown = [c for c in panel.runs.curves if c.isVisible()]
    assert len(shown) == 2
    assert [len(c.getData()[0]) for c in shown] == [9, 12]
    np.testing.assert_allclose(shown[1].getData()[1], [h.online_accuracy for h in runs[1].history])
    assert panel.accuracy_legend.texts() == ["#3 tsd corrected (online)", "#1 tent", "#2 bn"]
    # the x axis reaches the longest run
    assert panel.accuracy_plot.getViewBox().viewRange()[0][1] >= 12
    # the streams differ: the legend names them
    runs[0].stream = "continual"
    panel.set_history(runs[2].history, 0.55, runs, current_run=3)
    assert "#1 tent · continual" in panel.accuracy_legend.texts()
    # one run: the legend of a single run, as before
    panel.set_history(runs[2].history, 0.55, runs[2:], current_run=3)
    assert not any(c.isVisible() for c in panel.runs.curves)
    assert panel.accuracy_legend.texts() == ["online (running)", "full set",
                                                    "full set, probe (95% CI)"]


def test_the_chart_marks_where_a_continual_stream_changes_shift(qtbot) -> None:
    panel = NumbersPanel()
    qtbot.addWidget(panel)
    run = _run(1, "tent", 20, stream="continual", marks=((1, 0), (9, 1), (17, 2)),
               names=("noise", "blur", "contrast"))
    panel.set_history(run.history, 0.55, [run], current_run=1)
    assert panel.runs.mark_texts() == ["noise", "blur", "contrast"]
    assert [line.value() for line in panel.runs.lines] == [0.5, 8.5, 16.5]
    # the source model (no current run): no marks
    panel.set_history([], 0.55, [run], current_run=0)
    assert panel.runs.mark_texts() == []


def test_fixed_broken_colours_and_counts(qtbot) -> None:
    view = EmbeddingView()
    qtbot.addWidget(view)
    state = random_state(300, c=5)
    view.set_state(state)
    other = state.predictions.copy()
    other[:40] = (state.labels[:40] + 1) % 5  # wrong there
    other[40:60] = state.labels[40:60]  # right there
    view.set_color_mode("fixed/broken")
    assert set(view.sample_codes()) == {-1}  # nothing chosen yet
    view.set_versus(other, "#1 tent")
    codes = view.sample_codes()
    assert np.array_equal(codes, versus_codes(state.predictions, other, state.labels))
    legend = _legend_texts(view.legend)
    counts = np.bincount(codes[codes >= 0], minlength=4)
    assert "vs #1 tent:" in legend
    for name, count in zip(("fixed", "broken", "unchanged, right", "unchanged, wrong"), counts,
                           strict=True):
        assert f"{name} ({count})" in legend
    colors = np.array([b.color().name() for b in view.items["samples"].data["brush"]])
    assert set(colors[codes == 0]) == {"#2ca02c"} and set(colors[codes == 1]) <= {"#d62728"}


def test_stream_controls_make_the_stream_text(qtbot) -> None:
    panel = AdaptPanel()
    qtbot.addWidget(panel)
    s = panel.stream
    assert panel.request(1).stream == "online"
    assert not s.domains.isEnabled() and not s.alpha.isEnabled()
    s.set_domains(("noise", "blur"))
    s.domains.setCurrentText("continual")
    s.reset.setCurrentText("episodic")
    s.labels.setCurrentText("Dirichlet")
    assert s.alpha.isEnabled()
    s.alpha.setValue(0.5)
    assert panel.request(1).stream == "episodic,continual,dirichlet=0.5"
    s.labels.setCurrentText("sorted by class")
    s.reset.setCurrentText("online")
    assert panel.request(0).stream == "continual,sorted"
    s.set_domains(())  # one domain: continual is not offered
    assert panel.request(0).stream == "sorted"


# ------------------------------------------------------------------ the window on the demo
@pytest.fixture
def demo_window(qtbot, tmp_path):
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


class _Results:
    """Every result the window's worker delivers, by a slot connected once for the test.

    (Not ``qtbot.waitSignal``: its blocker is disconnected and freed when the wait ends,
    while the worker may already have queued more results, e.g. of the background
    refresh; PySide 6.11 then calls the freed blocker and crashes, seen here 4 times in 6.)
    """

    def __init__(self, window) -> None:
        self.kinds: list[tuple[str, bool]] = []
        window.worker.result.connect(lambda res: self.kinds.append((res.kind, res.partial)))

    def wait(self, qtbot, kind: str, action) -> None:
        start = len(self.kinds)
        action()
        qtbot.waitUntil(lambda: (kind, False) in self.kinds[start:], timeout=180_000)


@pytest.mark.slow
def test_runs_side_by_side_on_the_demo(demo_window, qtbot, tmp_path) -> None:
    from protoview.present import OpenRequest

    w = demo_window
    results = _Results(w)
    results.wait(qtbot, "open", lambda: w.submit(
        OpenRequest(checkpoint="demo:cosine", data="demo:noise,blur:3")))
    panel = w.adapt_panel
    assert panel.stream.domains.isEnabled()
    panel.probe_size.setValue(0)
    panel.n_steps.setValue(10)
    panel.method.setCurrentText("bn")
    panel.stream.domains.setCurrentText("continual")
    results.wait(qtbot, "step", panel.run_button.click)
    results.wait(qtbot, "step", panel.run_button.click)
    panel.method.setCurrentText("tent")
    results.wait(qtbot, "step", panel.step_button.click)
    qtbot.waitUntil(lambda: not w.numbers_pending, timeout=5000)
    assert [r.label for r in w.runs] == ["#1 bn · continual", "#2 tent · continual"]
    assert w.current_run == 2 and [h.step for h in w.history] == [1]
    assert len(w.runs[0].history) == 20
    assert sum(c.isVisible() for c in w.numbers.runs.curves) == 1
    assert "#1 bn" in w.numbers.accuracy_legend.texts()
    assert w.numbers.runs.mark_texts() == ["noise"]  # the current run is at its first step
    # fixed / broken against the first run
    w.set_color_mode("fixed/broken")
    assert w.versus_combo.isVisible()
    items = [w.versus_combo.itemText(i) for i in range(w.versus_combo.count())]
    assert items == ["vs unadapted", "vs #1 bn · continual"]
    w.versus_combo.setCurrentIndex(1)
    expected = versus_codes(w.view.state.predictions, w.runs[0].predictions, w.view.state.labels)
    assert np.array_equal(w.view.sample_codes(), expected)
    # a snapshot holds both runs, and shows them again
    path = tmp_path / "runs.h5"
    results.wait(qtbot, "write_snapshot", lambda: w.export_snapshot(str(path)))
    results.wait(qtbot, "runs", panel.forget_button.click)  # Clear runs: only the current one stays
    assert [r.label for r in w.runs] == ["#2 tent · continual"]
    qtbot.waitUntil(lambda: not w.numbers_pending, timeout=5000)
    assert not any(c.isVisible() for c in w.numbers.runs.curves)
    results.wait(qtbot, "read_snapshot", lambda: w.open_snapshot(str(path)))
    assert [r.label for r in w.runs] == ["#1 bn · continual", "#2 tent · continual"]
    assert sum(c.isVisible() for c in w.numbers.runs.curves) == 1
    w.set_color_mode("fixed/broken")
    assert w.versus_combo.count() == 2  # unadapted (stored) and run #1
    w.grab().save(str(tmp_path / "runs-window.png"))


@pytest.mark.slow
def test_a_continual_stream_over_pacs_domains_in_the_window(demo_window, qtbot, tmp_path) -> None:
    """DomainBed's layout on disk, two domains one after another, a model of one's own."""
    import torch
    from torch import nn

    from protoview.present import OpenRequest
    from tests._benchmark_fixtures import make_domainbed
    from tests._ckpt_fixtures import write_arch_file

    make_domainbed(tmp_path, per_class=3)
    arch = write_arch_file(tmp_path / "net7.py", """
        from torch import nn

        def build():
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 7))
    """)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 7))
    torch.save(model.state_dict(), tmp_path / "pacs.pt")
    w = demo_window
    results = _Results(w)
    results.wait(qtbot, "open", lambda: w.submit(OpenRequest(
        checkpoint=str(tmp_path / "pacs.pt"), data=f"pacs:{tmp_path}:photo,sketch",
        arch=f"{arch}:build", split="5", preprocess="domainbed,size=16")))
    panel = w.adapt_panel
    panel.probe_size.setValue(0)
    panel.batch_size.setValue(8)
    panel.method.setCurrentText("tent")
    panel.stream.domains.setCurrentText("continual")
    panel.stream.labels.setCurrentText("sorted by class")
    results.wait(qtbot, "step", panel.pass_button.click)
    qtbot.waitUntil(lambda: not w.numbers_pending, timeout=5000)
    assert [r.label for r in w.runs] == ["#1 tent · continual,sorted"]
    assert len(w.history) == 6  # 42 images (2 domains x 7 classes x 3) in batches of 8
    assert w.numbers.runs.mark_texts() == ["photo", "sketch"]


def test_the_caption_names_a_stream_other_than_online() -> None:
    from protoview.present.derive import caption_text

    state = random_state(50)
    state.attrs.update(method="tent", step=4, params={"lr": 1e-3, "stream": "continual"})
    assert caption_text(state).startswith("tent · continual · step 4 · accuracy ")
    state.attrs["params"]["stream"] = "online"
    assert caption_text(state).startswith("tent · step 4 · ")
