"""The Geometry view's job and texts: a GeometryRequest measures the session's current model
exactly as ``protoview geometry`` does (core.measures, the head's rows), after completing
the refresh; CKA against the source model's features of the same samples; Shown keeps the
measurements; present.geometry words them ("no labels", the curve along a run)."""

from __future__ import annotations

import numpy as np
import pytest

from protoview.core.heads import head_proxies
from protoview.core.measures import MapGeometry, compare_representations, measure_geometry
from protoview.core.session import Session
from protoview.errors import CancelledError
from protoview.present import GeometryRequest, OpenRequest, Shown, StepRequest
from protoview.present import geometry as texts


@pytest.fixture(scope="module")
def session():
    return Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise:3"))


def _measure(session, shown: Shown, request: GeometryRequest | None = None) -> MapGeometry:
    (update,) = list(session.run(request or GeometryRequest()))
    assert update.kind == "geometry" and update.state is not None
    assert shown.apply(update)
    return update.payload


def _cli_report(session, features, request: GeometryRequest):
    """What ``protoview geometry`` computes for the same features and head."""
    rows, _ = head_proxies(session.model.classifier)
    info = session.model.info
    return measure_geometry(
        features.features, features.logits, features.labels,
        head_rows=rows.float().cpu().numpy(), nb_proxy=info.head.nb_proxy,
        cosine_head=info.head.kind == "cosine", kmeans_k=request.kmeans_k, knn_k=request.knn_k,
        knn_temperature=request.knn_temperature, knn_max_queries=request.knn_queries or None,
        seed=request.seed)


def test_the_source_model_and_a_run_are_measured_as_the_command_line_does(session) -> None:
    session.reset()
    shown = Shown()
    before = _measure(session, shown)
    assert (before.run, before.step, before.comparison) == (0, 0, None)
    assert "take a step" in before.versus_note
    expected = _cli_report(session, session.source.features, GeometryRequest())
    assert before.report.summary() == expected.summary()
    # a live step whose probe holds part of the set: the measurement completes the refresh
    list(session.run(StepRequest(method="tent", n_steps=1, live=True, probe_size=100)))
    assert session.refresh_pending
    request = GeometryRequest(knn_k=5, kmeans_k=4)
    after = _measure(session, shown, request)
    assert not session.refresh_pending and shown.state.metrics["refreshed"] == 1.0
    assert (after.run, after.step, after.method) == (session.current_run.number, 1, "tent")
    current = session.map.features
    assert after.report.summary() == _cli_report(session, current, request).summary()
    assert after.report.kmeans_k == 4 and after.report.knn.k == 5
    cka = compare_representations(session.source.features.features, current.features)
    assert after.comparison == cka and 0 < cka.linear_cka < 1
    # each part is named; a newer request stops the job between them
    said: list[str] = []
    with pytest.raises(CancelledError):
        list(session.run(request, cancel=lambda: bool(said),
                         detail=lambda _d, _t, text: said.append(text)))
    assert said == ["geometry: neural collapse, k-NN accuracy, k-means"]
    # Shown keeps both, the view shows the one of the map shown
    assert shown.geometry == (before, after)
    assert texts.for_shown(shown) == (after, True)
    numbers = dict((name, value) for name, value, _ in texts.number_rows(after))
    assert numbers["linear CKA vs source"] == f"{cka.linear_cka:.4f}"
    assert numbers["k-NN accuracy"] == f"{after.report.knn.accuracy:.1%}"
    steps, nc1, knn = texts.curve(shown.geometry, after.run)
    assert list(steps) == [0, 1] and list(nc1) == [before.report.collapse.nc1,
                                                  after.report.collapse.nc1]
    # another step: the measurement is of an earlier map now, and says so
    for update in session.run(StepRequest(method="tent", n_steps=1, live=True)):
        shown.apply(update)
    g, current_map = texts.for_shown(shown)
    assert g is after and not current_map
    assert "Measure again" in texts.header_text(shown)
    session.reset()


def test_the_error_table_and_the_words_without_labels() -> None:
    from tests.gui.fakes import random_state

    state = random_state(200, c=4, p=1)
    measured = measure_geometry(state.features, state.logits, state.labels,
                                head_rows=state.proxies, kmeans_k=5)
    g = MapGeometry(measured, None, run=0, step=0, versus_note="why not")
    rows = texts.error_rows(g, ["cat", "dog", "emu", "fox"], mix_classes=2)
    assert [r.texts[0] for r in rows] == [str(e.group) for e in measured.error_groups]
    top = measured.error_groups[0]
    name = ["cat", "dog", "emu", "fox"][top.class_mix[0][0]]
    assert rows[0].texts[4].startswith(f"{name} ({top.class_mix[0][1]})")
    np.testing.assert_array_equal(rows[0].members, top.members)
    assert dict((n, v) for n, v, _ in texts.number_rows(g))["CKA vs source"] == "—"
    state.labels[:] = -1
    blind = measure_geometry(state.features, state.logits, state.labels,
                             head_rows=state.proxies)
    g = MapGeometry(blind, None, run=0, step=0)
    numbers = dict((n, v) for n, v, _ in texts.number_rows(g))
    for key in ("head accuracy", "k-NN accuracy", "nearest-center accuracy", "k-means NMI",
                "k-means ARI"):
        assert numbers[key] == texts.NO_LABELS
    assert texts.error_rows(g, []) == []
    steps, _nc1, knn = texts.curve((g,), 0)
    assert list(steps) == [0] and np.isnan(knn).all()


def test_an_encoder_without_a_head_is_measured_in_the_window(tmp_path) -> None:
    """A SwAV checkpoint opened in a session: the labels' geometry, k-NN and nearest-center
    accuracy; the head's numbers n/a and the CKA row says why there is no run to compare."""
    from tests._ssl_fixtures import swav_model, write_swav

    path = write_swav(tmp_path / "swav.pth.tar", swav_model())
    encoder = Session.open(OpenRequest(checkpoint=str(path), data="demo:noise:3", arch="resnet18",
                                       preprocess="size=16,channels=3,mean=0.5,std=0.25"))
    geometry = list(encoder.run(GeometryRequest()))[-1].payload
    rows = {name: value for name, value, _why in texts.number_rows(geometry)}
    assert rows["head accuracy"] == "n/a" and rows["NC4 NCC = head"] == "n/a"
    assert rows["k-NN accuracy"].endswith("%") and rows["NC1"] != "n/a"
    why = next(w for name, _v, w in texts.number_rows(geometry) if name == "CKA vs source")
    assert "encoder without a head" in why
