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
    assert state.metrics["accuracy"] == pytest.approx(session.live.run.evaluate())
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
    session.map.kmeans = None
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


def test_the_snapshot_records_the_run_after_kmeans_and_sinkhorn(session, tmp_path):
    """Issue 16: after TSD then k-means / Sinkhorn the file said 'method none, params {}'."""
    from protoview.core.snapshot import read_snapshot, write_snapshot

    session.reset()
    tsd = StepRequest(method="tsd", n_steps=2, params=(("lr", 2e-4), ("filter_K", 50)))
    session.step(tsd)
    session.kmeans(KMeansRequest(k=10, seed=0))
    session.sinkhorn(SinkhornRequest(target="prototypes"))
    path = tmp_path / "mixed.h5"
    write_snapshot(path, session.to_snapshot())
    attrs = read_snapshot(path, load_features=False).attrs
    assert attrs["method"] == "tsd" and attrs["step"] == 2
    assert attrs["params"]["lr"] == 2e-4 and attrs["params"]["filter_K"] == 50
    assert attrs["params"]["batch_size"] == 64
    # one more step, then Sinkhorn to the proxies and k-means again: still that run
    session.step(StepRequest(**{**tsd.__dict__, "n_steps": 1}))
    session.sinkhorn(SinkhornRequest(target="proxies"))
    session.kmeans(KMeansRequest(k=7, seed=1))
    snap = session.to_snapshot()
    assert snap.attrs["method"] == "tsd" and snap.attrs["step"] == 3
    # another method, then k-means: the new run
    session.step(StepRequest(method="bn", n_steps=1))
    session.kmeans(KMeansRequest(k=10, seed=0))
    assert session.to_snapshot().attrs["method"] == "bn"
    # back to the source model: no method
    session.reset()
    session.kmeans(KMeansRequest(k=10, seed=0))
    snap = session.to_snapshot()
    assert snap.attrs["method"] == "none" and snap.attrs["params"] == {}


def test_kmeans_keeps_the_samples_in_place_and_places_the_prototypes(session):
    """Issue 16: k-means re-laid out the whole map. Now the samples, centers and proxies
    keep their coordinates exactly; only the prototypes are placed among their members."""
    session.reset()
    session.step(StepRequest(method="tsd", n_steps=2))
    for k, seed in ((10, 0), (6, 3), (6, 4)):  # new prototypes, fewer, same count again
        before = session.state
        state = session.kmeans(KMeansRequest(k=k, seed=seed))
        np.testing.assert_array_equal(state.embedding, before.embedding)
        np.testing.assert_array_equal(state.centers_embedding, before.centers_embedding)
        np.testing.assert_array_equal(state.proxies_embedding, before.proxies_embedding)
        assert state.prototypes_embedding.shape == (k, 2)
        assert np.isfinite(state.prototypes_embedding).all()
        # each prototype lies among its members on the map (not somewhere random)
        extent = np.ptp(state.embedding, axis=0).max()
        members = session.map.kmeans.assignments
        gaps = [np.linalg.norm(state.prototypes_embedding[j]
                               - np.median(state.embedding[members == j], axis=0))
                for j in range(k) if (members == j).any()]
        assert np.median(gaps) < 0.15 * extent, (gaps, extent)
    # a step after k-means keeps the prototypes in the map and updates from it
    state = session.step(StepRequest(method="tsd", n_steps=1))
    assert state.prototypes_embedding.shape == (6, 2)
