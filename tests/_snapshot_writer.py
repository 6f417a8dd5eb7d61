"""Child process of the kill test in ``test_snapshot.py``: writes ever newer snapshots.

Usage: ``python _snapshot_writer.py PATH FIRST_VERSION ROWS COLS``. Prints ``ready`` once
its imports are done, then ``wrote V`` after each complete write of version ``V`` to
``PATH``, until it is killed. :func:`make_snapshot` is also imported by the test, which
rebuilds the expected content of whatever version it finds on disk.
"""

from __future__ import annotations

import functools
import itertools
import sys

import numpy as np

from protoview.core.snapshot import Snapshot, write_snapshot

CLASSES = 10


@functools.lru_cache(maxsize=2)
def _base(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(12345)
    features = rng.standard_normal((rows, cols), dtype=np.float32)
    embedding = rng.standard_normal((rows, 2), dtype=np.float32)
    labels = rng.integers(0, CLASSES, rows)
    return features, embedding, labels


def make_snapshot(version: int, rows: int, cols: int) -> Snapshot:
    """Snapshot whose every part depends on ``version`` (so versions are told apart)."""
    features, embedding, labels = _base(rows, cols)
    steps = version % 4 + 1
    return Snapshot(
        attrs={
            "method": "tsd",
            "step": version,
            "version": version,
            "params": {"version": version},
        },
        samples={
            "features": features + np.float32(version),
            "embedding": embedding * np.float32(version + 1),
            "labels": labels,
            "predictions": (labels + version) % CLASSES,
        },
        centers={
            "vectors": np.full((CLASSES, cols), version, np.float32),
            "embedding": np.full((CLASSES, 2), -version, np.float32),
            "labels": np.arange(CLASSES),
        },
        history={
            "step": np.arange(steps),
            "accuracy": np.linspace(0.0, 1.0, steps),
            "batch_indices": [np.arange(version % 7 + i) for i in range(steps)],
        },
        metrics={"version": version},
    )


def main(argv: list[str]) -> None:
    path, first, rows, cols = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    _base(rows, cols)
    print("ready", flush=True)
    for version in itertools.count(first):
        write_snapshot(path, make_snapshot(version, rows, cols))
        print(f"wrote {version}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
