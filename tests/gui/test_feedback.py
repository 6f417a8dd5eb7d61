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
