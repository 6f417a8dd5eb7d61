"""HDF5 snapshots: round trips, every bad input, failed writes, and SIGKILL during writes."""

from __future__ import annotations

import errno
import importlib.util
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protoview.core.snapshot import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Snapshot,
    read_snapshot,
    snapshot_summary,
    write_snapshot,
)
from protoview.errors import SnapshotError

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
GROUPS = ("samples", "centers", "proxies", "prototypes", "assignment")


# ------------------------------------------------------------------------------ helpers
def full_snapshot(
    seed: int = 0, n: int = 40, d: int = 6, c: int = 4, nb_proxy: int = 2, k: int = 5
) -> Snapshot:
    """A snapshot with every group, optional field, timeline and ragged history."""
    rng = np.random.default_rng(seed)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    p = c * nb_proxy
    return Snapshot(
        attrs={
            "checkpoint": "/models/resnet ü.pt",
            "checkpoint_sha256": "0123456789abcdef" * 4,
            "dataset": "demo:noise:3 (40 images)",
            "method": "tsd",
            "params": {"lr": 1e-3, "filter_K": 20, "names": ["a", "b"], "nested": {"x": None}},
            "step": 7,
            "created": "2025-01-02T03:04:05+00:00",
            "protoview_version": "0.1.0",
            "run_name": "talk demo",
            "seed": 3,
            "temperature": 0.1,
        },
        samples={
            "features": f32(n, d),
            "embedding": f32(n, 2),
            "labels": rng.integers(-1, c, n),
            "predictions": rng.integers(0, c, n),
            "assignment": rng.integers(-1, k, n),
            "confidence": rng.random(n).astype(np.float32),
            "logits": f32(n, c),
        },
        centers={"vectors": f32(c, d), "embedding": f32(c, 2), "labels": np.arange(c)},
        proxies={
            "vectors": f32(p, d),
            "embedding": f32(p, 2),
            "class": np.repeat(np.arange(c), nb_proxy),
        },
        prototypes={
            "vectors": f32(k, d),
            "embedding": f32(k, 2),
            "density": rng.random(k).astype(np.float32),
            "assignment": rng.integers(0, c, k),
        },
        assignment={"Q": rng.random((n, k)).astype(np.float32)},
        assignment_attrs={"target": "prototypes", "epsilon": 0.05, "n_iters": 3},
        history={
            "step": np.arange(1, 4),
            "accuracy": np.array([0.5, 0.625, np.nan]),
            "entropy": rng.random(3),
            "n_selected": rng.integers(0, 10, 3),
            "batch_indices": [rng.integers(0, n, m) for m in (5, 0, 7)],
            "batch_confidence": [rng.random(m) for m in (5, 0, 7)],
        },
        metrics={"accuracy": 0.625, "nmi": float("nan"), "n_clusters": 5, "note": "ok"},
        timeline=[
            {
                "step": s,
                "embedding": f32(n, 2),
                "predictions": rng.integers(0, c, n),
                "centers_embedding": f32(c, 2),
                "proxies_embedding": f32(p, 2),
                "prototypes_embedding": f32(k + s, 2),
                "accuracy": 0.5 + s / 10,
            }
            for s in (3, 1)
        ],
    )


def minimal_snapshot(n: int = 3) -> Snapshot:
    return Snapshot(
        samples={
            "embedding": np.zeros((n, 2), np.float32),
            "labels": np.zeros(n, np.int64),
            "predictions": np.zeros(n, np.int64),
        }
    )


def same_array(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    )


def same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_same_arrays(got: dict, expected: dict, label: str) -> None:
    assert sorted(got) == sorted(expected), label
    for key, value in expected.items():
        if isinstance(value, list):
            assert len(got[key]) == len(value), f"{label}/{key}"
            assert all(same_array(g, e) for g, e in zip(got[key], value, strict=True)), (
                f"{label}/{key}"
            )
        else:
            assert same_array(got[key], value), f"{label}/{key}"


def assert_same_snapshot(got: Snapshot, expected: Snapshot) -> None:
    """Everything in ``expected`` (already in the documented dtypes) is in ``got``, exactly."""
    for key, value in expected.attrs.items():
        assert same_value(got.attrs[key], value) if key != "params" else got.attrs[key] == value, (
            key
        )
    for group in GROUPS:
        assert_same_arrays(getattr(got, group), getattr(expected, group), group)
    assert_same_arrays(got.history, expected.history, "history")
    assert sorted(got.metrics) == sorted(expected.metrics)
    assert all(same_value(got.metrics[k], v) for k, v in expected.metrics.items())
    assert sorted(got.assignment_attrs) == sorted(expected.assignment_attrs)
    assert all(same_value(got.assignment_attrs[k], v) for k, v in expected.assignment_attrs.items())
    ordered = sorted(expected.timeline, key=lambda e: e["step"])
    assert [e["step"] for e in got.timeline] == [e["step"] for e in ordered]
    for got_entry, entry in zip(got.timeline, ordered, strict=True):
        scalars = {"step", "accuracy"}
        assert scalars & set(got_entry) == scalars & set(entry)
        assert all(
            same_value(got_entry[k], float(entry[k]) if k == "accuracy" else entry[k])
            for k in scalars & set(entry)
        )
        assert_same_arrays(
            {k: v for k, v in got_entry.items() if k not in scalars},
            {k: v for k, v in entry.items() if k not in scalars},
            f"timeline/{entry['step']}",
        )


def temps_of(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.tmp-*"))


def raises_naming(path, *words: str, call=read_snapshot):
    """Call ``call(path)``; it must raise a SnapshotError naming ``path`` and every word."""
    with pytest.raises(SnapshotError) as info:
        call(path)
    text = str(info.value)
    assert text.startswith(f"{os.fspath(path)}: "), text
    for word in words:
        assert word in text, text
    return text


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.h5"
    write_snapshot(path, full_snapshot())
    return path


# ------------------------------------------------------------------------------ round trips
def test_full_round_trip_is_exact(tmp_path: Path):
    snap = full_snapshot()
    write_snapshot(tmp_path / "s.h5", snap)
    got = read_snapshot(tmp_path / "s.h5")
    assert_same_snapshot(got, snap)
    assert got.attrs["format"] == FORMAT_NAME and got.attrs["format_version"] == FORMAT_VERSION
    assert [e["step"] for e in got.timeline] == [1, 3]
    assert temps_of(tmp_path / "s.h5") == []


def test_read_then_write_again_gives_the_same_content(good_file: Path, tmp_path: Path):
    first = read_snapshot(good_file)
    write_snapshot(tmp_path / "again.h5", first)
    assert_same_snapshot(read_snapshot(tmp_path / "again.h5"), first)


def test_load_features_false_skips_only_features(good_file: Path):
    snap = full_snapshot()
    got = read_snapshot(good_file, load_features=False)
    assert "features" not in got.samples
    del snap.samples["features"]
    assert_same_snapshot(got, snap)


def test_writer_coerces_to_documented_dtypes(tmp_path: Path):
    rng = np.random.default_rng(1)
    embedding64 = rng.standard_normal((4, 2))
    labels32 = np.array([0, 1, -1, 2], np.int32)
    snap = Snapshot(
        samples={
            "embedding": embedding64,
            "labels": labels32,
            "predictions": [0.0, 1.0, 2.0, 2.0],
            "confidence": [True, False, True, True],
        },
        history={
            "step": [0, 1],
            "accuracy": [1, 0],
            "loss": np.array([0.5, 0.25], np.float32),
            "seen": [[1, 2], np.array([3], np.int16)],
        },
        metrics={"flag": True, "n": np.int32(4), "x": np.float32(0.5)},
    )
    write_snapshot(tmp_path / "s.h5", snap)
    got = read_snapshot(tmp_path / "s.h5")
    assert same_array(got.samples["embedding"], embedding64.astype(np.float32))
    assert same_array(got.samples["labels"], labels32.astype(np.int64))
    assert same_array(got.samples["predictions"], np.array([0, 1, 2, 2], np.int64))
    assert same_array(got.samples["confidence"], np.array([1, 0, 1, 1], np.float32))
    assert same_array(got.history["accuracy"], np.array([1.0, 0.0]))
    assert same_array(got.history["loss"], np.array([0.5, 0.25]))
    assert all(
        same_array(g, np.array(e, np.int64))
        for g, e in zip(got.history["seen"], ([1, 2], [3]), strict=True)
    )
    assert got.metrics == {"flag": 1, "n": 4, "x": 0.5} and isinstance(got.metrics["n"], int)


def test_writer_fills_default_attributes(tmp_path: Path):
    before = time.time()
    write_snapshot(tmp_path / "s.h5", minimal_snapshot())
    got = read_snapshot(tmp_path / "s.h5")
    from datetime import datetime

    created = datetime.fromisoformat(got.attrs["created"])
    assert created.utcoffset() is not None and before - 2 <= created.timestamp() <= time.time() + 1
    assert got.attrs["params"] == {} and got.attrs["step"] == 0 and got.attrs["method"] == ""
    assert got.history == {} and got.timeline == [] and got.centers == {} and got.assignment == {}


def test_nan_embedding_and_one_sample_round_trip(tmp_path: Path):
    snap = minimal_snapshot(1)
    snap.samples["embedding"][:] = np.nan  # `protoview export --no-map`
    write_snapshot(tmp_path / "s.h5", snap)
    assert_same_snapshot(read_snapshot(tmp_path / "s.h5"), snap)


def test_empty_ragged_float_column_keeps_its_dtype(tmp_path: Path):
    snap = minimal_snapshot()
    snap.history = {
        "step": [0, 1],
        "accuracy": [0.1, 0.2],
        "conf": [np.zeros(0), np.zeros(0)],
        "idx": [[], []],
    }
    write_snapshot(tmp_path / "s.h5", snap)
    got = read_snapshot(tmp_path / "s.h5").history
    assert [a.dtype for a in got["conf"]] == [np.float64] * 2 and [a.dtype for a in got["idx"]] == [
        np.int64
    ] * 2


# ------------------------------------------------------------------------------ property test
NAMES = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS = st.one_of(INT64, st.floats(), TEXT)


@st.composite
def snapshots(draw) -> Snapshot:
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    f32 = st.floats(width=32)

    def floats(*shape, dtype=np.float32, elements=f32):
        return draw(hnp.arrays(dtype, shape, elements=elements))

    def labels(m):
        return draw(hnp.arrays(np.int64, m, elements=st.integers(-1, 2**40)))

    samples = {"embedding": floats(n, 2), "labels": labels(n), "predictions": labels(n)}
    if draw(st.booleans()):
        samples.update(
            features=floats(n, d), assignment=labels(n), confidence=floats(n), logits=floats(n, 3)
        )
    counts = [draw(st.integers(0, 3)) for _ in range(3)]
    centers = {
        "vectors": floats(counts[0], d),
        "embedding": floats(counts[0], 2),
        "labels": labels(counts[0]),
    }
    proxies = {
        "vectors": floats(counts[1], d),
        "embedding": floats(counts[1], 2),
        "class": labels(counts[1]),
    }
    prototypes = {
        "vectors": floats(counts[2], d),
        "embedding": floats(counts[2], 2),
        "density": floats(counts[2]),
    }
    snap = Snapshot(
        attrs={
            "checkpoint": draw(TEXT),
            "dataset": draw(TEXT),
            "method": draw(TEXT),
            "step": draw(st.integers(0, 2**62)),
            "checkpoint_sha256": draw(st.sampled_from(["", "ab" * 32])),
            "params": draw(
                st.dictionaries(
                    TEXT,
                    st.one_of(
                        st.integers(-(10**9), 10**9),
                        st.floats(allow_nan=False),
                        TEXT,
                        st.lists(st.integers(0, 9), max_size=3),
                    ),
                    max_size=3,
                )
            ),
            **{f"x_{k}": v for k, v in draw(st.dictionaries(NAMES, SCALARS, max_size=3)).items()},
        },
        samples=samples,
        centers=centers if counts[0] else {},
        proxies=proxies if counts[1] else {},
        prototypes=prototypes if counts[2] else {},
        metrics=draw(st.dictionaries(NAMES, SCALARS, max_size=3)),
    )
    if draw(st.booleans()):
        m = counts[2] if counts[2] else draw(st.integers(1, 3))
        snap.assignment = {"Q": floats(n, m)}
        snap.assignment_attrs = {
            "target": "prototypes",
            "epsilon": draw(st.floats(1e-6, 10)),
            "n_iters": draw(st.integers(0, 100)),
        }
    rows = draw(st.integers(0, 3))
    if rows:
        snap.history = {
            "step": draw(hnp.arrays(np.int64, rows)),
            "accuracy": floats(rows, dtype=np.float64, elements=st.floats()),
        }
        for name in draw(st.lists(NAMES, unique=True, max_size=2)):
            dtype = draw(st.sampled_from([np.int64, np.float64]))
            snap.history[f"c_{name}"] = draw(hnp.arrays(dtype, rows))
            snap.history[f"r_{name}"] = [
                draw(hnp.arrays(dtype, draw(st.integers(0, 3)))) for _ in range(rows)
            ]
    for step in draw(st.lists(st.integers(0, 10**7), unique=True, max_size=2)):
        entry = {"step": step, "embedding": floats(n, 2), "accuracy": draw(st.floats())}
        if draw(st.booleans()):
            entry.update(
                predictions=labels(n), prototypes_embedding=floats(draw(st.integers(0, 3)), 2)
            )
        snap.timeline.append(entry)
    return snap


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(snap=snapshots())
def test_property_round_trip(snap: Snapshot):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.h5"
        write_snapshot(path, snap)
        got = read_snapshot(path)
        snapshot_summary(path)
    assert_same_snapshot(got, snap)


# ------------------------------------------------------------------------------ bad files
def test_text_file_named_h5(tmp_path: Path):
    path = tmp_path / "notes.h5"
    path.write_text("not an HDF5 file\n")
    raises_naming(path, "not an HDF5 file")
    raises_naming(path, "not an HDF5 file", call=snapshot_summary)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.999])
def test_truncated_copy(good_file: Path, fraction: float):
    data = good_file.read_bytes()
    cut = good_file.with_name("cut.h5")
    cut.write_bytes(data[: int(len(data) * fraction)])
    raises_naming(cut, "truncated")


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.h5").write_bytes(b"")
    raises_naming(tmp_path / "empty.h5", "not an HDF5 file")


def test_missing_file_and_folder(tmp_path: Path):
    raises_naming(tmp_path / "nope.h5", "does not exist")
    raises_naming(tmp_path, "folder")


def edit(path: Path, change) -> Path:
    with h5py.File(path, "r+") as h5:
        change(h5)
    return path


def replace(h5, name, value):
    del h5[name]
    h5[name] = value


def test_newer_format_version(good_file: Path):
    edit(good_file, lambda h5: h5.attrs.__setitem__("format_version", 2))
    text = raises_naming(good_file)
    assert text == (
        f"{good_file}: was written by a newer protoview (format 2); this version reads format <= 1: update protoview"
    )


@pytest.mark.parametrize("group", [*GROUPS, "history", "metrics"])
def test_missing_group(good_file: Path, group: str):
    edit(good_file, lambda h5: h5.__delitem__(group))
    raises_naming(good_file, f"'{group}' is missing")


N = 40  # samples in full_snapshot()
BAD_FILES = {
    "labels as strings": (
        lambda h5: replace(h5, "samples/labels", np.array([b"cat"] * N)),
        ["samples/labels", "strings", "int64"],
    ),
    "features float64": (
        lambda h5: replace(h5, "samples/features", np.zeros((N, 6))),
        ["samples/features", "float64", "float32"],
    ),
    "mismatched N": (
        lambda h5: replace(h5, "samples/predictions", np.zeros(N + 1, np.int64)),
        ["samples/predictions", f"{N + 1} samples", str(N)],
    ),
    "embedding 3 columns": (
        lambda h5: replace(h5, "samples/embedding", np.zeros((N, 3), np.float32)),
        ["samples/embedding", "(N, 2)"],
    ),
    "no embedding": (
        lambda h5: h5.__delitem__("samples/embedding"),
        ["samples/embedding is missing"],
    ),
    "centers without labels": (
        lambda h5: h5.__delitem__("centers/labels"),
        ["centers/labels is missing"],
    ),
    "feature dims differ": (
        lambda h5: replace(h5, "proxies/vectors", np.zeros((8, 7), np.float32)),
        ["proxies/vectors", "7 feature dimensions"],
    ),
    "Q wrong K": (
        lambda h5: replace(h5, "assignment/Q", np.zeros((N, 6), np.float32)),
        ["assignment/Q", "6 prototypes"],
    ),
    "Q without epsilon": (
        lambda h5: h5["assignment"].attrs.__delitem__("epsilon"),
        ["assignment/Q", "epsilon"],
    ),
    "labels below -1": (
        lambda h5: replace(h5, "centers/labels", np.array([0, 1, -5, 2])),
        ["centers/labels", "below -1"],
    ),
    "no format": (lambda h5: h5.attrs.__delitem__("format"), ["not a protoview snapshot"]),
    "other format": (
        lambda h5: h5.attrs.__setitem__("format", "protoview-features"),
        ["not a protoview snapshot", "protoview-features"],
    ),
    "no method": (lambda h5: h5.attrs.__delitem__("method"), ["'method' is missing"]),
    "params not JSON": (lambda h5: h5.attrs.__setitem__("params", "{oops"), ["attrs/params"]),
    "array attribute": (lambda h5: h5.attrs.__setitem__("step", [1, 2]), ["attrs/step"]),
    "history lengths": (
        lambda h5: replace(h5, "history/entropy", np.zeros(5)),
        ["history/entropy", "5 history rows"],
    ),
    "history strings": (
        lambda h5: replace(h5, "history/entropy", np.array([b"a"] * 3)),
        ["history/entropy", "strings"],
    ),
    "bad offsets": (
        lambda h5: replace(h5, "history/batch_indices_offsets", np.array([0, 9, 2, 12])),
        ["history/batch_indices_offsets"],
    ),
    "stray offsets": (
        lambda h5: h5.__delitem__("history/batch_indices"),
        ["history/batch_indices_offsets"],
    ),
    "no step column": (lambda h5: h5.__delitem__("history/step"), ["history/step is missing"]),
    "timeline wrong N": (
        lambda h5: replace(h5, "timeline/000001/embedding", np.zeros((3, 2), np.float32)),
        ["timeline/000001/embedding", "3 samples"],
    ),
    "timeline no step": (
        lambda h5: h5["timeline/000003"].attrs.__delitem__("step"),
        ["timeline/000003", "step"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_content(good_file: Path, case: str):
    change, words = BAD_FILES[case]
    edit(good_file, change)
    raises_naming(good_file, *words)
    if case != "labels below -1":  # the summary checks the layout, not the values
        raises_naming(good_file, *words, call=snapshot_summary)


def test_unknown_datasets_in_a_file_are_ignored(good_file: Path):
    edit(good_file, lambda h5: h5["samples"].create_dataset("future_field", data=np.zeros(3)))
    assert "future_field" not in read_snapshot(good_file).samples


# ------------------------------------------------------------------------------ bad content to write
def mutate(change):
    def build() -> Snapshot:
        snap = full_snapshot()
        change(snap)
        return snap

    return build


BAD_CONTENT = {
    "no samples": (mutate(lambda s: s.samples.clear()), "samples/embedding is missing"),
    "zero samples": (lambda: minimal_snapshot(0), "no rows"),
    "unknown field": (
        mutate(lambda s: s.samples.__setitem__("embeddings", np.zeros((40, 2)))),
        "samples/embeddings is not part",
    ),
    "embedding (N, 3)": (
        mutate(lambda s: s.samples.__setitem__("embedding", np.zeros((40, 3)))),
        "samples/embedding has shape (40, 3)",
    ),
    "labels fractional": (
        mutate(lambda s: s.samples.__setitem__("labels", np.full(40, 0.5))),
        "samples/labels has dtype float64",
    ),
    "labels NaN": (
        mutate(lambda s: s.samples.__setitem__("labels", np.full(40, np.nan))),
        "samples/labels",
    ),
    "labels strings": (
        mutate(lambda s: s.samples.__setitem__("labels", np.array(["cat"] * 40))),
        "samples/labels has dtype <U3",
    ),
    "labels below -1": (
        mutate(lambda s: s.proxies.__setitem__("class", np.full(8, -2))),
        "proxies/class holds values below -1",
    ),
    "ragged array": (
        mutate(lambda s: s.samples.__setitem__("confidence", [[1.0], [1.0, 2.0]])),
        "samples/confidence is not a rectangular",
    ),
    "N mismatch": (
        mutate(lambda s: s.samples.__setitem__("predictions", np.zeros(39))),
        "samples/predictions has 39 samples",
    ),
    "D mismatch": (
        mutate(lambda s: s.centers.__setitem__("vectors", np.zeros((4, 5)))),
        "centers/vectors has 5 feature dimensions",
    ),
    "centers incomplete": (
        mutate(lambda s: s.centers.__delitem__("labels")),
        "centers/labels is missing",
    ),
    "Q wrong shape": (
        mutate(lambda s: s.assignment.__setitem__("Q", np.zeros((40, 4)))),
        "assignment/Q has 4 prototypes",
    ),
    "Q no attrs": (
        mutate(lambda s: s.assignment_attrs.clear()),
        "assignment/Q needs the attribute 'target'",
    ),
    "epsilon zero": (mutate(lambda s: s.assignment_attrs.__setitem__("epsilon", 0.0)), "epsilon"),
    "history lengths": (
        mutate(lambda s: s.history.__setitem__("entropy", np.zeros(4))),
        "history/entropy has 4 history rows",
    ),
    "history no accuracy": (
        mutate(lambda s: s.history.__delitem__("accuracy")),
        "history/accuracy is missing",
    ),
    "history 2-D": (
        mutate(lambda s: s.history.__setitem__("entropy", np.zeros((3, 2)))),
        "history/entropy has shape (3, 2)",
    ),
    "history strings": (
        mutate(lambda s: s.history.__setitem__("who", np.array(["a", "b", "c"]))),
        "history/who has dtype <U1",
    ),
    "history _offsets name": (
        mutate(lambda s: s.history.__setitem__("x_offsets", np.zeros(3))),
        "history/x_offsets",
    ),
    "ragged 2-D part": (
        mutate(lambda s: s.history.__setitem__("batch_indices", [np.zeros((2, 2))] * 3)),
        "history/batch_indices[0] has shape",
    ),
    "slash in name": (mutate(lambda s: s.metrics.__setitem__("a/b", 1)), "'a/b' is not allowed"),
    "metric list": (
        mutate(lambda s: s.metrics.__setitem__("m", [1, 2])),
        "metrics/m must be an int",
    ),
    "metric huge int": (
        mutate(lambda s: s.metrics.__setitem__("m", 2**70)),
        "does not fit in 64 bits",
    ),
    "NUL in attribute": (
        mutate(lambda s: s.attrs.__setitem__("dataset", "a\x00b")),
        "attrs/dataset contains a NUL",
    ),
    "params not JSON": (
        mutate(lambda s: s.attrs.__setitem__("params", {"f": object()})),
        "attrs/params cannot be written as JSON",
    ),
    "params not dict": (
        mutate(lambda s: s.attrs.__setitem__("params", [1])),
        "attrs/params must be a dict",
    ),
    "negative step": (mutate(lambda s: s.attrs.__setitem__("step", -1)), "attrs/step"),
    "bad sha256": (
        mutate(lambda s: s.attrs.__setitem__("checkpoint_sha256", "xyz")),
        "checkpoint_sha256",
    ),
    "bad created": (mutate(lambda s: s.attrs.__setitem__("created", "yesterday")), "attrs/created"),
    "format version 2": (
        mutate(lambda s: s.attrs.__setitem__("format_version", 2)),
        "attrs/format_version",
    ),
    "method not str": (
        mutate(lambda s: s.attrs.__setitem__("method", 3)),
        "attrs/method must be a str",
    ),
    "timeline duplicate step": (
        mutate(lambda s: s.timeline.append(dict(s.timeline[0]))),
        "step must be a unique",
    ),
    "timeline wrong N": (
        mutate(lambda s: s.timeline[0].__setitem__("embedding", np.zeros((5, 2)))),
        "timeline/000003/embedding has 5 samples",
    ),
    "timeline unknown key": (mutate(lambda s: s.timeline[0].__setitem__("colour", 1)), "'colour'"),
    "timeline no embedding": (
        mutate(lambda s: s.timeline[0].__delitem__("embedding")),
        "timeline[0]",
    ),
    "not a Snapshot": (lambda: {"samples": {}}, "expected a Snapshot"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENT))
def test_bad_content_is_refused_and_old_file_kept(good_file: Path, case: str):
    build, words = BAD_CONTENT[case]
    before = good_file.read_bytes()
    raises_naming(good_file, words, call=lambda p: write_snapshot(p, build()))
    assert good_file.read_bytes() == before and temps_of(good_file) == []


# ------------------------------------------------------------------------------ failed writes
def test_missing_folder(tmp_path: Path):
    path = tmp_path / "missing" / "s.h5"
    with pytest.raises(SnapshotError, match="does not exist"):
        write_snapshot(path, minimal_snapshot())
    assert not path.parent.exists()


def test_read_only_folder_keeps_old_file(good_file: Path):
    before = good_file.read_bytes()
    good_file.parent.chmod(0o555)
    try:
        if os.access(good_file.parent, os.W_OK):
            pytest.skip(
                "permissions are not enforced for this user (root); see the os.replace emulation test"
            )
        with pytest.raises(SnapshotError, match="read-only"):
            write_snapshot(good_file, minimal_snapshot())
    finally:
        good_file.parent.chmod(0o755)
    assert good_file.read_bytes() == before and temps_of(good_file) == []


def test_read_only_file_system_on_replace_keeps_old_file(
    good_file: Path, monkeypatch: pytest.MonkeyPatch
):
    before = good_file.read_bytes()

    def refuse(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", refuse)
    raises_naming(good_file, "read-only", call=lambda p: write_snapshot(p, minimal_snapshot()))
    monkeypatch.undo()
    assert good_file.read_bytes() == before and temps_of(good_file) == []


def test_disk_full_during_write_keeps_old_file(good_file: Path, monkeypatch: pytest.MonkeyPatch):
    before = good_file.read_bytes()
    create = h5py.Group.create_dataset
    calls = []

    def fill_disk(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return create(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fill_disk)
    raises_naming(
        good_file, "disk is full", call=lambda p: write_snapshot(p, full_snapshot(seed=9))
    )
    monkeypatch.undo()
    assert len(calls) == 4 and good_file.read_bytes() == before and temps_of(good_file) == []
    assert_same_snapshot(read_snapshot(good_file), full_snapshot())


FILE_SIZE_LIMIT_SCRIPT = """
import resource, signal, sys
import numpy as np
from protoview.core.snapshot import Snapshot, write_snapshot
from protoview.errors import SnapshotError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
n = 100_000
big = Snapshot(samples={"embedding": np.ones((n, 2)), "labels": np.zeros(n), "predictions": np.zeros(n),
                        "features": np.ones((n, 8))})
try:
    write_snapshot(sys.argv[1], big)
except SnapshotError as exc:
    print(exc)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE emulation is Linux-only"
)
def test_real_failed_write_keeps_old_file(good_file: Path):
    """The HDF5 library itself fails mid-write (file size limit): old file intact, no temp left."""
    before = good_file.read_bytes()
    out = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT_SCRIPT, str(good_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{good_file}: cannot write"), out.stdout
    assert "File too large" in out.stdout
    assert good_file.read_bytes() == before and temps_of(good_file) == []


# ------------------------------------------------------------------------------ summary, docs, imports
def test_summary_names_counts_and_origin(tmp_path: Path):
    snap = full_snapshot(n=23, c=3, nb_proxy=3, k=7)
    path = tmp_path / "s.h5"
    write_snapshot(path, snap)
    text = " ".join(snapshot_summary(path).split())
    for words in (
        "23 samples (6-d features)",
        "3 class centers",
        "9 proxies",
        "7 prototypes",
        "method tsd",
        "at step 7",
        "/models/resnet ü.pt",
        "Sinkhorn plan 23 x 7 to prototypes",
        "epsilon 0.05",
        "History of 3 steps",
        "Timeline of 2 recorded steps",
        "n_clusters=5",
        "protoview 0.1.0",
    ):
        assert words in text, (words, text)
    assert text.startswith(f"{path}: ")


def test_summary_of_minimal_snapshot(tmp_path: Path):
    write_snapshot(tmp_path / "m.h5", minimal_snapshot(2))
    text = snapshot_summary(tmp_path / "m.h5")
    assert "2 samples (no features), 0 class centers, 0 proxies, 0 prototypes" in text
    assert "Sinkhorn" not in text and "History" not in text and "Timeline" not in text


def test_documented_plain_h5py_example_runs(
    good_file: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    doc = (REPO / "docs" / "snapshot-format.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(good_file.parent)
    good_file.rename("snapshot.h5")
    scope: dict = {}
    exec(compile(code, "snapshot-format.md", "exec"), scope)  # noqa: S102 - our own documentation
    snap = full_snapshot()
    assert same_array(scope["embedding"], snap.samples["embedding"])
    assert same_array(scope["labels"], snap.samples["labels"])
    assert scope["params"] == snap.attrs["params"]


def test_documentation_lists_every_field():
    doc = (REPO / "docs" / "snapshot-format.md").read_text(encoding="utf-8")
    from protoview.core.snapshot._layout import _SCHEMA, _TIMELINE_FIELDS

    for group, fields in _SCHEMA.items():
        for name in fields:
            assert f"`{group}/{name}`" in doc, f"{group}/{name}"
    for name in _TIMELINE_FIELDS:
        assert f"`{name}`" in doc, name


def test_reading_needs_no_torch(good_file: Path):
    code = (
        "import sys; from protoview.core.snapshot import read_snapshot;"
        f"read_snapshot({str(good_file)!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ kill test
def load_writer():
    spec = importlib.util.spec_from_file_location("_snapshot_writer", TESTS / "_snapshot_writer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KILLS, ROWS, COLS = 24, 200_000, 64


@pytest.mark.slow
def test_sigkill_during_writes_never_leaves_a_broken_file(tmp_path: Path):
    """SIGKILL a process that keeps rewriting one large snapshot; the path always holds a whole version."""
    writer = load_writer()
    path = tmp_path / "live.h5"
    write_snapshot(path, writer.make_snapshot(0, ROWS, COLS))
    rng = random.Random(20240601)
    on_disk, mid_write, writes = 0, 0, 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [
                sys.executable,
                str(TESTS / "_snapshot_writer.py"),
                str(path),
                str(on_disk + 1),
                str(ROWS),
                str(COLS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        done = [
            int(line.split()[1])
            for line in child.stdout.read().split("\n")
            if line.startswith("wrote")
        ]
        child.stdout.close()
        last_complete = done[-1] if done else on_disk
        mid_write += bool(temps_of(path))
        writes += len(done)
        got = read_snapshot(path)
        version = got.attrs["version"]
        assert version in (last_complete, last_complete + 1), (version, last_complete)
        assert_same_snapshot(got, writer.make_snapshot(version, ROWS, COLS))
        on_disk = version
        assert len(temps_of(path)) <= 1
    print(f"{KILLS} kills, {mid_write} during a write (temp file left), {writes} complete writes")
    assert mid_write >= 1, "no kill landed during a write; the test proved nothing"
    write_snapshot(path, writer.make_snapshot(on_disk + 1, 10, 2))
    assert temps_of(path) == []  # the next write removes the stray temp file
