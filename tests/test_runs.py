"""Runs side by side: the session keeps every run, their snapshot round trip, the fixed /
broken comparison, and the methods x shifts table (``protoview compare``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protoview.core.compare import compare_methods, method_params, parse_methods
from protoview.core.runs import (
    BROKEN,
    FIXED,
    KEPT_RIGHT,
    KEPT_WRONG,
    HistoryRow,
    RunRecord,
    history_columns,
    online_accuracy_by_domain,
    rows_from_columns,
    run_from_snapshot,
    run_to_snapshot,
    versus_codes,
)
from protoview.core.session import OpenRequest, Session, StepRequest
from protoview.core.snapshot import read_snapshot, snapshot_summary, write_snapshot
from protoview.errors import ParameterError, SnapshotError


@pytest.fixture(scope="module")
def session():
    return Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise,blur:3"))


# ------------------------------------------------------------------ pieces
def test_versus_codes_count_fixed_broken_and_unchanged() -> None:
    labels = np.array([0, 1, 2, 3, 4, -1, 1])
    now = np.array([0, 1, 0, 3, 0, 2, 1])
    then = np.array([1, 1, 2, 0, 1, 2, -1])
    codes = versus_codes(now, then, labels)
    assert codes.tolist() == [FIXED, KEPT_RIGHT, BROKEN, FIXED, KEPT_WRONG, -1, -1]
    assert versus_codes(now, None, labels).tolist() == [-1] * 7
    assert versus_codes(now, then[:3], labels).tolist() == [-1] * 7


def test_history_columns_round_trip_with_domains() -> None:
    rows = [HistoryRow(1, 0.5, 0.5, float("nan"), 0.1, np.array([3, 1]), np.array([0, 1]),
                       np.zeros((2, 3), np.float32), domain=1, domain_start=0),
            HistoryRow(2, 0.75, 1.0, 0.8, 0.1, np.array([0, 2]), np.array([1, 1]),
                       np.ones((2, 3), np.float32), loss=0.3, domain=1, domain_start=-1,
                       pass_index=1)]
    columns = history_columns(rows)
    assert columns["domain"].tolist() == [1, 1] and columns["domain_start"].tolist() == [0, -1]
    assert columns["pass_index"].tolist() == [-1, 1]
    back = rows_from_columns(columns)
    assert [(r.step, r.domain, r.domain_start, r.loss, r.pass_index) for r in back][1] == (
        2, 1, -1, 0.3, 1)
    # a snapshot written before the column: the pass is unknown
    del columns["pass_index"]
    assert [r.pass_index for r in rows_from_columns(columns)] == [-1, -1]
    assert np.isnan(back[0].full_accuracy) and back[1].full_accuracy == 0.8
    assert online_accuracy_by_domain(rows, np.array([0, 1, 1, 0]), np.array([0, 0, 1, 1]), 2
                                     ).tolist() == [0.5, 1.0]


def test_a_run_knows_where_its_stream_changed_shift() -> None:
    run = RunRecord(3, "tsd", {"variant": "corrected"}, stream="continual",
                    domain_names=("noise", "blur"),
                    history=[HistoryRow(s, 0.5, 0.5, np.nan, 0.0, domain_start=d)
                             for s, d in ((1, 0), (2, -1), (3, 1), (4, -1))])
    assert run.label == "#3 tsd corrected · continual" and run.name(False) == "#3 tsd corrected"
    assert run.shift_marks() == [(1, "noise"), (3, "blur")]
    assert RunRecord(1, "bn", domain_names=("one",), history=run.history).shift_marks() == []


# ------------------------------------------------------------------ the session
def test_the_session_keeps_every_run(session) -> None:
    session.reset()
    session.forget_runs()
    session.step(StepRequest(probe_size=0, method="tent", n_steps=0, stream="continual"))
    tent = session.current_run
    first_pass = [h.step for h in session.history]
    session.step(StepRequest(probe_size=0, method="bn", n_steps=3))
    session.step(StepRequest(probe_size=0, method="bn", n_steps=2))  # the same run goes on
    assert [r.label for r in session.runs] == [f"#{tent.number} tent · continual",
                                               f"#{tent.number + 1} bn"]
    assert [h.step for h in session.runs[0].history] == first_pass
    assert [h.step for h in session.history] == [1, 2, 3, 4, 5]
    assert session.runs[1].history is session.history
    assert session.runs[0].domain_names == ("noise", "blur")
    # batches are cut per domain: noise's 539 samples are 8 of 64 and one of 27
    assert session.runs[0].shift_marks() == [(1, "noise"), (539 // 64 + 2, "blur")]
    assert session.runs[0].predictions is not None and session.runs[0].predictions_refreshed == 1.0
    # reset ends the current run; it stays
    session.reset()
    assert session.current_run is None and session.history == [] and len(session.runs) == 2
    # a run that never stepped leaves no trace
    with pytest.raises(ParameterError):
        session.step(StepRequest(probe_size=0, method="tent", params=(("lr", -1.0),)))
    assert len(session.runs) == 2
    session.step(StepRequest(probe_size=0, method="none", n_steps=1))
    assert len(session.runs) == 3
    assert session.forget_runs() == [session.current_run]
    assert [r.method for r in session.runs] == ["none"]


def test_snapshot_holds_every_run_and_opens_without_them(session, tmp_path) -> None:
    session.reset()
    session.forget_runs()
    session.step(StepRequest(probe_size=0, method="tent", n_steps=4, stream="continual,dirichlet=0.5"))
    session.step(StepRequest(probe_size=0, method="t3a", n_steps=3, params=(("filter_K", 20),)))
    path = tmp_path / "runs.h5"
    write_snapshot(path, session.to_snapshot())
    snap = read_snapshot(path)
    assert [e["attrs"]["method"] for e in snap.runs] == ["tent", "t3a"]
    assert [e["attrs"]["current"] for e in snap.runs] == [0, 1]
    back = [run_from_snapshot(e) for e in snap.runs]
    for got, want in zip(back, session.runs, strict=True):
        assert (got.number, got.method, got.params, got.stream) == (
            want.number, want.method, want.params, want.stream)
        assert [h.step for h in got.history] == [h.step for h in want.history]
        assert [h.online_accuracy for h in got.history] == [h.online_accuracy for h in want.history]
        assert np.array_equal(got.predictions, want.predictions)
        assert got.domain_names == ("noise", "blur")
    assert back[0].stream == "continual,dirichlet=0.5"
    assert snap.samples["domain"].tolist() == session.dataset.domains.tolist()
    assert json.loads(snap.attrs["domain_names"]) == ["noise", "blur"]
    assert np.array_equal(snap.samples["source_predictions"], session.source_predictions)
    assert snap.attrs["params"]["stream"] == "online" and snap.history["domain"].shape == (3,)
    summary = snapshot_summary(path)
    assert "Runs (2): #" in summary and "tent, stream continual,dirichlet=0.5, 4 steps" in summary
    assert "t3a, stream online, 3 steps" in summary and "(current)" in summary
    # an old file (no runs group) still opens
    old = session.to_snapshot()
    old.runs = []
    write_snapshot(tmp_path / "old.h5", old)
    assert read_snapshot(tmp_path / "old.h5").runs == []


def test_snapshot_runs_are_checked(session, tmp_path) -> None:
    snap = session.to_snapshot()
    n = len(snap.samples["labels"])
    snap.runs = [run_to_snapshot(RunRecord(1, "bn", predictions=np.zeros(n - 1, np.int64)), False)]
    with pytest.raises(SnapshotError, match=r"runs/0001/predictions has shape \(1077,\); expected \(1078,\)"):
        write_snapshot(tmp_path / "bad.h5", snap)
    snap.runs = [{"attrs": {}, "history": {"step": [1]}}]
    with pytest.raises(SnapshotError, match="runs/0001/history/accuracy is missing"):
        write_snapshot(tmp_path / "bad.h5", snap)
    snap.runs = [{"attrs": {}, "history": {}, "extra": 1}]
    with pytest.raises(SnapshotError, match="runs/0001 has 'extra'"):
        write_snapshot(tmp_path / "bad.h5", snap)


# ------------------------------------------------------------------ the table
def test_method_entries_and_their_parameters() -> None:
    assert parse_methods("none, bn,tsd:corrected") == ["none", "bn", "tsd:corrected"]
    for text, problem in (("none,foo", "unknown method 'foo'"), ("tsd:best", "unknown variant"),
                          ("bn,bn", "bn is listed twice"), ("bn,,tent", "separated by commas")):
        with pytest.raises(ParameterError, match=problem):
            parse_methods(text)
    chosen = method_params(["bn", "tent", "tsd:corrected"],
                           {"*": {"lr": 1e-3}, "tsd:corrected": {"filter_K": 5}})
    assert chosen == {"bn": {}, "tent": {"lr": 1e-3},
                      "tsd:corrected": {"lr": 1e-3, "variant": "corrected", "filter_K": 5}}
    with pytest.raises(ParameterError, match="beta: not a parameter of 'tent'"):
        method_params(["tent"], {"tent": {"beta": 0.5}})
    with pytest.raises(ParameterError, match="lr: no compared method takes it"):
        method_params(["bn", "none"], {"*": {"lr": 1e-3}})
    with pytest.raises(ParameterError, match="bn has no variants"):
        method_params(["bn:corrected"], {})


def test_compare_table_on_the_demo_is_seeded_and_matches_single_runs() -> None:
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.opening import open_model_and_data

    shifts = ["demo:noise:3", "demo:blur:3"]
    methods = ["none", "bn", "tent"]
    table = compare_methods("demo:linear", shifts, methods, names=["noise", "blur"],
                            full_set=True, device="cpu")
    again = compare_methods("demo:linear", shifts, methods, names=["noise", "blur"],
                            full_set=True, device="cpu")
    assert np.array_equal(table.online, again.online) and np.array_equal(table.full, again.full)
    assert table.online.shape == (3, 2) and np.isfinite(table.online).all()
    # each cell is one pass of that method from the source model on that shift
    model, data = open_model_and_data("demo:linear", "demo:blur:3")
    run = AdaptRun(make_adapter("tent", model), data, batch_size=64, seed=0)
    online = run.run_pass()[-1].cumulative_accuracy
    assert table.online[2, 1] == online and table.full[2, 1] == run.evaluate()
    assert table.online[1].mean() > table.online[0].mean()  # BN beats the source on the demo
    text = table.text()
    assert "method" in text and "noise" in text and "mean" in text
    rows = table.csv(protocol=False).splitlines()  # one seed: the body as it always was
    assert rows[0] == "method,noise,blur,mean,noise full,blur full,mean full"
    assert table.csv().startswith("# metric: online accuracy") and table.csv().endswith(
        table.csv(protocol=False))
    cells = rows[3].split(",")
    assert cells[0] == "tent" and float(cells[2]) == pytest.approx(100 * online, abs=0.005)
    assert float(cells[3]) == pytest.approx(100 * table.online[2].mean(), abs=0.005)
    md = table.markdown(protocol=False).splitlines()
    assert md[0] == "| method | noise | blur | mean |" and len(md) == 5


def test_compare_continual_cells_are_the_shifts_samples_in_one_run() -> None:
    shifts = ["demo:noise:3", "demo:blur:3"]
    table = compare_methods("demo:linear", shifts, ["bn"], stream="continual", together=True,
                            names=["noise", "blur"], device="cpu")
    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.opening import open_model_and_data

    model, data = open_model_and_data("demo:linear", "demo:noise,blur:3")
    records = AdaptRun(make_adapter("bn", model), data, stream="continual").run_pass()
    expected = online_accuracy_by_domain(records, data.labels, data.domains, 2)
    assert np.array_equal(table.online[0], expected)


def test_a_stream_that_cannot_be_made_leaves_the_current_run(tmp_path) -> None:
    from protoview.core.data import open_dataset

    images = open_dataset("demo:noise:3")._images.numpy()[:80]
    np.savez(tmp_path / "unlabelled.npz", x=images.astype(np.uint8))
    s = Session.open(OpenRequest(checkpoint="demo:cosine", data=str(tmp_path / "unlabelled.npz")))
    s.step(StepRequest(probe_size=0, method="bn", n_steps=2, batch_size=16))
    with pytest.raises(ParameterError, match="stream: sorted by class needs the samples' labels|"
                                             "stream: sorted by class is made from the labels"):
        s.step(StepRequest(probe_size=0, method="bn", n_steps=1, batch_size=16, stream="sorted"))
    assert s.current_run is not None and [h.step for h in s.history] == [1, 2]
    s.step(StepRequest(probe_size=0, method="bn", n_steps=1, batch_size=16))
    assert [h.step for h in s.history] == [1, 2, 3]
