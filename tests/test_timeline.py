"""The timeline of checkpoints (protoview.core.timeline, ``protoview timeline``): natural
order, movers, accuracy with growing heads, aligned maps, the snapshot, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from protoview.cli._main import main
from protoview.core.timeline import (
    OpenOptions,
    build_timeline,
    expand_checkpoints,
    knn_jaccard,
    knn_lists,
    movers_between,
    rank_movers,
    seen_class_accuracy,
)
from protoview.errors import CheckpointError, DatasetError, ParameterError
from tests import _timeline_fixtures as tf

OPTIONS = OpenOptions(arch=tf.ARCH)


@pytest.fixture(scope="module")
def epochs(tmp_path_factory) -> list[Path]:
    """epoch_1, epoch_2 (epoch 1 with another head: the same features), epoch_10 (trained
    on), in a plain training loop's layout, written out of order on purpose."""
    folder = tmp_path_factory.mktemp("run")
    first, later = tf.write_epochs(folder, epochs=2, name="e{}.pt")
    one = (folder / "epoch_1.pt")
    first.rename(one)
    two = tf.with_new_head(one, folder / "epoch_2.pt")
    ten = later.rename(folder / "epoch_10.pt")
    return [one, two, ten]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> list[Path]:
    """PyCIL task checkpoints whose head grows 4 -> 7 -> 10 classes."""
    return tf.write_pycil_tasks(tmp_path_factory.mktemp("pycil"))


@pytest.fixture(scope="module")
def no_map(epochs) -> object:
    return build_timeline([str(epochs[0].parent / "epoch_*.pt")], "demo", OPTIONS, with_map=False)


# ---------------------------------------------------------------- files
def test_globs_and_files_come_in_natural_order(tmp_path):
    for name in ("epoch_10.pt", "epoch_2.pt", "epoch_1.pt", "best.pt"):
        (tmp_path / name).write_bytes(b"")
    found = expand_checkpoints([str(tmp_path / "epoch_*.pt")])
    assert [Path(p).name for p in found] == ["epoch_1.pt", "epoch_2.pt", "epoch_10.pt"]
    given = [str(tmp_path / n) for n in ("epoch_10.pt", "best.pt", "epoch_2.pt")]
    assert [Path(p).name for p in expand_checkpoints(given)] == ["best.pt", "epoch_2.pt", "epoch_10.pt"]
    assert expand_checkpoints(given, keep_order=True) == given
    with pytest.raises(ParameterError, match=r"nothing_\*\.pt: matches no file"):
        expand_checkpoints([str(tmp_path / "nothing_*.pt")])
    with pytest.raises(ParameterError, match="at least one checkpoint"):
        expand_checkpoints([])


# ---------------------------------------------------------------- movers
def test_jaccard_distance_of_neighbour_lists():
    a = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    b = np.array([[4, 3, 2, 1], [5, 6, 7, 8], [1, 2, 9, 8]])
    np.testing.assert_array_equal(knn_jaccard(a, b), [0.0, 1.0, 1 - 2 / 6])
    assert rank_movers(np.array([0.5, 1.0, 0.5, 0.0])).tolist() == [1, 0, 2, 3]  # ties: index
    assert rank_movers(np.array([0.5, 1.0, 0.5]), top=1).tolist() == [1]
    movers = movers_between(a, b, 1, 3, top=2)
    assert movers.indices.tolist() == [1, 2] and movers.scores[0] == 1.0 and movers.k == 4
    with pytest.raises(ParameterError, match="one shape"):
        knn_jaccard(a, b[:2])
    with pytest.raises(ParameterError, match="--top"):
        rank_movers(np.zeros(3), top=0)


def test_knn_lists_are_the_exact_cosine_neighbours():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    got = knn_lists(x, 4)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :4]
    assert got.shape == (60, 4) and all(set(g) == set(w) for g, w in zip(got, want, strict=True))
    assert knn_lists(x[:3], 10).shape == (3, 2)  # k cut to N - 1
    with pytest.raises(ParameterError, match="at least 2 samples"):
        knn_lists(x[:1])
    with pytest.raises(ParameterError, match="NaN"):
        knn_lists(np.full((4, 2), np.nan))
    with pytest.raises(ParameterError, match="--k"):
        knn_lists(x, 0)


# ---------------------------------------------------------------- a run's checkpoints
def test_a_plain_training_loop_timeline(no_map, epochs):
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.features import extract_features

    tl = no_map
    assert [s.name for s in tl.steps] == ["epoch_1.pt", "epoch_2.pt", "epoch_10.pt"]
    assert [s.step for s in tl.steps] == [1, 2, 3] and tl.k == 10
    model = load_checkpoint(epochs[2], tf.ARCH)
    direct = extract_features(model, open_dataset("demo", model.info.transform))
    last = tl.steps[-1]
    assert last.accuracy == pytest.approx(np.mean(direct.predictions == direct.labels))
    np.testing.assert_array_equal(last.frame["predictions"], direct.predictions)
    np.testing.assert_array_equal(last.knn, knn_lists(direct.features))
    # epoch 2 only changed the head: the same neighbours, other predictions
    assert tl.steps[1].knn_change == 0.0 and tl.steps[2].knn_change > 0
    assert not np.array_equal(tl.steps[0].frame["predictions"], tl.steps[1].frame["predictions"])
    assert np.isnan(tl.steps[0].knn_change)
    assert np.isnan(last.frame["embedding"]).all()  # no map asked for
    movers = tl.movers("epoch_1.pt", 3, top=5)  # any two, by name or number
    np.testing.assert_array_equal(movers.distance, knn_jaccard(tl.steps[0].knn, last.knn))
    assert len(movers.indices) == 5 and movers.scores[0] == movers.distance.max()
    assert tl.movers(1, 2).distance.max() == 0.0
    with pytest.raises(ParameterError, match="--movers: no checkpoint '4'"):
        tl.movers(1, 4)


def test_features_come_from_the_cache_the_second_time(epochs, tmp_path):
    first = build_timeline([str(epochs[0])], "demo", OPTIONS, with_map=False, cache_dir=str(tmp_path))
    again = build_timeline([str(epochs[0])], "demo", OPTIONS, with_map=False, cache_dir=str(tmp_path))
    assert any("saved to cache" in n for n in first.steps[0].notes)
    assert any("loaded from cache" in n for n in again.steps[0].notes)
    np.testing.assert_array_equal(first.steps[0].knn, again.steps[0].knn)


def test_a_growing_head_counts_the_classes_it_has(tasks):
    """PyCIL's task checkpoints (class order seed 1993): a head of T classes holds the
    digits order[:T]; its predictions, accuracy and per-class accuracy are over those."""
    from protoview.core.opening import pycil_class_order

    order = list(pycil_class_order(10))
    tl = build_timeline([str(p) for p in tasks], "demo", OPTIONS, with_map=False)
    labels = tl.state.labels
    assert [s.head_classes for s in tl.steps] == [4, 7, 10]
    assert tl.class_order == "PyCIL's, seed 1993 (its configs)"
    for s in tl.steps:
        held = order[: s.head_classes]
        lacks = order[s.head_classes:]
        assert s.evaluated == int(np.isin(labels, held).sum())
        assert np.isnan(s.class_accuracy[lacks]).all()
        assert np.isfinite(s.class_accuracy[held]).all()
        assert np.isin(s.frame["predictions"], held).all()
        assert s.frame["proxies_embedding"].shape == (s.head_classes, 2)
    seen = np.isin(labels, order[:4])
    assert tl.steps[0].accuracy == pytest.approx(
        np.mean(tl.steps[0].frame["predictions"][seen] == labels[seen]))
    assert len(tl.state.centers) == 10 and len(tl.state.proxies) == 10


def test_seen_class_accuracy_without_labels():
    acc, counted, per_class = seen_class_accuracy(np.array([0, 1]), np.array([-1, -1]), 2, 3)
    assert np.isnan(acc) and counted == 0 and np.isnan(per_class).all()


# ---------------------------------------------------------------- maps and the snapshot
def test_aligned_maps_and_the_snapshot(epochs, tasks, tmp_path):
    from protoview.core.snapshot import read_snapshot, snapshot_summary, write_snapshot
    from protoview.core.timeline import snapshot_movers, timeline_checkpoints, timeline_to_snapshot
    from protoview.present.compute import replay_states

    tl = build_timeline([str(p) for p in epochs], "demo", OPTIONS)
    s1, s2, s3 = tl.steps
    # epoch 2 has epoch 1's features: every sample stays exactly where it was
    assert s2.map_held == 1.0
    np.testing.assert_array_equal(s2.frame["embedding"], s1.frame["embedding"])
    assert np.isfinite(s3.frame["embedding"]).all()
    path = tmp_path / "t.h5"
    write_snapshot(path, timeline_to_snapshot(tl))
    snap = read_snapshot(path)
    assert snap.attrs["method"] == "timeline" and snap.attrs["step"] == 3
    assert timeline_checkpoints(snap) == [str(p) for p in epochs]
    assert [f["checkpoint"] for f in snap.timeline] == [str(p) for p in epochs]
    np.testing.assert_array_equal(snap.history["accuracy"], [s.accuracy for s in tl.steps])
    np.testing.assert_array_equal(snap.history["class_accuracy"][2], s3.class_accuracy)
    movers = snapshot_movers(snap, "epoch_1.pt", 3, top=7)
    np.testing.assert_array_equal(movers.indices, tl.movers(1, 3, top=7).indices)
    states = replay_states(snap)
    assert [st.attrs["step"] for st in states] == [1, 2, 3]
    assert [st.metrics["accuracy"] for st in states] == pytest.approx([s.accuracy for s in tl.steps])
    np.testing.assert_array_equal(states[0].embedding, s1.frame["embedding"])
    assert "Timeline of 3 recorded steps" in snapshot_summary(path)
    assert "epoch_1.pt" in snapshot_summary(path)

    grown = build_timeline([str(p) for p in tasks], "demo", OPTIONS)
    snap = timeline_to_snapshot(grown)
    first = snap.timeline[0]["proxies_embedding"]  # the last head's 10 rows, 6 not yet there
    assert first.shape == (10, 2) and np.isfinite(first[:4]).all() and np.isnan(first[4:]).all()
    assert np.isfinite(snap.timeline[2]["proxies_embedding"]).all()
    write_snapshot(tmp_path / "grown.h5", snap)
    assert len(replay_states(read_snapshot(tmp_path / "grown.h5"))) == 3


def test_a_frames_checkpoint_must_be_text(tmp_path):
    from protoview.core.snapshot import write_snapshot
    from protoview.errors import SnapshotError
    from tests._snapshot_writer import make_snapshot

    snap = make_snapshot(1, 5, 3)
    snap.timeline = [{"step": 1, "embedding": np.zeros((5, 2)), "checkpoint": 3}]
    with pytest.raises(SnapshotError, match="timeline\\[0\\]/checkpoint must be text"):
        write_snapshot(tmp_path / "bad.h5", snap)


# ---------------------------------------------------------------- bad inputs
def test_checkpoints_of_two_architectures_are_refused(tmp_path):
    wide = tf.write_demo_format(tmp_path / "a_wide.pt", feature_dim=64)
    narrow = tf.write_demo_format(tmp_path / "b_narrow.pt", feature_dim=32)
    with pytest.raises(CheckpointError, match=r"b_narrow\.pt: has a featurizer of other layers"):
        build_timeline([str(wide), str(narrow)], "demo", with_map=False)


def test_a_head_that_does_not_hold_the_data_classes_is_refused(tasks):
    with pytest.raises(CheckpointError, match=r"finetune_1\.pkl: has the largest head of the "
                                              r"timeline, 7 classes, but the labels"):
        build_timeline([str(p) for p in tasks[:2]], "demo", OPTIONS, with_map=False)


def test_precomputed_features_are_refused(epochs, tmp_path):
    out = tmp_path / "f.h5"
    assert main(["extract", str(epochs[0]), "demo", "--arch", tf.ARCH, "--out", str(out),
                 "--no-cache"]) == 0
    with pytest.raises(DatasetError, match="holds the features of one model"):
        build_timeline([str(epochs[0])], str(out), OPTIONS, with_map=False)


# ---------------------------------------------------------------- the command line
def test_the_timeline_command(epochs, capsys, tmp_path):
    glob = str(epochs[0].parent / "epoch_*.pt")
    assert main(["timeline", glob, "demo", "--arch", tf.ARCH, "--movers", "1", "epoch_10.pt",
                 "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["step", "checkpoint", "classes", "accuracy", "k-NN", "change",
                              "map", "held"]
    assert [line.split()[1] for line in out[1:4]] == ["epoch_1.pt", "epoch_2.pt", "epoch_10.pt"]
    assert out[4].startswith("movers from 1 (epoch_1.pt) to 3 (epoch_10.pt)")
    # three checkpoints, three movers, each checkpoint's geometry
    assert len([line for line in out if line[:4].strip().isdigit()]) == 3 + 3 + 3
    assert any(line.startswith("geometry (neural collapse NC1-NC4") for line in out)
    bad = tmp_path / "never.h5"
    assert main(["timeline", glob, "demo", "--arch", tf.ARCH, "--movers", "1", "9",
                 "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "protoview: error: --movers: no checkpoint '9'" in err and not bad.exists()
    assert main(["timeline", "demo"]) == 2
    assert "give one or more checkpoints" in capsys.readouterr().err
    assert main(["timeline", str(tmp_path / "none_*.pt"), "demo"]) == 2
    assert "none_*.pt: matches no file" in capsys.readouterr().err


def test_several_checkpoints_open_the_window_on_their_timeline(monkeypatch, epochs):
    from protoview.cli import _timeline
    from protoview.gui import window as app

    seen = {}
    monkeypatch.setattr(_timeline, "open_in_window", lambda args, files: seen.update(files=files) or 0)
    monkeypatch.setattr(app, "run_app", lambda checkpoint, data, **options: seen.update(
        single=(checkpoint, data)) or 0)
    names = [str(p) for p in epochs]
    assert main([*names, "demo", "--arch", tf.ARCH]) == 0
    assert seen.pop("files") == [*names, "demo"]
    assert main([str(epochs[0].parent / "epoch_*.pt"), "demo"]) == 0
    assert seen.pop("files")[-1] == "demo"
    assert main([names[0], "demo"]) == 0 and seen == {"single": (names[0], "demo")}


def test_the_snapshot_params_are_json(no_map):
    from protoview.core.timeline import timeline_to_snapshot

    snap = timeline_to_snapshot(no_map)
    assert json.loads(snap.attrs["timeline_checkpoints"])[0].endswith("epoch_1.pt")
    assert snap.history["knn_indices"][0].shape == (len(no_map.state.labels) * 10,)


def test_a_timeline_of_self_supervised_encoders(tmp_path, capsys) -> None:
    """SwAV checkpoints (no classifier head) over labelled data: features, k-NN change and
    movers; accuracy says there is no head, predictions are '-'."""
    from protoview.cli import main
    from tests._ssl_fixtures import swav_model, write_swav

    for seed in (0, 1):
        write_swav(tmp_path / f"swav_ep{seed}.pth.tar", swav_model(seed=seed), epoch=seed)
    argv = ["timeline", str(tmp_path / "swav_ep*.pth.tar"), "demo:noise:3", "--arch", "resnet18",
            "--preprocess", "size=16,channels=3,mean=0.5,std=0.25", "--movers", "1", "2",
            "--top", "2", "--no-cache"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert rows[0][1] == "swav_ep0.pth.tar" and rows[0][2:5] == ["-", "no", "head"]
    assert "movers from 1 (swav_ep0.pth.tar) to 2 (swav_ep1.pth.tar)" in out
    mover = next(line.split() for line in out.splitlines() if line.strip().startswith("1 ")
                 and "swav" not in line)
    assert mover[3:5] == ["-", "-"]
