"""Live steps (issue 15): a step's batch moves at once, the rest refreshes in chunks that
give the same numbers as one piece, and a stratified probe estimates the full-set accuracy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from protoview.core.adapt.refresh import ProgressiveRefresh, difference_estimate
from protoview.core.adapt.registry import make_adapter
from protoview.core.adapt.run import AdaptRun, stratified_order
from protoview.core.model import SplitModel
from protoview.core.session import OpenRequest, RefreshRequest, Session, StepRequest
from protoview.errors import CancelledError, ParameterError

CLASSES = 3


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0) -> SplitModel:
    torch.manual_seed(seed)
    featurizer = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return SplitModel(featurizer, nn.Linear(4, CLASSES)).eval()


class Data:
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, 4, 4, generator=g)
        self.labels = (torch.arange(n) % CLASSES).numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], int(self.labels[i])


# ---- the step's own features -------------------------------------------------------------
@pytest.mark.parametrize("method", ["none", "bn", "tent", "t3a"])
def test_a_step_records_the_features_of_its_own_forward_pass(method) -> None:
    data = Data(40)
    model = tiny_model()
    params = {"steps": 2} if method == "tent" else {}
    run = AdaptRun(make_adapter(method, model, **params), data, batch_size=16, seed=2)
    for _ in range(3):
        before = copy.deepcopy(model)
        rec = run.step()
        x = data.x[rec.batch_indices]
        assert rec.batch_features.shape == (len(x), 4) and rec.batch_features.dtype == np.float32
        if method in ("none", "t3a"):  # eval mode: the features of the model before the step
            with torch.no_grad():
                expected = before.eval().featurizer(x).numpy()
            np.testing.assert_allclose(rec.batch_features, expected, rtol=0, atol=1e-6)
        if method != "t3a":  # the logits are the classifier's of those very features
            with torch.no_grad():
                again = model.classifier(torch.from_numpy(rec.batch_features)).numpy()
            np.testing.assert_allclose(again, rec.online_logits, rtol=0, atol=1e-5)


def test_tsd_batch_features_are_the_pre_update_train_mode_features() -> None:
    data = Data(32)
    model = tiny_model()
    run = AdaptRun(make_adapter("tsd", model, lr=1e-2), data, batch_size=16, seed=0)
    run.step()
    before = copy.deepcopy(model)
    rec = run.step()
    with torch.no_grad():
        expected = before.train().featurizer(data.x[rec.batch_indices]).numpy()
    np.testing.assert_allclose(rec.batch_features, expected, rtol=0, atol=1e-6)
    # the model moved: its features now differ from the recorded ones
    with torch.no_grad():
        after = copy.deepcopy(model).train().featurizer(data.x[rec.batch_indices]).numpy()
    assert not np.allclose(after, rec.batch_features, atol=1e-6)


# ---- the stratified plan -----------------------------------------------------------------
def test_every_prefix_of_the_stratified_order_holds_each_label_in_proportion() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, 5, -1], size=997, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    order = stratified_order(labels, seed=3)
    assert sorted(order.tolist()) == list(range(997))
    values, counts = np.unique(labels, return_counts=True)
    for m in (1, 10, 64, 100, 500, 996):
        got = labels[order[:m]]
        for v, c in zip(values, counts, strict=True):
            assert abs((got == v).sum() - m * c / 997) <= 1.0 + 1e-9, (m, v)
    assert not np.array_equal(order, stratified_order(labels, seed=4))
    np.testing.assert_array_equal(order, stratified_order(labels, seed=3))
    one = stratified_order(np.full(5, -1), seed=0)  # no labels: a seeded shuffle
    assert sorted(one.tolist()) == list(range(5))


def test_the_probe_is_the_first_batches_of_the_plan() -> None:
    run = AdaptRun(make_adapter("none", tiny_model()), Data(97), batch_size=16)
    plan = run.refresh_batches()
    assert sorted(np.concatenate(plan).tolist()) == list(range(97))
    assert [len(b) for b in plan] == [16] * 5 + [17]  # the lone last sample merged
    assert run.probe_batch_count(0) == 0
    assert run.probe_batch_count(1) == 1 and run.probe_batch_count(16) == 1
    assert run.probe_batch_count(17) == 2 and run.probe_batch_count(10**6) == 6
    for bad in (-1, 2.5, True):
        with pytest.raises(ParameterError) as info:
            run.probe_batch_count(bad)
        assert info.value.where == "probe_size"


# ---- chunks equal one piece --------------------------------------------------------------
def _fresh_refresh(run: AdaptRun, probe_size: int = 30) -> ProgressiveRefresh:
    n = run.num_samples
    return ProgressiveRefresh(run, np.zeros((n, 4), np.float32), np.zeros((n, CLASSES), np.float32),
                              np.asarray(run.dataset.labels), probe_size=probe_size)


@pytest.mark.parametrize("method", ["tsd", "tent", "bn", "t3a"])
def test_a_refresh_in_chunks_equals_the_refresh_in_one_piece_bit_for_bit(method) -> None:
    data = Data(90)
    run = AdaptRun(make_adapter(method, tiny_model()), data, batch_size=16, seed=1)
    live = _fresh_refresh(run)
    for _ in range(3):
        live.on_step(run.step())
    assert live.fraction == 0.0 and not live.complete
    calls = []
    with pytest.raises(CancelledError):  # interrupted after two batches ...
        live.advance(cancel=lambda: len(calls) >= 2 or calls.append(1))
    assert 0 < live.fraction < 1
    while not live.complete:  # ... and resumed one batch at a time
        assert live.advance(max_batches=1) == 1
    feats, logits, labels = run.features_all()
    got = live.arrays()
    assert np.array_equal(got[0], feats) and np.array_equal(got[1], logits)
    np.testing.assert_array_equal(got[2], labels)
    assert live.exact_accuracy() == pytest.approx(run.evaluate())
    assert live.advance() == 0  # nothing left


def test_a_new_step_restarts_the_refresh_for_the_new_model_and_the_cursor_rolls_on() -> None:
    data = Data(120)
    run = AdaptRun(make_adapter("tsd", tiny_model(), lr=1e-2), data, batch_size=16, seed=0)
    live = _fresh_refresh(run, probe_size=16)
    rec = run.step()
    live.on_step(rec)
    # the batch's rows show the step's own features at once
    np.testing.assert_array_equal(live.features[rec.batch_indices], rec.batch_features)
    np.testing.assert_array_equal(live.logits[rec.batch_indices], rec.online_logits)
    assert live.advance(max_batches=3) == 3  # the probe batch, then batches 1 and 2
    first = live.fresh.copy()
    live.on_step(run.step())
    assert not live.fresh.any()
    live.advance(max_batches=2)  # the probe again, then the next batch after the cursor
    plan = run.refresh_batches()
    assert live.fresh[plan[0]].all() and live.fresh[plan[3]].all()
    assert not live.fresh[plan[1]].any() and first[plan[1]].all()
    live.advance()
    assert np.array_equal(live.arrays()[0], run.features_all()[0])


def test_arrays_handed_out_are_never_written_again() -> None:
    run = AdaptRun(make_adapter("bn", tiny_model()), Data(64), batch_size=16)
    live = _fresh_refresh(run)
    shown = live.arrays()[0]
    kept = shown.copy()
    live.on_step(run.step())
    live.advance()
    np.testing.assert_array_equal(shown, kept)
    assert not np.array_equal(live.arrays()[0], kept)


def test_bad_refresh_arguments_are_named() -> None:
    run = AdaptRun(make_adapter("none", tiny_model()), Data(20), batch_size=8)
    with pytest.raises(ParameterError) as info:
        ProgressiveRefresh(run, np.zeros((5, 4), np.float32), np.zeros((20, 3), np.float32),
                           np.zeros(20, np.int64))
    assert info.value.where == "features"
    with pytest.raises(ParameterError) as info:
        _fresh_refresh(run).advance(until="half")
    assert info.value.where == "until"


# ---- the probe ---------------------------------------------------------------------------
def test_the_probe_estimate_starts_from_the_last_exact_numbers() -> None:
    data = Data(200)
    run = AdaptRun(make_adapter("tent", tiny_model(), lr=1e-2), data, batch_size=20, seed=5)
    start_feats, start_logits, _ = run.features_all()  # exact numbers of step 0: the anchor
    live = ProgressiveRefresh(run, start_feats, start_logits, data.labels, probe_size=50)
    anchor_right = start_logits.argmax(1) == data.labels
    live.on_step(run.step())
    assert live.probe() is None
    live.advance(until="probe")  # rounded up: 3 batches, 60 samples
    assert live.probe_complete and not live.complete and live.fraction == pytest.approx(0.3)
    probe = live.probe()
    rows = np.concatenate(run.refresh_batches()[:3])
    _, logits, labels = run.features_all()
    right = logits.argmax(1) == labels
    assert probe.probe_accuracy == pytest.approx(right[rows].mean()) and probe.size == 60
    expected = anchor_right.mean() + (right[rows].astype(float) - anchor_right[rows]).mean()
    assert probe.accuracy == pytest.approx(expected) and probe.anchor_step == -1
    assert probe.population == 200 and probe.step == 1 and not probe.exact
    assert probe.low <= probe.accuracy <= probe.high
    live.advance()  # complete: step 1 is the new anchor, its estimate exact
    assert live.probe().accuracy == live.exact_accuracy() == pytest.approx(right.mean())
    live.on_step(run.step())
    live.advance(until="probe")
    assert live.probe().anchor_step == 1
    live.set_probe_size(10**6)  # the whole set: exact, zero width
    live.advance(until="probe")
    whole = live.probe()
    assert whole.exact and whole.low == whole.high == whole.accuracy == live.exact_accuracy()


def test_the_difference_estimate_is_unbiased_and_its_interval_covers() -> None:
    rng = np.random.default_rng(0)
    population = 2000
    anchor = (rng.random(population) < 0.6).astype(float)
    flips = rng.random(population) < 0.1  # 10% change verdict, mostly to right
    now = np.where(flips, (rng.random(population) < 0.8).astype(float), anchor)
    truth = now.mean()
    estimates, covered = [], 0
    for _ in range(400):
        rows = rng.choice(population, 200, replace=False)
        est, low, high = difference_estimate(now[rows], anchor[rows], anchor.mean(), population)
        estimates.append(est)
        covered += low <= truth <= high
    assert abs(np.mean(estimates) - truth) < 0.003  # unbiased
    assert 0.9 <= covered / 400 <= 0.99  # about 95% coverage
    raw_spread = np.std([now[rng.choice(population, 200, replace=False)].mean() for _ in range(400)])
    assert np.std(estimates) < raw_spread / 2  # far tighter than the probe's own accuracy
    # nothing changed on the probe: the estimate is the anchor's, with a nonzero width
    est, low, high = difference_estimate(np.ones(50), np.ones(50), 0.7, 1000)
    assert est == pytest.approx(0.7) and low < 0.7 < high
    assert difference_estimate(now, anchor, anchor.mean(), population) == (truth, truth, truth)
    assert all(np.isnan(difference_estimate(np.zeros(0), np.zeros(0), 0.5, 10)))


# ---- the session -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def session():
    return Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise:3"))


def test_a_live_step_moves_only_its_batch_and_says_how_fresh_the_map_is(session) -> None:
    session.reset()
    before = session.state
    req = StepRequest(method="tsd", n_steps=1, live=True, probe_size=100)
    updates = session.run(req)
    first = next(updates)  # the pixels first: only the step's batch moved
    state = first.state
    assert first.kind == "step" and first.followed and first.request is req
    rows = session.history[-1].batch_indices
    rest = np.setdiff1d(np.arange(before.num_samples), rows)
    # the other samples keep their features and, anchored, their exact place
    np.testing.assert_array_equal(state.features[rest], before.features[rest])
    np.testing.assert_array_equal(state.embedding[rest], before.embedding[rest])
    np.testing.assert_array_equal(state.features[rows], session.live.run.history[-1].batch_features)
    assert state.metrics["map_step"] == 1 and state.metrics["refreshed"] == 0.0
    assert "accuracy" not in state.metrics and "probe_accuracy" not in state.metrics
    assert np.isnan(first.history[-1].probe_accuracy)
    assert session.refresh_pending and session.probe_pending
    # then the probe (2 batches of 64 >= 100 samples): its estimate, the map left as it was
    probe = next(updates)
    assert probe.kind == "probe" and not probe.partial and not probe.followed
    np.testing.assert_array_equal(probe.state.embedding, state.embedding)
    assert probe.state.metrics["refreshed"] == 0.0
    assert probe.state.metrics["probe_size"] == 128 and not session.probe_pending
    row = probe.history[-1]
    assert row.probe_accuracy == probe.state.metrics["probe_accuracy"] and row.probe_size == 128
    assert row.probe_low <= row.probe_accuracy <= row.probe_high and np.isnan(row.full_accuracy)
    assert next(updates, None) is None
    assert session.refresh_some(until="probe") is None  # nothing left for the probe
    state = session.refresh_some(seconds=0.0)  # the refresh slices move the map
    assert state.metrics["refreshed"] > 128 / 539
    while session.refresh_pending:
        state = session.refresh_some(seconds=0.0)  # one batch at a time
    assert state.metrics["refreshed"] == 1.0
    assert state.metrics["accuracy"] == pytest.approx(session.live.run.evaluate())
    assert session.history[-1].full_accuracy == state.metrics["accuracy"]
    assert session.refresh_some() is None


def test_chunks_or_one_piece_give_the_same_features_and_the_same_map() -> None:
    results = []
    for chunked in (True, False):
        session = Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise:3"))
        session.step(StepRequest(method="tsd", n_steps=2, live=True, probe_size=0))
        start, anchors = session.state.joint_embedding(), session.map.anchors.copy()
        if chunked:
            while session.refresh_pending:
                session.live.refresh.advance(max_batches=1)
        final = session.refresh()  # chunked: nothing left to run, only the map
        results.append((final, start, anchors))
    (a, start_a, anchors_a), (b, start_b, anchors_b) = results
    # the same map and anchors before, the same features after: the same map after
    np.testing.assert_array_equal(start_a, start_b)
    np.testing.assert_array_equal(anchors_a, anchors_b)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.joint_embedding(), b.joint_embedding())


def test_steps_that_are_not_live_refresh_exactly_and_estimate_every_step(session) -> None:
    session.reset()
    state = session.step(StepRequest(method="tsd", n_steps=3, probe_size=200))
    assert not session.refresh_pending and state.metrics["refreshed"] == 1.0
    assert state.metrics["accuracy"] == pytest.approx(session.live.run.evaluate())
    rows = session.history
    assert all(np.isfinite(r.probe_accuracy) and r.probe_size == 256 for r in rows)
    assert np.isnan(rows[0].full_accuracy) and np.isfinite(rows[-1].full_accuracy)
    # the end of a pass gets the exact number even inside a longer request
    session.reset()
    per_pass = session.live.run.steps_per_pass if session.live else 9
    session.step(StepRequest(method="tsd", n_steps=per_pass + 1, probe_size=0))
    exact = [np.isfinite(r.full_accuracy) for r in session.history]
    assert exact[per_pass - 1] and exact[-1] and not any(exact[: per_pass - 1])
    # each row knows its pass (the online accuracy pools over it): the chart marks passes
    assert [r.pass_index for r in session.history] == [0] * per_pass + [1]
    snap = session.to_snapshot()
    assert snap.history["probe_accuracy"].shape == (per_pass + 1,)
    assert snap.history["pass_index"].tolist() == [0] * per_pass + [1]
    assert snap.history["probe_size"].dtype == np.int64


def test_kmeans_waits_for_the_current_models_features(session) -> None:
    from protoview.core.session import KMeansRequest

    session.reset()
    session.step(StepRequest(method="tsd", n_steps=1, live=True, probe_size=0))
    assert session.refresh_pending
    state = session.kmeans(KMeansRequest(k=5, seed=0))
    assert not session.refresh_pending and state.metrics["refreshed"] == 1.0
    np.testing.assert_array_equal(state.features, session.live.run.features_all()[0])
    assert RefreshRequest() == RefreshRequest()  # a plain, frozen request


def test_a_refresh_slice_and_a_live_step_can_be_cancelled_while_their_map_is_drawn(session) -> None:
    """The map of a refresh slice or of a live step stops between its epochs when the job
    is cancelled (it did before the live run had an owner of its own; then it could not
    be stopped until the map was done), and a cancelled map changes nothing."""
    session.reset()
    list(session.run(StepRequest(method="tsd", n_steps=1, live=True, probe_size=0)))
    before, frames = session.state, len(session.live.timeline)

    def in_the_map() -> bool:  # False while the features refresh, True once the map is drawn
        return session.live.refresh.fraction > 0

    with pytest.raises(CancelledError):
        session.refresh_some(seconds=0.0, cancel=in_the_map)
    assert session.state is before and len(session.live.timeline) == frames
    state = session.refresh_some(seconds=0.0)  # not cancelled: the slice's map
    assert state is not before and state.metrics["refreshed"] > 0
    steps = len(session.history)
    with pytest.raises(CancelledError):  # after the step, in its map
        list(session.run(StepRequest(method="tsd", n_steps=1, live=True, probe_size=0),
                         cancel=lambda: len(session.history) > steps))
    assert session.state is state and len(session.live.timeline) == frames
