"""Child process of the feature-cache kill test in ``test_features.py``.

Usage: ``python _cache_writer.py PATH FIRST_VERSION ROWS COLS``. Prints ``ready`` once its
imports are done, then ``wrote V`` after each complete write of a cache file of version
``V`` to ``PATH`` (as :func:`~protoview.core.features.cached_features` writes it), until
it is killed. :func:`make_result` rebuilds the expected content of a version.
"""

from __future__ import annotations

import functools
import itertools
import sys

import numpy as np

from protoview.core.features import FeatureResult, write_feature_file

CLASSES = 10


@functools.lru_cache(maxsize=2)
def _base(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return (rng.standard_normal((rows, cols), dtype=np.float32),
            rng.standard_normal((rows, CLASSES), dtype=np.float32),
            rng.integers(0, CLASSES, rows))


def make_result(version: int, rows: int, cols: int) -> FeatureResult:
    features, logits, labels = _base(rows, cols)
    return FeatureResult(features + np.float32(version), logits * np.float32(version + 1), labels)


def main(argv: list[str]) -> None:
    path, first, rows, cols = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    _base(rows, cols)
    print("ready", flush=True)
    for version in itertools.count(first):
        write_feature_file(path, make_result(version, rows, cols),
                           attrs={"cache_key": "kill-test", "version": version})
        print(f"wrote {version}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
