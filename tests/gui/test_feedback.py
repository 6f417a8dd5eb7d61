"""Feedback on long work (issue 20): the progress bar says what is being done and how far,
the status bar is never the last job's line while a job runs, the probe control says
when the probe costs more than the step, and a cold start shows a quick preview of the
map (with the Data panel) before the UMAP map glides in."""

from __future__ import annotations

import math

import pytest
from PySide6 import QtCore

from protoview.present import HistoryRow, KMeansRequest, StepRequest, derive


def test_every_request_says_what_it_does() -> None:
    assert derive.request_text(StepRequest(method="tent", n_steps=10)) == "tent: 10 steps…"
    assert derive.request_text(StepRequest(n_steps=0)) == "tsd: the rest of the pass…"
    assert derive.request_text(KMeansRequest(k=7)) == "k-means with k = 7…"


def test_the_status_bar_says_what_runs_not_the_last_result(opened, qtbot, fake_session_cls):
    w = opened
    fake_session_cls.step_seconds = 0.3
    w.adapt_panel.n_steps.setValue(3)
    w.adapt_panel.run_button.click()
    assert w.status_label.text().startswith("tsd: 3 steps")  # at once, before any result
    qtbot.waitUntil(lambda: w.status_label.text().startswith("step:"), timeout=10_000)


def test_the_time_left_comes_from_the_pace_of_the_phase_or_the_run() -> None:
    from protoview.present import TimeLeft

    now = [0.0]
    left = TimeLeft(clock=lambda: now[0])
    # one phase, counted: its own pace
    probe = "step 3: probe: {0:,} of 1,024 samples"
    assert left.update(0, 4, probe.format(0)) == ""  # no pace yet
    now[0] = 0.5
    assert left.update(1, 4, probe.format(256)) == ""  # under a second: noise
    now[0] = 1.5
    assert left.update(3, 4, probe.format(768)) == "~1 s left"  # 1.5 s for 3 of 4
    now[0] = 2.0
    assert left.update(0, 4, probe.format(0)) == ""  # restarted (the next step's probe)
    assert left.update(0, 0, "compiling") == ""  # not counted: nothing to estimate
    # inside a run of several steps: the run's time left, from the pace of its steps
    left.reset()
    step = "step {0} ({1} of 10): adapting on 64 images"
    probe = "step {0} ({1} of 10): probe: {2:,} of 1,024 samples"
    now[0] = 10.0
    assert left.update(0, 10, step.format(5, 1)) == ""
    now[0] = 10.5
    assert left.update(2, 4, probe.format(5, 1, 512)) == ""  # no step done yet
    now[0] = 12.0
    assert left.update(1, 10, step.format(6, 2)) == "run ~18 s left"  # 2 s a step, 9 to go
    now[0] = 13.0
    assert left.update(3, 4, probe.format(6, 2, 768)) == "run ~17 s left"  # 1 s into it
    now[0] = 16.0
    assert left.update(3, 10, step.format(8, 4)) == "run ~14 s left"  # 6 s for 3, 7 to go
    now[0] = 610.0
    assert left.update(4, 10, step.format(9, 5)) == "run ~15 min left"
    left.reset()
    assert left.update(5, 10, step.format(10, 6)) == ""


def test_the_progress_bar_gives_the_time_left_of_a_long_run(opened, qtbot, fake_session_cls):
    w = opened
    fake_session_cls.step_seconds = 0.6
    w.adapt_panel.n_steps.setValue(6)
    said = []
    w.worker.progress.connect(lambda *_a: said.append(w.progress_bar.format()))
    w.adapt_panel.run_button.click()
    qtbot.waitUntil(lambda: any("left" in f for f in said), timeout=10_000)
    text = next(f for f in said if "left" in f)
    assert "%p%" in text and "s left" in text, text
    w.worker.cancel()
    qtbot.waitUntil(lambda: not w.cancel_button.isEnabled(), timeout=10_000)
    # one line: a long phase is shortened, the percentage and the time left stay whole
    bar = w.progress_bar
    phase = "step {0} ({1} of 100): adapting on 64 images"
    w.time_left.clock = lambda: 0.0
    w.worker.progress.emit(33, 100, phase.format(43, 33))
    w.time_left.clock = lambda: 5.0
    w.worker.progress.emit(34, 100, phase.format(44, 34))
    text = bar.format()
    assert text.endswith(" · %p% · run ~6 min left") and text.startswith("step 44"), text
    assert bar.fontMetrics().horizontalAdvance(text.replace("%p%", "100%")) <= bar.width()
    assert bar.toolTip() == "step 44 (34 of 100): adapting on 64 images · run ~6 min left"


def test_the_probe_control_says_when_the_probe_costs_more_than_the_step(opened):
    w = opened
    panel = w.adapt_panel
    rows = [HistoryRow(1, 0.5, 0.5, math.nan, 0.8, probe_seconds=3.2)]
    w.shown.set(history=rows)
    assert panel.probe_note.isVisibleTo(panel) and "3.2 s" in panel.probe_note.text()
    w.shown.set(history=[HistoryRow(1, 0.5, 0.5, math.nan, 0.8, probe_seconds=0.1)])
    assert not panel.probe_note.isVisibleTo(panel) and panel.probe_note.text() == ""
    # a tiny probe is not worth a word, even when it is longer than a tinier step
    w.shown.set(history=[HistoryRow(1, 0.5, 0.5, math.nan, 0.03, probe_seconds=0.05)])
    assert not panel.probe_note.isVisibleTo(panel)


@pytest.mark.slow
def test_a_cold_window_shows_a_preview_then_the_map_and_tells_each_phase(qtbot, tmp_path):
    """The real demo: the first open shows a quick PCA preview with the Data panel filled,
    then the UMAP map; a step's progress bar names its phases."""
    from protoview.gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    results, said = [], []
    w.worker.result.connect(results.append)
    w.worker.progress.connect(lambda _d, _t, what: said.append(what))
    preview_seen = []

    def on_result(update) -> None:
        if update.kind == "open" and update.partial:  # the preview, as the window shows it
            preview_seen.append((w.map_label.text(), w.data_panel.preprocess_label.text()))

    w.worker.result.connect(lambda u: QtCore.QTimer.singleShot(0, lambda: on_result(u)))
    w.open_demo()
    qtbot.waitUntil(lambda: any(r.kind == "open" and not r.partial for r in results),
                    timeout=120_000)
    opens = [r for r in results if r.kind == "open"]
    assert [r.partial for r in opens] == [True, False]
    assert opens[0].state.metrics["map_preview"] == 1.0 and "map_preview" not in opens[1].state.metrics
    qtbot.waitUntil(lambda: bool(preview_seen), timeout=5000)
    label, data = preview_seen[0]
    assert label.startswith("quick preview (PCA)") and data.startswith("preprocessing: resize")
    assert w.map_label.text() == ""  # the UMAP map, of the source model
    assert any(text.startswith("drawing the UMAP map") for text in said)
    w.adapt_panel.probe_size.setValue(200)
    said.clear()
    results.clear()
    w.adapt_panel.step_button.click()
    qtbot.waitUntil(lambda: any(r.kind in ("step", "probe") and not r.partial for r in results),
                    timeout=60_000)
    assert "step 1: adapting on 64 images" in said
    assert "step 1: probe: 256 of 256 samples" in said
    assert math.isfinite(w.history[-1].probe_seconds)
    w.close()


def test_export_replay_of_the_live_run(opened, qtbot, tmp_path):
    """File → Export replay in a live session (no snapshot open): the session's recorded
    frames, one GIF image per step; before any step it says there is nothing to replay."""
    from PIL import Image

    w = opened
    w.raise_errors = False
    w.export_replay(str(tmp_path / "empty.gif"))
    qtbot.waitUntil(lambda: "no recorded run to replay yet" in w.last_error, timeout=5000)
    with qtbot.waitSignal(w.worker.result, timeout=5000,
                          check_params_cb=lambda r: r.kind == "step" and not r.partial):
        w.submit(StepRequest(n_steps=3))
    gif = tmp_path / "live.gif"
    assert w.export_replay(str(gif)) is None  # fetched from the worker first
    qtbot.waitUntil(lambda: w.status_label.text() == f"replay exported: {gif}", timeout=10_000)
    with Image.open(gif) as im:
        assert im.n_frames == 3
    assert w.view.state is w.shown.state or w.view.state.num_samples == w.shown.state.num_samples
