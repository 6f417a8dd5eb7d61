"""What every benchmark shares: the result row, the run context, timing helpers, synthetic data."""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Row:
    what: str
    value: float | None
    unit: str
    anchor: float | None = None
    anchor_name: str = ""
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    case: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    quick: bool = False
    repeats: int = 3
    n_map: int | None = None
    n_kmeans: int | None = None
    device: str | None = None
    cache: dict = field(default_factory=dict)


def median_time(fn: Callable[[], object], repeats: int, warm: bool = True) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternating(*fns: Callable[[], object], repeats: int, warm: bool = True) -> tuple[float, ...]:
    """Median times of ``fns`` run in turn (a, b, a, b, ...) after one warm-up call of
    each, so that a busy or throttling machine weighs on all of them alike."""
    if warm:
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return tuple(statistics.median(t) for t in times)


def blobs(n: int, d: int, c: int, seed: int = 0, spread: float = 2.0):
    """``c`` Gaussian classes in ``d`` dimensions: features (float32) and labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    means = rng.normal(size=(c, d)).astype(np.float32)
    x = (means[labels] * spread + rng.normal(size=(n, d))).astype(np.float32)
    return x, labels.astype(np.int64)


def _first_use_seconds(code: str) -> float:
    """Wall time of ``code`` in a fresh Python process (numba's cache as configured)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - t0
