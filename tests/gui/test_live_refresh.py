"""The window's live steps (issue 15): pixels first, the probe next, the rest of the map
refreshed in the background between requests, a label saying how fresh the map is and a
button for the exact map."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from PySide6 import QtCore

from protoview.errors import CancelledError
from protoview.gui._qt import ComputeWorker
from protoview.present import HistoryRow, OpenRequest, RefreshRequest, StepRequest
from protoview.present.derive import map_freshness
from tests.gui.fakes import FakeSession


class LiveFakeSession(FakeSession):
    """A FakeSession that refreshes like the core's live run: ``batches`` refresh batches
    per step, the first one the probe. A live step yields its pixels (nothing refreshed),
    then its probe (the estimate, the map unchanged); :meth:`background` refreshes one
    slice; a RefreshRequest completes the refresh."""

    batches = 6
    batch_seconds = 0.02
    calls: list = []

    def __init__(self, n: int = 300) -> None:
        super().__init__(n)
        self.done = self.batches
        self.step_no = 0
        self._describe()

    @property
    def refresh_pending(self) -> bool:
        return self.done < self.batches

    def _describe(self) -> None:
        m = self.state.metrics = dict(self.state.metrics)
        m["map_step"], m["refreshed"] = float(self.step_no), self.done / self.batches
        if self.done < self.batches:
            m.pop("accuracy", None)
        else:
            m["accuracy"] = 0.5

    def run(self, request, progress=None, cancel=None, detail=None):
        if isinstance(request, RefreshRequest):
            self.calls.append(("exact",))
            self.done = self.batches
            self._describe()
            yield self.update("refresh", request)
            return
        if not isinstance(request, StepRequest):
            yield from super().run(request, progress, cancel, detail)
            return
        for i in range(request.n_steps):
            if cancel is not None and cancel():
                raise CancelledError(f"cancelled after {i} steps")
            self.calls.append(("step", request.live, request.probe_size))
            self.step_no += 1
            self.done = 0
            self.history.append(HistoryRow(self.step_no, 0.5, 0.5, float("nan"), 0.01))
            self.state = replace(self.state, embedding=self.state.embedding + 0.1)
            self._describe()
            last = i + 1 == request.n_steps
            yield self.update("step", request, partial=True, followed=True)
            self._refresh(1, None, cancel)  # the probe: its estimate, the map as it was
            self.history[-1].probe_accuracy = 0.5
            yield self.update("probe", request, partial=not last)

    def _refresh(self, target: int, seconds, cancel) -> None:
        start, ran = time.perf_counter(), 0
        while self.done < target:
            if ran and seconds is not None and time.perf_counter() - start >= seconds:
                break
            if cancel is not None and cancel():
                raise CancelledError("paused")
            time.sleep(self.batch_seconds)
            self.done += 1
            ran += 1
        self.calls.append(("refresh", self.done))

    def background(self, seconds=0.5, cancel=None):
        if not self.refresh_pending:
            return None
        self._refresh(self.batches, seconds, cancel)
        self._describe()
        return self.update("refresh", RefreshRequest(), partial=self.refresh_pending)


@pytest.fixture
def live_cls():
    return type("LiveFakeT", (LiveFakeSession,), {"calls": [], "opened_requests": []})


@pytest.fixture
def worker(qtbot, live_cls):
    w = ComputeWorker(open_session=live_cls.open, warm_up=None)
    w.refresh_slice = 0.0  # one batch per slice
    w.start()
    yield w
    assert w.stop(5000)


def test_a_step_sends_pixels_then_its_probe_then_background_refreshes(worker, qtbot, live_cls):
    results = []
    worker.result.connect(results.append)
    with qtbot.waitSignal(worker.result, timeout=5000):
        worker.submit(OpenRequest())
    worker.submit(StepRequest(n_steps=2, probe_size=100))
    qtbot.waitUntil(lambda: results and results[-1].kind == "refresh" and not results[-1].partial,
                    timeout=10000)
    steps = [r for r in results if r.kind in ("step", "probe")]
    # per step: the pixels (nothing refreshed yet), then the probe's estimate; every update
    # the session yields goes out, in its order, with the request it answers
    assert [r.kind for r in steps] == ["step", "probe", "step", "probe"]
    assert [r.state.metrics["refreshed"] for r in steps] == pytest.approx([0, 0, 0, 0])
    assert [r.partial for r in steps] == [True, True, True, False]
    assert [r.followed for r in steps] == [True, False, True, False]
    assert all(r.request == StepRequest(n_steps=2, probe_size=100) for r in steps)
    calls = live_cls.calls
    assert calls[0] == ("step", False, 100) and calls[1] == ("refresh", 1)
    refreshes = [r for r in results if r.kind == "refresh"]
    assert [round(r.state.metrics["refreshed"] * 6) for r in refreshes] == [2, 3, 4, 5, 6]
    assert len({r.job for r in results if r.kind != "open"}) == 1  # the step's job number
    assert [r.partial for r in refreshes] == [True] * 4 + [False]
    assert map_freshness(refreshes[-1].state) == "map of step 2 — exact"
    assert map_freshness(steps[0].state) == "map of step 1 — 0% refreshed"


def test_a_new_request_interrupts_the_background_refresh_which_resumes_after(worker, qtbot,
                                                                               live_cls):
    live_cls.batches, live_cls.batch_seconds = 40, 0.05
    results = []
    worker.result.connect(results.append)
    with qtbot.waitSignal(worker.result, timeout=5000):
        worker.submit(OpenRequest())
    worker.submit(StepRequest(n_steps=1))
    qtbot.waitUntil(lambda: any(r.kind == "refresh" for r in results), timeout=5000)
    t0 = time.perf_counter()
    seen = len(results)
    worker.submit(StepRequest(n_steps=1))
    qtbot.waitUntil(lambda: any(r.kind in ("step", "probe") and not r.partial for r in results[seen:]),
                    timeout=5000)
    assert time.perf_counter() - t0 < 1.0  # it did not wait for the 2 s refresh
    assert [c[0] for c in live_cls.calls].count("step") == 2
    qtbot.waitUntil(lambda: results[-1].kind == "refresh" and not results[-1].partial,
                    timeout=10000)
    assert results[-1].state.metrics["map_step"] == 2.0


def test_the_window_shows_freshness_and_refreshes_exactly_on_request(qtbot, tmp_path, live_cls):
    from protoview.gui.window import MainWindow

    live_cls.batches, live_cls.batch_seconds = 10, 0.01
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=live_cls.open, warm_up=None, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    w.worker.background_refresh = False  # so the label stays partial until asked
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        w.open_demo()
    assert w.map_label.text() == "map of step 0 — exact" and not w.refresh_button.isEnabled()
    w.adapt_panel.probe_size.setValue(250)
    results = []
    w.worker.result.connect(results.append)
    qtbot.mouseClick(w.adapt_panel.step_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(r.kind in ("step", "probe") and not r.partial for r in results),
                    timeout=5000)
    qtbot.wait(50)
    assert live_cls.calls[0] == ("step", True, 250)
    assert w.map_label.text() == "map of step 1 — 0% refreshed" and w.refresh_button.isEnabled()
    w.view.grab().save(str(tmp_path / "map.png"))
    qtbot.mouseClick(w.refresh_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(r.kind == "refresh" for r in results), timeout=5000)
    qtbot.wait(50)
    assert ("exact",) in live_cls.calls
    assert w.map_label.text() == "map of step 1 — exact" and not w.refresh_button.isEnabled()
    assert isinstance(RefreshRequest(), RefreshRequest)
    w.close()


def test_probe_points_are_drawn_with_their_interval(qtbot) -> None:
    from protoview.gui.panels import NumbersPanel
    from protoview.present.derive import scores_text

    panel = NumbersPanel()
    qtbot.addWidget(panel)
    rows = [HistoryRow(i, 0.5, 0.5, float("nan"), 0.01, probe_accuracy=0.6 + 0.01 * i,
                       probe_low=0.55, probe_high=0.7, probe_size=1000) for i in (1, 2)]
    rows.append(HistoryRow(3, 0.5, 0.5, 0.64, 0.01))
    panel.set_history(rows, 0.4)
    x, y = panel.probe_curve.getData()
    np.testing.assert_allclose(x, [1, 2]) and np.testing.assert_allclose(y, [0.61, 0.62])
    np.testing.assert_allclose(panel.probe_bars.opts["top"], [0.09, 0.08])
    assert panel.history_points() == 1
    text = scores_text({"probe_accuracy": 0.612, "probe_low": 0.58, "probe_high": 0.64,
                        "probe_size": 1000.0, "probe_population": 2000.0}, 0.4)
    assert text.startswith("probe accuracy 61.2% (95% CI 58.0%–64.0%; 1,000 of 2,000)")
    assert "probe" not in scores_text({"accuracy": 0.6, "probe_accuracy": 0.61}, 0.4)


def test_a_background_refresh_leaves_a_shown_snapshot_alone(qtbot, tmp_path, live_cls):
    from protoview.core.runs import rows_from_columns
    from protoview.gui.window import MainWindow

    live_cls.batches, live_cls.batch_seconds = 12, 0.03
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=live_cls.open, warm_up=None, raise_errors=True)
    qtbot.addWidget(w)
    w.show()
    w.worker.refresh_slice = 0.0
    results = []
    w.worker.result.connect(results.append)
    w.open_demo()
    qtbot.waitUntil(lambda: any(r.kind == "open" for r in results), timeout=5000)
    w.submit(StepRequest(n_steps=1))
    qtbot.waitUntil(lambda: any(r.kind in ("step", "probe") and not r.partial for r in results), timeout=5000)
    snap = LiveFakeSession(50).to_snapshot()
    snap.history = {"step": np.array([1, 2]), "accuracy": np.array([np.nan, 0.7]),
                    "probe_accuracy": np.array([0.61, 0.69]), "probe_low": np.array([0.5, 0.6]),
                    "probe_high": np.array([0.7, 0.8]), "probe_size": np.array([100, 100])}
    w.show_snapshot(snap)
    shown = w.view.state
    assert w.map_label.text() == "" and not w.refresh_button.isEnabled()
    qtbot.waitUntil(lambda: any(r.kind == "refresh" and not r.partial for r in results),
                    timeout=10000)
    qtbot.wait(50)
    assert w.snapshot is snap and w.view.state is shown
    rows = rows_from_columns(snap.history)
    assert [r.probe_accuracy for r in rows] == [0.61, 0.69] and rows[1].probe_size == 100
    w.close()
