"""The headless CLI end to end on the built-in demo: what a script author runs."""

from __future__ import annotations

import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from protoview.cli import main
from protoview.core.snapshot import read_snapshot


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); from protoview.cli import build_parser; "
        "build_parser().format_help(); "
        "heavy = [m for m in ('torch', 'umap', 'faiss', 'PySide6', 'h5py') if m in sys.modules]; "
        "print(heavy, time.perf_counter() - t)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("[]"), out.stdout
    assert time.perf_counter() - t0 < 2.0


def test_info_describes_the_demo_cosine_head(capsys):
    from protoview.core.demo import demo_checkpoint_path

    # the demo's names work as for every other command (`protoview info demo:cosine`)
    for name in ("demo:cosine", str(demo_checkpoint_path("cosine"))):
        assert main(["info", name]) == 0
        out = capsys.readouterr().out
        assert "cosine head: 10 classes x 3 proxies" in out
        assert "sha256:" in out


def test_missing_file_is_one_line_exit_2(capsys, tmp_path):
    assert main(["info", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.pt" in err and "not found" in err and "\n" not in err


def test_extract_then_info_then_cluster_on_the_file(capsys, tmp_path):
    out = tmp_path / "f.h5"
    assert main(["extract", "demo", "demo:blur:2", "--out", str(out), "--no-cache"]) == 0
    with h5py.File(out) as h5:
        assert h5["features"].shape == (539, 64)
        assert h5.attrs["checkpoint_sha256"]
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "539 samples x 64 dims" in capsys.readouterr().out
    snap = tmp_path / "km.h5"
    assert main(["cluster", "demo", str(out), "--k", "10", "--out", str(snap)]) == 0
    assert "notes: k-means auto: greedy k-means++ (5 draws on 320 points)" in capsys.readouterr().out
    s = read_snapshot(snap)
    assert s.prototypes["vectors"].shape == (10, 64)
    assert np.isfinite(s.prototypes["embedding"]).all()
    assert s.attrs["kmeans"].startswith("k-means auto")  # the path is kept with the prototypes
    assert main(["cluster", "demo", str(out), "--k", "10", "--init", "random"]) == 0  # old name
    assert "notes: k-means pcl: PCL's seeding" in capsys.readouterr().out
    # adapting a features file is refused at once, with the reason
    assert main(["adapt", "demo", str(out)]) == 2
    assert "needs the images" in capsys.readouterr().err


@pytest.mark.slow
def test_adapt_records_history_and_timeline(capsys, tmp_path):
    snap = tmp_path / "run.h5"
    rc = main(
        ["adapt", "demo", "demo:noise:3", "--steps", "6", "--batch-size", "32",
         "--record-every", "3", "--probe-size", "100", "--out", str(snap)]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "after 6 steps of tsd" in out
    s = read_snapshot(snap)
    assert list(s.history["step"]) == [1, 2, 3, 4, 5, 6]
    assert [f["step"] for f in s.timeline] == [3, 6]
    assert s.attrs["method"] == "tsd"
    # the snapshot's accuracy is the adapted model's, above the source model's
    assert s.metrics["accuracy"] > s.metrics["source_accuracy"]
    assert s.history["accuracy"][-1] == pytest.approx(s.metrics["accuracy"])
    # every step's full-set accuracy estimated on a stratified probe (4 batches of 32 >= 100)
    assert list(s.history["probe_size"]) == [128] * 6
    probe, low, high = (s.history[k] for k in ("probe_accuracy", "probe_low", "probe_high"))
    assert np.isfinite(probe).all() and (low <= probe).all() and (probe <= high).all()
    assert abs(probe[-1] - s.history["accuracy"][-1]) < high[-1] - low[-1]
    assert main(["adapt", "demo", "demo:noise:3", "--steps", "1", "--probe-size", "-1"]) == 2
    assert "--probe-size" in capsys.readouterr().err
    # each step's batch: its sample indices, and the predictions/logits before the update
    batches = s.history["batch_indices"]  # read back as one array per step
    assert [len(b) for b in batches] == [32] * 6
    idx = np.concatenate(batches)
    assert len(set(idx.tolist())) == 6 * 32  # one shuffled pass: no sample twice
    logits = np.concatenate(s.history["online_logits"]).reshape(-1, int(s.metrics["num_logits"]))
    assert logits.shape == (6 * 32, 10)
    np.testing.assert_array_equal(logits.argmax(1), np.concatenate(s.history["online_predictions"]))


def test_assign_to_proxies_balances_the_groups(capsys, tmp_path):
    snap = tmp_path / "sk.h5"
    assert main(["assign", "demo", "demo:contrast:3", "--target", "proxies", "--out", str(snap)]) == 0
    s = read_snapshot(snap)
    q = s.assignment["Q"]
    assert q.shape == (539, 30)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-4)


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`protoview info x | head -1`: the reader leaves early; no 'internal error'."""
    from protoview.core.demo import demo_checkpoint_path

    proc = subprocess.Popen(
        [sys.executable, "-m", "protoview", "info", str(demo_checkpoint_path("cosine"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "internal error" not in err and "Traceback" not in err and "BrokenPipe" not in err
