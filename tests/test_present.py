"""protoview.present: the evented model of what the window shows, and the numbers derived
for it (each from the core's science, so a replayed frame, its chart, its per-class bars
and its numbers line cannot disagree)."""

from __future__ import annotations

import numpy as np
import pytest

from protoview.core.metrics import accuracy, confusion_matrix, per_class_accuracy
from protoview.core.session import Session
from protoview.present import OpenRequest, RefreshRequest, Shown, StepRequest, derive
from protoview.present._events import changed


# ---- events -----------------------------------------------------------------------------
def test_a_change_emits_once_per_changed_field_in_field_order() -> None:
    shown = Shown()
    seen: list[tuple[str, object]] = []
    for name in ("colour_mode", "selection", "marked", "frame"):
        getattr(shown.events, name).connect(lambda v, n=name: seen.append((n, v)))
    assert shown.set(marked=3, colour_mode="entropy", frame=None) == ["colour_mode", "marked"]
    assert [n for n, _ in seen] == ["colour_mode", "marked"]
    seen.clear()
    shown.select([5, 2, 2, 9])
    shown.select(np.array([2, 5, 9]))  # the same selection: nothing emitted
    assert len(seen) == 1 and seen[0][0] == "selection"
    np.testing.assert_array_equal(shown.selection, [2, 5, 9])
    with pytest.raises(AttributeError, match="no field 'colour'"):
        shown.set(colour="label")
    with pytest.raises(ValueError, match="unknown colour mode"):
        shown.set_colour_mode("rainbow")


def test_changed_compares_values_by_value_and_objects_by_identity() -> None:
    a = np.arange(3)
    assert not changed(a, a.copy()) and changed(a, np.arange(4)) and changed(None, a)
    assert not changed(float("nan"), float("nan")) and changed(1.0, 2.0)
    rows = [object()]
    assert not changed(rows, rows) and changed(rows, list(rows))


# ---- derived numbers: the core's, not copies ---------------------------------------------
def test_per_class_and_confusion_are_the_cores_over_the_known_samples() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 6, 500)
    predictions = rng.integers(-1, 6, 500)
    per_class, conf = derive.per_class_and_confusion(labels, predictions, 6)
    known, ok = labels >= 0, (labels >= 0) & (predictions >= 0)
    # a prediction of -1 (a head class none of the data's: ImageNet-D's map) is wrong, as the
    # overall accuracy counts it; it has no column in the confusion
    np.testing.assert_allclose(per_class, per_class_accuracy(predictions[known], labels[known], 6))
    counts = np.bincount(labels[known], minlength=6)
    assert np.isclose((per_class * counts).sum() / counts.sum(),
                      (predictions[known] == labels[known]).mean())
    np.testing.assert_array_equal(conf, confusion_matrix(predictions[ok], labels[ok], 6))
    empty, zeros = derive.per_class_and_confusion(np.full(5, -1), np.zeros(5, int), 3)
    assert np.isnan(empty).all() and not zeros.any()


def test_members_and_groups_follow_the_cores_nearest_rules() -> None:
    from protoview.core.geometry import nearest, nearest_l2
    from tests.gui.fakes import random_state

    state = random_state(n=200, c=4, p=2, k=5)
    state.assignment = None
    for j in range(5):
        np.testing.assert_array_equal(derive.members(state, "prototypes", j),
                                      nearest_l2(state.features, state.prototypes) == j)
    for j in range(8):
        np.testing.assert_array_equal(derive.members(state, "proxies", j),
                                      nearest(state.features, state.proxies)[0] == j)
    groups = derive.prototype_groups(state)
    matched = derive.group_classes(state, 4)
    # a matched group's class holds the most of its members among the classes left to it
    assert matched.shape == (5,) and set(matched[matched >= 0]) <= set(range(4))
    assert len(set(matched[matched >= 0])) == int((matched >= 0).sum())  # one to one
    state.assignment, state.assignment_target = groups[::-1].copy(), "prototypes"
    np.testing.assert_array_equal(derive.prototype_groups(state), groups[::-1])
    state.assignment_target = "proxies"  # Sinkhorn to the proxies: codes are classes
    np.testing.assert_array_equal(derive.prototype_groups(state), groups)


# ---- the live session through Shown -----------------------------------------------------
@pytest.fixture(scope="module")
def session():
    return Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise:3"))


def _drive(session, request, shown: Shown | None = None) -> list:
    """As the window's worker: every update of the request, then the background refresh."""
    updates = list(session.run(request))
    while (more := session.background(seconds=0.0)) is not None:
        updates.append(more)
    if shown is not None:
        for update in updates:
            shown.apply(update)
    return updates


def test_a_step_press_updates_the_map_once_and_once_per_completed_refresh(session, monkeypatch):
    import protoview.core.projection as projection

    calls = []
    real = projection.update_map
    monkeypatch.setattr(projection, "update_map",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    session.reset()
    # the demo's probe (1,000) holds all 539 samples: the step's map, then the exact one
    updates = list(session.run(StepRequest(method="tsd", n_steps=1, live=True)))
    assert [u.kind for u in updates] == ["step", "step"] and len(calls) == 2
    assert updates[0].followed and not updates[1].followed
    assert updates[1].state.metrics["refreshed"] == 1.0 and session.background() is None
    # a probe of part of the set: its estimate comes without a map; each slice is one map
    calls.clear()
    updates = list(session.run(StepRequest(method="tsd", n_steps=1, live=True, probe_size=100)))
    assert [u.kind for u in updates] == ["step", "probe"] and len(calls) == 1
    slices = 0
    while session.background(seconds=0.0) is not None:
        slices += 1
    assert slices >= 1 and len(calls) == 1 + slices


def test_reset_gives_the_launch_map_bit_for_bit(session) -> None:
    session.reset()
    launch = session.state
    session.step(StepRequest(method="tent", n_steps=3, live=True))
    assert not np.array_equal(session.state.embedding, launch.embedding)
    reset = session.reset()
    for name in ("embedding", "centers_embedding", "proxies_embedding", "features",
                 "predictions"):
        np.testing.assert_array_equal(getattr(reset, name), getattr(launch, name))
    assert reset.attrs["method"] == "none" and reset.attrs["step"] == 0
    assert "map_step" not in reset.metrics


def test_a_new_run_starts_from_the_source_map(session) -> None:
    """LAME changes no feature: its map after a step is the source map exactly, even right
    after another method moved the map (before/after then show the same picture)."""
    session.reset()
    source = session.state
    session.step(StepRequest(method="tent", n_steps=2, live=True))
    state = session.step(StepRequest(method="lame", n_steps=1, live=True))
    np.testing.assert_array_equal(state.features, source.features)
    np.testing.assert_array_equal(state.embedding, source.embedding)
    update = session.update("step")
    np.testing.assert_array_equal(update.source_state.embedding, source.embedding)


def test_a_replayed_frame_shows_the_numbers_of_its_step(session, tmp_path) -> None:
    """The window's run (live steps, probe, background refresh), saved and opened: every
    frame's accuracy is the history row's, and equals its own predictions' accuracy; the
    chart holds the rows up to the frame's step."""
    from protoview.core.snapshot import read_snapshot, write_snapshot

    session.reset()
    live = Shown()
    for _ in range(4):
        _drive(session, StepRequest(method="tsd", n_steps=1, live=True, probe_size=200), live)
    assert [h.step for h in live.history] == [1, 2, 3, 4]
    path = tmp_path / "run.h5"
    write_snapshot(path, session.to_snapshot())
    shown = Shown()
    shown.show_snapshot(read_snapshot(path))
    assert shown.frame_steps() == [1, 2, 3, 4]
    for i, row in enumerate(live.history):
        shown.show_frame(i)
        state = shown.state
        assert state.attrs["step"] == row.step and shown.history[-1].step == row.step
        assert state.metrics["accuracy"] == pytest.approx(row.full_accuracy)
        assert accuracy(state.predictions, state.labels) == pytest.approx(row.full_accuracy)
        assert state.metrics["refreshed"] == 1.0 and shown.freshness().endswith("exact")
        assert state.metrics["probe_accuracy"] == pytest.approx(row.probe_accuracy)
        assert f"accuracy {row.full_accuracy:.1%}" in shown.numbers_line()


def test_a_frame_left_before_its_refresh_completed_says_so(session) -> None:
    """A step taken before the previous one's refresh finished: that frame keeps the latest
    map of its step, says how much was refreshed and claims no exact accuracy."""
    from protoview.core.state import frame_state, state_from_snapshot

    session.reset()
    list(session.run(StepRequest(method="tsd", n_steps=1, live=True, probe_size=100)))
    list(session.run(StepRequest(method="tsd", n_steps=1, live=True, probe_size=100)))
    for _ in session.run(RefreshRequest()):
        pass
    snap = session.to_snapshot()
    first, second = snap.timeline
    assert first["refreshed"] < 1.0 and np.isnan(first["accuracy"])
    assert second["refreshed"] == 1.0 and np.isfinite(second["accuracy"])
    rows = session.history
    state = frame_state(state_from_snapshot(snap), first, rows[0])
    assert "accuracy" not in state.metrics and 0 <= state.metrics["refreshed"] < 1
    assert state.metrics["probe_accuracy"] == pytest.approx(rows[0].probe_accuracy)
    assert derive.map_freshness(state).startswith("map of step 1 — ")


def test_versus_offers_the_unadapted_model_and_the_other_runs(session) -> None:
    session.reset()
    session.forget_runs()
    shown = Shown()
    shown.apply(session.update("open"))
    assert shown.versus_choices() == [("vs unadapted", 0)] and shown.versus == 0
    _drive(session, StepRequest(method="tent", n_steps=1, live=True), shown)
    _drive(session, StepRequest(method="bn", n_steps=1, live=True), shown)
    labels = [label for label, _ in shown.versus_choices()]
    assert labels[0] == "vs unadapted" and any("tent" in label for label in labels)
    shown.choose_versus(shown.versus_choices()[1][1])
    name, predictions = shown.versus_predictions()
    assert "tent" in name and predictions.shape == (session.state.num_samples,)
    codes = derive.sample_codes(shown.state, derive.VERSUS_MODE, predictions)
    assert set(np.unique(codes)) <= {0, 1, 2, 3}
