"""Geometry along the steps (issue 22): the snapshot's ``metrics/geometry`` table (written,
read back, old files without it), each checkpoint of a timeline measured (the same numbers
as measuring its features directly; NC3 only once the head holds every class, its rows in
the data's classes for PyCIL's order), ``timeline --csv`` / ``info`` / ``adapt
--geometry-every``, and the window's texts for a replayed snapshot (the stored row of the
frame shown, the curves along it; a class the head lacks yet reads "not yet learnt")."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

from protoview.cli._main import main
from protoview.core.cka import linear_cka
from protoview.core.collapse import neural_collapse
from protoview.core.measures import (
    geometry_row,
    geometry_table,
    map_geometry_from_row,
    measure_geometry,
    table_rows,
)
from protoview.core.snapshot import read_snapshot, snapshot_summary, write_snapshot
from protoview.core.timeline import OpenOptions, build_timeline, timeline_to_snapshot
from protoview.errors import SnapshotError
from protoview.present import Shown, derive
from protoview.present import geometry as texts
from tests import _timeline_fixtures as tf
from tests._snapshot_writer import make_snapshot

OPTIONS = OpenOptions(arch=tf.ARCH)


@pytest.fixture(scope="module")
def epochs(tmp_path_factory) -> list[Path]:
    return tf.write_epochs(tmp_path_factory.mktemp("run"), epochs=3)


@pytest.fixture(scope="module")
def plain(epochs):
    return build_timeline([str(p) for p in epochs], "demo", OPTIONS)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    paths = tf.write_pycil_tasks(tmp_path_factory.mktemp("pycil"))
    return paths, build_timeline([str(p) for p in paths], "demo", OPTIONS, with_map=False)


def _features(path: Path):
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.features import extract_features

    model = load_checkpoint(path, tf.ARCH)
    return model, extract_features(model, open_dataset("demo", model.info.transform))


# ---------------------------------------------------------------- the snapshot's table
def _rows(n: int = 40, steps=(0, 3, 6)) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = np.arange(n) % 4
    logits = rng.normal(size=(n, 4)).astype(np.float32)
    out = []
    for i, step in enumerate(steps):
        report = measure_geometry(x + i, logits, y, head_rows=rng.normal(size=(4, 8)),
                                  knn_k=5, with_kmeans=i == 0)
        out.append(geometry_row(report, run=0 if step == 0 else 1, step=step,
                                linear=1.0 - 0.1 * i))
    return out


def test_the_geometry_table_round_trips_and_old_files_open(tmp_path):
    snap = make_snapshot(1, 40, 8)
    rows = _rows()
    snap.geometry, snap.geometry_attrs = geometry_table(rows), {"versus": "the source model"}
    path = tmp_path / "g.h5"
    write_snapshot(path, snap)
    back = read_snapshot(path)
    assert back.geometry_attrs == {"versus": "the source model"}
    for want, got in zip(rows, table_rows(back.geometry), strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert back.geometry["kmeans_groups"][0].shape == (40,)  # k-means at step 0 only
    assert back.geometry["kmeans_groups"][1].size == 0
    with h5py.File(path, "r") as h5:
        assert "geometry" in h5["metrics"] and "nc1" in h5["metrics/geometry"]
    text = snapshot_summary(path)
    assert "Geometry measured at 3 steps (CKA against the source model): step 0: NC1" in text
    assert "run 1 step 6: NC1" in text and "linear CKA 0.800" in text
    # a file written before the table: no geometry, opens as before
    old = tmp_path / "old.h5"
    write_snapshot(old, make_snapshot(1, 40, 8))
    assert read_snapshot(old).geometry == {} and "Geometry" not in snapshot_summary(old)
    # a table without its run column is refused, naming the field
    snap.geometry = {k: v for k, v in geometry_table(rows).items() if k != "run"}
    with pytest.raises(SnapshotError, match="metrics/geometry/run is missing"):
        write_snapshot(tmp_path / "bad.h5", snap)


def test_a_stored_row_is_the_measurement_it_came_from():
    rows = _rows()
    rng = np.random.default_rng(1)
    preds, labels = rng.integers(0, 4, 40), np.arange(40) % 4
    g = map_geometry_from_row(table_rows(geometry_table(rows))[0], preds, labels,
                              versus="first checkpoint")
    c = g.report.collapse
    assert c.nc1 == rows[0]["nc1"] and c.nc4 == rows[0]["nc4_ncc_agreement"]
    np.testing.assert_array_equal(c.proxy_center_cosine, rows[0]["proxy_center_cosine"])
    assert g.report.knn.accuracy == rows[0]["knn_accuracy"] and g.report.knn.k == 5
    assert g.report.error_groups  # ranked again from the stored k-means groups
    names = [name for name, _v, _m in texts.number_rows(g)]
    assert "linear CKA vs first checkpoint" in names
    assert not any(name.startswith("RBF CKA") for name in names)  # not measured along a run


# ---------------------------------------------------------------- a timeline
def test_each_checkpoint_is_measured_as_its_features_directly(plain, epochs):
    first = _features(epochs[0])[1].features
    for step, path in zip(plain.steps, epochs, strict=True):
        model, direct = _features(path)
        from protoview.core.measures import class_major_rows

        want = neural_collapse(direct.features, direct.labels,
                               num_classes=10, head_rows=class_major_rows(model.classifier),
                               head_predictions=direct.logits.argmax(1))
        g = step.geometry
        assert (g["run"], g["step"]) == (0, step.step)
        assert g["nc1"] == want.nc1 and g["nc2_equinorm"] == want.equinorm
        assert g["nc2_equiangularity"] == want.equiangularity and g["nc3"] == want.nc3
        assert g["nc4_ncc_agreement"] == want.nc4
        assert g["linear_cka"] == pytest.approx(linear_cka(first, direct.features), abs=1e-12)
        assert 0 < g["knn_accuracy"] <= 1 and g["kmeans_k"] == 0  # no k-means per checkpoint
    assert plain.steps[0].geometry["linear_cka"] == pytest.approx(1.0)


def test_a_growing_head_has_nc3_once_it_holds_every_class_in_the_datas_order(tasks):
    import torch

    from protoview.core.opening import pycil_class_order

    paths, tl = tasks
    assert [np.isnan(s.geometry["nc3"]) for s in tl.steps] == [True, True, False]
    assert all(np.isfinite(s.geometry["nc1"]) for s in tl.steps)
    # the last head as PyCIL saved it: row k is data class order[k]
    rows = torch.load(paths[-1], weights_only=False)["model_state_dict"]["fc.weight"]
    order = list(pycil_class_order(10))
    by_class = np.empty(tuple(rows.shape))
    by_class[order] = rows.double().numpy()
    _m, direct = _features(paths[-1])
    want = neural_collapse(direct.features, direct.labels, num_classes=10, head_rows=by_class)
    assert tl.steps[-1].geometry["nc3"] == want.nc3


def test_the_timeline_snapshot_and_csv_hold_the_curves(plain, epochs, tmp_path, capsys):
    path = tmp_path / "t.h5"
    write_snapshot(path, timeline_to_snapshot(plain))
    snap = read_snapshot(path)
    assert snap.geometry_attrs["versus"] == "the first checkpoint"
    np.testing.assert_array_equal(snap.geometry["step"], [1, 2, 3])
    np.testing.assert_array_equal(snap.geometry["nc1"], [s.geometry["nc1"] for s in plain.steps])
    out = tmp_path / "t.csv"
    assert main(["timeline", *map(str, epochs), "demo", "--arch", tf.ARCH, "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "geometry (neural collapse NC1-NC4" in printed
    table = list(csv.DictReader(out.open()))
    assert [float(r["nc1"]) for r in table] == pytest.approx(
        [s.geometry["nc1"] for s in plain.steps])
    assert {"nc2_equinorm", "nc2_equiangularity", "nc3", "nc4_ncc_agreement", "knn_accuracy",
            "linear_cka"} <= set(table[0])
    assert main(["timeline", *map(str, epochs), "demo", "--arch", tf.ARCH, "--no-geometry",
                 "--csv", str(out)]) == 0
    assert "geometry (" not in capsys.readouterr().out
    assert "nc1" not in next(csv.DictReader(out.open()))


# ---------------------------------------------------------------- the window's texts
def test_a_replayed_timeline_shows_its_stored_row_and_curves(plain):
    shown = Shown()
    shown.show_snapshot(timeline_to_snapshot(plain))
    for frame in range(3):
        shown.show_frame(frame)
        g, current = texts.for_shown(shown)
        assert current and g.step == frame + 1
        assert g.report.collapse.nc1 == plain.steps[frame].geometry["nc1"]
        assert texts.header_text(shown).startswith(
            f"checkpoint {frame + 1} ({plain.steps[frame].name}), stored in the snapshot")
        along = texts.along(shown)
        assert along.stored and along.now == frame + 1 and along.label == "checkpoint"
        np.testing.assert_array_equal(along.steps, [1, 2, 3])
        np.testing.assert_array_equal(along.values["linear_cka"],
                                      [s.geometry["linear_cka"] for s in plain.steps])


def test_an_adaptation_runs_measurements_are_exported_and_replayed(tmp_path):
    from protoview.core.session import Session
    from protoview.present import GeometryRequest, OpenRequest, StepRequest
    from protoview.present.compute import with_measurements

    session = Session.open(OpenRequest(checkpoint="demo:cosine", data="demo:noise:3"))
    shown = Shown()
    for request in (GeometryRequest(), StepRequest(method="tent", n_steps=1, batch_size=64),
                    GeometryRequest()):
        for update in session.run(request):
            shown.apply(update)
    path = tmp_path / "s.h5"
    write_snapshot(path, with_measurements(session.to_snapshot(), tuple(shown.geometry)))
    snap = read_snapshot(path)
    np.testing.assert_array_equal(snap.geometry["run"], [0, 1])
    np.testing.assert_array_equal(snap.geometry["step"], [0, 1])
    assert snap.geometry["rbf_cka"][1] == shown.geometry[1].comparison.rbf_cka
    replay = Shown()
    replay.show_snapshot(snap)
    g, current = texts.for_shown(replay)
    assert current and (g.run, g.step) == (1, 1)
    assert g.report.error_groups  # from the stored k-means groups and the map's predictions
    assert texts.along(replay).steps.tolist() == [0, 1]


def test_a_class_the_head_lacks_yet_is_not_yet_learnt(tasks):
    from protoview.core.opening import pycil_class_order
    from protoview.present.timeline import TimelineRequest, build

    paths, _tl = tasks
    built = build(TimelineRequest(checkpoints=tuple(map(str, paths)), data="demo", arch=tf.ARCH))
    shown = Shown()
    shown.show_snapshot(built.snapshot, class_names=built.class_names)
    order = list(pycil_class_order(10))
    shown.show_frame(0)
    unlearnt = derive.unlearnt_classes(shown.state, 10)
    np.testing.assert_array_equal(np.flatnonzero(unlearnt), sorted(order[4:]))
    centre = int(np.flatnonzero(np.asarray(shown.state.center_labels) == order[9])[0])
    mask = derive.members(shown.state, "centers", centre)
    assert "not yet learnt" in derive.glyph_hover_text(shown.state, "centers", centre, mask,
                                                       built.class_names)
    shown.show_frame(2)
    assert not derive.unlearnt_classes(shown.state, 10).any()


def test_adapt_measures_every_n_steps(tmp_path, capsys):
    out = tmp_path / "a.h5"
    assert main(["adapt", "demo", "demo:noise:3", "--method", "tent", "--steps", "2",
                 "--batch-size", "64", "--geometry-every", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "geometry along the run (step 0: the source model" in printed
    snap = read_snapshot(out)
    np.testing.assert_array_equal(snap.geometry["step"], [0, 1, 2])
    np.testing.assert_array_equal(snap.geometry["run"], [0, 1, 1])
    assert snap.geometry["linear_cka"][0] == pytest.approx(1.0)
    assert [f["step"] for f in snap.timeline] == [1, 2]  # --record-every set to N
    for bad, message in ((["--geometry-every", "-1"], "--geometry-every: must be 0 (off)"),
                         (["--geometry-every", "3", "--record-every", "2"],
                          "must be a multiple of --record-every")):
        assert main(["adapt", "demo", "demo:noise:3", "--steps", "1", *bad]) == 2
        assert message in capsys.readouterr().err
