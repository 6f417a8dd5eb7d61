"""``protoview extract`` under torchrun: shards per rank, one virtual-dataset file, reuse."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from protoview.core.distributed import batch_aligned_blocks, shard_path, torchrun_env
from protoview.core.features import read_feature_file
from protoview.errors import ProtoviewError, SnapshotError

_TORCHRUN_VARS = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    env["QT_QPA_PLATFORM"] = "offscreen"
    # torchrun gives each rank OMP_NUM_THREADS=1; the single-process reference runs alike so
    # that the comparison below can demand identical bits on any machine
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_torchrun_env_is_none_for_a_single_process():
    assert torchrun_env({}) is None
    assert torchrun_env({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is None
    env = torchrun_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank) == (3, 4, 1)
    with pytest.raises(ProtoviewError, match="RANK"):
        torchrun_env({"WORLD_SIZE": "2"})


@pytest.mark.parametrize(
    "total,world,batch", [(539, 2, 100), (539, 3, 256), (10, 4, 4), (7, 2, 1000)]
)
def test_blocks_cover_the_dataset_in_order_on_batch_boundaries(total, world, batch):
    blocks = batch_aligned_blocks(total, world, batch)
    assert len(blocks) == world
    assert blocks[0][0] == 0 and blocks[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    assert all(start % batch == 0 or start == total for start, _ in blocks)
    assert np.array_equal(np.concatenate([np.arange(s, e) for s, e in blocks]), np.arange(total))


@pytest.mark.slow
def test_torchrun_extract_equals_single_process_and_reuses_shards(tmp_path):
    env = _env()
    common = ["extract", "demo", "demo", "--no-cache", "--device", "cpu", "--batch-size", "100"]
    single = tmp_path / "single.h5"
    done = subprocess.run(
        [sys.executable, "-m", "protoview", *common, "--out", str(single)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run" / "OUT.h5"
    out.parent.mkdir()
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        "-m", "protoview", *common, "--out", str(out),
    ]  # fmt: skip
    first = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    shards = [shard_path(out, rank, 2) for rank in range(2)]
    assert all(p.is_file() for p in shards)
    assert sorted(p.name for p in shards[0].parent.iterdir()) == [
        "rank-00000-of-00002.h5",
        "rank-00001-of-00002.h5",
    ]

    reference, merged = read_feature_file(single), read_feature_file(out)
    for name in ("features", "logits", "labels", "predictions"):
        assert np.array_equal(getattr(reference, name), getattr(merged, name)), name
    with h5py.File(out) as h5, h5py.File(single) as ref:
        assert set(h5) == set(ref)
        assert all(h5[name].is_virtual for name in h5)
        assert all(h5[name].dtype == ref[name].dtype for name in ref)
        assert set(ref.attrs) <= set(h5.attrs)
        for key in (
            "format",
            "version",
            "checkpoint_sha256",
            "dataset_identity",
            "transform",
            "complete",
        ):
            assert h5.attrs[key] == ref.attrs[key], key
        sources = {s.file_name for s in h5["features"].virtual_sources()}
        assert sources == {f"OUT.h5.shards/{p.name}" for p in shards}  # relative: movable
    with h5py.File(shards[1]) as h5:
        assert (h5.attrs["shard_start"], h5.attrs["shard_stop"]) == (
            300,
            539,
        )  # 3 + 3 batches of 100
        assert h5.attrs["complete"]

    mtimes = [p.stat().st_mtime_ns for p in shards]
    again = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("reused shard") == 2, again.stdout
    assert [p.stat().st_mtime_ns for p in shards] == mtimes
    assert np.array_equal(read_feature_file(out).features, reference.features)

    # the folder moves as a whole; without its shards the file is refused, not read as zeros
    moved = tmp_path / "moved"
    shutil.move(str(out.parent), str(moved))
    assert np.array_equal(read_feature_file(moved / "OUT.h5").logits, reference.logits)
    shutil.rmtree(moved / "OUT.h5.shards")
    with pytest.raises(SnapshotError, match="missing"):
        read_feature_file(moved / "OUT.h5")
