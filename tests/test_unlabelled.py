"""Unlabelled target data, the real TTA setting: every path works and no number pretends.

A folder of images without class folders, an .npz with only ``x``, a feature file without
labels: adaptation, k-means, Sinkhorn, export and ``info`` work; accuracy-type numbers read
"no labels" (never 0% or NaN); there are no class centers; the snapshot says the labels are
unknown.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from PIL import Image

from protoview.cli import main
from protoview.core.data import FeatureSet, open_dataset
from protoview.core.demo import demo_arrays
from protoview.core.session import KMeansRequest, OpenRequest, Session, SinkhornRequest, StepRequest
from protoview.core.snapshot import read_snapshot, snapshot_summary, write_snapshot
from protoview.core.state import compute_geometry, labels_known
from protoview.errors import ParameterError

N = 96


@pytest.fixture(scope="module")
def digits():
    images, labels = demo_arrays(part="test", shift="noise", severity=3, seed=0)
    return images[:N], labels[:N]


@pytest.fixture(scope="module")
def unlabelled_files(tmp_path_factory, digits):
    """The same N demo digits as an image folder without class folders, an .npz with only
    ``x``, and (later) a feature file without labels."""
    root = tmp_path_factory.mktemp("unlabelled")
    images, _ = digits
    folder = root / "target"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray((np.clip(image[0], 0, 1) * 255).round().astype(np.uint8)).save(folder / f"{i:04d}.png")
    npz = root / "target.npz"
    np.savez(npz, x=images)
    return {"folder": folder, "npz": npz, "root": root}


def _no_fake_numbers(text: str) -> None:
    """No accuracy-type number printed as 0%, NaN or a percentage at all."""
    assert "nan" not in text.lower() and not re.search(r"\d%", text), text


# ---------------------------------------------------------------------------- opening
def test_the_three_unlabelled_forms_open(unlabelled_files, tmp_path):
    folder = open_dataset(unlabelled_files["folder"])
    npz = open_dataset(unlabelled_files["npz"])
    assert len(folder) == len(npz) == N
    assert (folder.labels == -1).all() and (npz.labels == -1).all()
    assert folder.num_labelled == npz.num_labelled == 0 and "unlabelled" in folder.description
    assert npz.description.endswith("no labels")
    features = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    with h5py.File(tmp_path / "f.h5", "w") as handle:
        handle["features"] = features
    np.savez(tmp_path / "f.npz", features=features)
    for path in (tmp_path / "f.h5", tmp_path / "f.npz"):
        fs = open_dataset(path)
        assert isinstance(fs, FeatureSet) and (fs.labels == -1).all() and len(fs) == 7
        assert "no labels" in fs.description


def test_geometry_without_labels_has_no_centers_and_no_accuracy():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 6)).astype(np.float32)
    logits = rng.normal(size=(40, 3)).astype(np.float32)
    state = compute_geometry(features, np.full(40, -1), logits=logits, num_classes=3, with_map=False)
    assert state.centers.shape == (0, 6) and state.center_labels.shape == (0,)
    assert "accuracy" not in state.metrics and "center_loss" not in state.metrics
    assert state.metrics["labelled_samples"] == 0 and state.labels_known == "none"
    assert "no labels" in state.summary() and state.predictions.min() >= 0
    assert labels_known(np.array([0, -1])) == "some" and labels_known(np.array([2])) == "all"


# ---------------------------------------------------------------------------- the session
@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_session_adapts_clusters_assigns_and_exports(unlabelled_files, tmp_path, kind):
    session = Session.open(OpenRequest(checkpoint="demo", data=str(unlabelled_files[kind]), adapt=True))
    assert np.isnan(session.source_accuracy) and len(session.state.centers) == 0
    session.step(StepRequest(method="tsd", n_steps=2, batch_size=32, seed=0))
    row = session.history[-1]
    assert row.step == 2 and np.isnan(row.online_accuracy) and np.isnan(row.full_accuracy)
    for method in ("tent", "bn", "t3a"):
        session.reset()
        session.step(StepRequest(method=method, n_steps=1, batch_size=32, seed=0))
        assert session.history[-1].step == 1
    state = session.kmeans(KMeansRequest(k=4, seed=0))
    assert state.prototypes.shape[0] == 4 and "nmi" not in state.metrics
    for target in ("prototypes", "proxies"):
        assigned = session.sinkhorn(SinkhornRequest(target=target))
        assert (assigned.assignment >= 0).all()
    with pytest.raises(ParameterError, match="no class centers: no sample has a known label"):
        session.sinkhorn(SinkhornRequest(target="centers"))
    path = tmp_path / "run.h5"
    write_snapshot(path, session.to_snapshot())
    snap = read_snapshot(path)
    assert snap.attrs["labels_known"] == "none" and (snap.samples["labels"] == -1).all()
    assert snap.centers["vectors"].shape[0] == 0
    summary = snapshot_summary(path)
    assert "none known (unlabelled data)" in summary and "source_accuracy=no labels" in summary
    assert "nan" not in summary


def test_labelled_snapshot_says_all(tmp_path):
    session = Session.open(OpenRequest(checkpoint="demo", data="demo:noise:1"))
    write_snapshot(tmp_path / "s.h5", session.to_snapshot())
    assert read_snapshot(tmp_path / "s.h5").attrs["labels_known"] == "all"
    assert "unlabelled" not in snapshot_summary(tmp_path / "s.h5")


# ---------------------------------------------------------------------------- the command line
def test_cli_says_no_labels(unlabelled_files, tmp_path, capsys):
    data = str(unlabelled_files["npz"])
    assert main(["adapt", "demo", data, "--steps", "2", "--batch-size", "32", "--out", str(tmp_path / "a.h5")]) == 0
    out = capsys.readouterr().out
    assert out.count("accuracy no labels") == 3 and "mean prediction entropy" in out
    _no_fake_numbers(out)
    assert main(["cluster", "demo", str(unlabelled_files["folder"]), "--k", "3", "--out", str(tmp_path / "c.h5")]) == 0
    out = capsys.readouterr().out
    assert "NMI no labels, ARI no labels, matched accuracy no labels" in out
    _no_fake_numbers(out)
    assert main(["export", "demo", data, "--out", str(tmp_path / "e.h5"), "--no-map"]) == 0
    out = capsys.readouterr().out
    assert "0 centers" in out and "no labels" in out
    assert main(["assign", "demo", data, "--target", "proxies"]) == 0
    capsys.readouterr()
    for name in ("a.h5", "c.h5", "e.h5"):
        assert main(["info", str(tmp_path / name)]) == 0
        out = capsys.readouterr().out
        assert "unlabelled data" in out
        _no_fake_numbers(out.split("Metrics:")[-1])
    assert main(["extract", "demo", data, "--out", str(tmp_path / "f.h5"), "--no-cache"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "f.h5")]) == 0
    out = capsys.readouterr().out
    assert "no labels" in out and "accuracy" not in out
    assert main(["cluster", "demo", str(tmp_path / "f.h5"), "--k", "3"]) == 0  # the unlabelled features file
    assert "NMI no labels" in capsys.readouterr().out
