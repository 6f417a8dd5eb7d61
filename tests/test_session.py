"""Session: the object the window's worker and the CLI drive."""

from __future__ import annotations

import numpy as np
import pytest

from protoview.core.session import KMeansRequest, OpenRequest, Session, SinkhornRequest, StepRequest
from protoview.errors import ParameterError


@pytest.fixture(scope="module")
def session():
    return Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise:3"))


def test_open_shows_the_source_model(session):
    s = session.state
    assert s.num_samples == 539
    assert s.proxies.shape == (30, 64) and s.centers.shape == (10, 64)
    assert np.isfinite(s.embedding).all()
    # the demo's noise shift at severity 3 hurts the source model
    assert 0.3 < session.source_accuracy < 0.8


def test_steps_move_accuracy_and_the_map_agrees_with_the_run(session):
    session.reset()
    req = StepRequest(method="tsd", n_steps=4, batch_size=64, seed=0)
    before = session.state.embedding.copy()
    state = session.step(req)
    assert [h.step for h in session.history] == [1, 2, 3, 4]
    # the map's accuracy is the run's full-set accuracy (same prediction mode)
    assert state.metrics["accuracy"] == pytest.approx(session._run.evaluate())
    assert state.metrics["accuracy"] > session.source_accuracy
    # the map updated from the previous layout instead of jumping
    move = np.linalg.norm(state.embedding - before, axis=1)
    extent = np.ptp(before, axis=0).max()
    assert np.median(move) < 0.5 * extent
    # continuing the same run keeps counting
    session.step(req)
    assert session.history[-1].step == 8


def test_changing_method_starts_a_new_run_from_the_source(session):
    session.reset()
    session.step(StepRequest(method="tsd", n_steps=3))
    session.step(StepRequest(method="tent", n_steps=2))
    assert [h.step for h in session.history] == [1, 2]
    snap = session.to_snapshot()
    assert len(set(snap.history["step"].tolist())) == len(snap.history["step"])


def test_reset_returns_to_the_source_accuracy(session):
    session.step(StepRequest(method="tsd", n_steps=3))
    state = session.reset()
    assert state.metrics["accuracy"] == pytest.approx(session.source_accuracy)
    assert session.history == []


def test_sinkhorn_needs_prototypes_first(session):
    session._kmeans = None
    session.refresh()
    with pytest.raises(ParameterError, match="k-means first"):
        session.sinkhorn(SinkhornRequest(target="prototypes"))
    with pytest.raises(ParameterError, match="unknown target"):
        session.sinkhorn(SinkhornRequest(target="stars"))
    state = session.kmeans(KMeansRequest(k=10, seed=0))
    assert state.prototypes.shape == (10, 64)
    assert 0.0 <= state.metrics["nmi"] <= 1.0
    state = session.sinkhorn(SinkhornRequest(target="prototypes"))
    sizes = np.bincount(state.assignment, minlength=10)
    assert sizes.min() > 0  # balanced: no empty prototype


def test_a_cancelled_kmeans_leaves_the_session_as_it_was(session):
    from protoview.errors import CancelledError

    before_state, before_features = session.state, session.features
    before_protos = session.state.prototypes.copy()
    calls = []

    def cancel():  # let the k-means finish, cancel during the map that follows
        calls.append(1)
        return True

    with pytest.raises(CancelledError):
        session.kmeans(KMeansRequest(k=10, seed=0), cancel=cancel)
    assert calls and session.state is before_state and session.features is before_features
    np.testing.assert_array_equal(session.state.prototypes, before_protos)
    # and the next k-means works
    assert len(session.kmeans(KMeansRequest(k=7, seed=0)).prototypes) == 7
