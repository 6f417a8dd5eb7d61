"""Generate a corpus of broken and hostile inputs for protoview's command line.

Every case is generated (nothing binary is committed), mostly by damaging a good file:
the built-in demo checkpoint, the demo digits, a snapshot from ``tests/_snapshot_writer``.
Each :class:`Case` says which file is at fault, the command that reads it and what
protoview must answer: one error line naming the file and the problem, or (for inputs
that are odd but valid) success.

Run as a script to generate the files and list the cases::

    python tests/corpus/make_corpus.py OUT_DIR

or import it: ``build(out_dir)`` returns the cases, ``case_names()`` their names without
building anything.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import os
import pickle
import pickletools
import shlex
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` (and `protoview`) importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import h5py
import numpy as np
import torch
from PIL import Image

from tests import _ckpt_fixtures as fx
from tests._snapshot_writer import make_snapshot

CHECKPOINT, DATASET, SNAPSHOT, OPTION = "checkpoint", "dataset", "snapshot", "option"


@dataclass(frozen=True)
class Case:
    """One input of the corpus and what protoview must do with it.

    name: unique, used as the test id; kind: checkpoint / dataset / snapshot;
    paths: the generated input(s), the one at fault first; argv: protoview's arguments;
    expect: substrings of the error line (the faulty file's base name first), or, when
    ``ok``, of the standard output; warns: (ok cases) substrings of the warnings on stderr;
    marker: a file the input's hidden code would create (it must never exist);
    isolated: run it as its own ``python -m protoview`` process; out: the file the command
    writes on success (it must not exist after a failure); what: one line for humans.
    """

    name: str
    kind: str
    paths: tuple[str, ...]
    argv: tuple[str, ...]
    expect: tuple[str, ...]
    ok: bool = False
    warns: tuple[str, ...] = ()
    marker: str | None = None
    isolated: bool = False
    out: str | None = None
    what: str = ""

    @property
    def command(self) -> str:
        return shlex.join(["protoview", *self.argv])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class Skip(Exception):
    """Raised by a builder when this machine cannot make the case (e.g. the file system)."""


Builder = Callable[[Path], dict[str, Any]]
_BUILDERS: dict[str, tuple[str, Builder]] = {}


def _case(kind: str) -> Callable[[Builder], Builder]:
    """Register a builder; the case is named after the function (without its ``_``)."""

    def register(fn: Builder) -> Builder:
        _BUILDERS[fn.__name__.lstrip("_")] = (kind, fn)
        return fn

    return register


def case_names() -> list[str]:
    """Every case's name, in build order (nothing is generated)."""
    return list(_BUILDERS)


def build(out_dir: str | os.PathLike[str], names: list[str] | None = None) -> list[Case]:
    """Generate every case (or those named) into ``out_dir``, one sub-folder per case.

    Cases this machine cannot make (see :class:`Skip`) are left out.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, (kind, builder) in _BUILDERS.items():
        if names is not None and name not in names:
            continue
        folder = root / name
        folder.mkdir(exist_ok=True)
        try:
            spec = builder(folder)
        except Skip:
            continue
        paths = tuple(os.fspath(p) for p in spec.pop("paths"))
        for key in ("marker", "out"):
            if spec.get(key) is not None:
                spec[key] = os.fspath(spec[key])
        cases.append(Case(name=name, kind=kind, paths=paths, **spec))
    return cases


# ---------------------------------------------------------------------------- case helpers
def _fail(paths: list[Path] | Path, argv: list[Any], *expect: str, what: str, **extra: Any) -> dict[str, Any]:
    paths = [paths] if isinstance(paths, Path) else paths
    words = expect if expect and expect[0] == paths[0].name else (paths[0].name, *expect)
    return {"paths": paths, "argv": tuple(os.fspath(a) for a in argv), "expect": words, "what": what, **extra}


def _ok(paths: list[Path] | Path, argv: list[Any], *expect: str, what: str, **extra: Any) -> dict[str, Any]:
    paths = [paths] if isinstance(paths, Path) else paths
    return {"paths": paths, "argv": tuple(os.fspath(a) for a in argv), "expect": expect, "ok": True,
            "what": what, **extra}


def _info(path: Path) -> list[Any]:
    return ["info", path]


def _extract(data: Path | str, folder: Path, cache: bool = False) -> tuple[list[Any], Path]:
    """``protoview extract demo DATA --out OUT``; the cache (PROTOVIEW_CACHE_DIR) only when asked."""
    out = folder / "features-out.h5"
    return ["extract", "demo", data, "--out", out, *([] if cache else ["--no-cache"])], out


class Payload:
    """Unpickling this calls ``func(*args)``: stands in for an attacker's code."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _touch_command(marker: Path) -> str:
    return f"touch {shlex.quote(os.fspath(marker))}"


# ---------------------------------------------------------------------------- checkpoint bases
@functools.lru_cache(maxsize=1)
def _demo_path() -> Path:
    from protoview.core.demo import demo_checkpoint_path

    return demo_checkpoint_path("linear")


@functools.lru_cache(maxsize=1)
def _demo_payload_cached() -> dict[str, Any]:
    return torch.load(_demo_path(), map_location="cpu", weights_only=True)


def _demo_payload() -> dict[str, Any]:
    """A fresh copy of the demo checkpoint's content: {'protoview': meta, 'state_dict': ...}."""
    payload = _demo_payload_cached()
    return {"protoview": copy.deepcopy(payload["protoview"]),
            "state_dict": {k: v.clone() for k, v in payload["state_dict"].items()}}


def _rewrite_zip(src: Path, dst: Path, edits: dict[str, Callable[[bytes], bytes] | None]) -> Path:
    """Copy a zip archive, changing (or, for None, dropping) the entries whose name ends
    with a key of ``edits``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            edit = next((fn for suffix, fn in edits.items() if info.filename.endswith(suffix)), False)
            if edit is None:
                continue
            zout.writestr(info.filename, edit(data) if edit else data)
    return dst


def _patch_int_after_persid(data: bytes, skip: int, value: int) -> bytes:
    """Replace an integer of the first tensor in a ``data.pkl``: ``skip=-1`` is the storage's
    element count (just before BINPERSID), ``skip=1`` the tensor's first dimension."""
    ops = list(pickletools.genops(data))
    at = next(i for i, (op, _, _) in enumerate(ops) if op.name == "BINPERSID")
    ints = [o for o in (ops[:at][::-1] if skip < 0 else ops[at + 1:]) if o[0].name in ("BININT1", "BININT2", "BININT")]
    op, _, pos = ints[abs(skip) - 1]
    width = {"BININT1": 2, "BININT2": 3, "BININT": 5}[op.name]
    return data[:pos] + b"J" + struct.pack("<i", value) + data[pos + width:]


def _safetensors_parts(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def _write_safetensors_raw(path: Path, header: bytes, data: bytes, claimed: int | None = None) -> Path:
    path.write_bytes((len(header) if claimed is None else claimed).to_bytes(8, "little") + header + data)
    return path


def _good_safetensors(folder: Path) -> Path:
    payload = _demo_payload()
    return fx.write_safetensors(folder / "good.safetensors", payload["state_dict"], payload["protoview"])


# ---------------------------------------------------------------------------- checkpoints
@_case(CHECKPOINT)
def _ckpt_random_bytes(d: Path) -> dict[str, Any]:
    path = d / "random.pt"
    rng = np.random.default_rng(0)
    path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes().replace(b"\x80", b"\x81").replace(b"PK", b"pk"))
    return _fail(path, _info(path), "not a checkpoint", what="4 KiB of random bytes")


@_case(CHECKPOINT)
def _ckpt_pycil_state_dict_without_arch(d: Path) -> dict[str, Any]:
    from tests.oracles import pycil_cifar_resnet as pycil

    torch.manual_seed(0)
    state = {f"convnet.{k}": v for k, v in pycil.resnet32().state_dict().items()}
    state |= {f"fc.{k}": v for k, v in pycil.SimpleLinear(64, 10).state_dict().items()}
    path = fx.save(state, d / "pycil-state.pt")
    return _fail(path, _info(path), "its keys are PyCIL's CIFAR ResNet-32",
                 "pass --arch pycil:resnet32",
                 what="a PyCIL resnet32 state_dict without --arch: the arch named from its keys")


@_case(CHECKPOINT)
def _ckpt_zero_bytes(d: Path) -> dict[str, Any]:
    path = d / "zero.pt"
    path.touch()
    return _fail(path, _info(path), "empty (0 bytes)", what="an empty file")


@_case(CHECKPOINT)
def _ckpt_truncated_zip(d: Path) -> dict[str, Any]:
    path = d / "cut.pt"
    path.write_bytes(_demo_path().read_bytes())
    fx.truncate(path, 0.5)
    return _fail(path, _info(path), "truncated", what="the demo checkpoint cut in half")


@_case(CHECKPOINT)
def _ckpt_truncated_legacy(d: Path) -> dict[str, Any]:
    path = fx.truncate(fx.save(_demo_payload(), d / "cut-legacy.pt", legacy=True), 0.5)
    return _fail(path, _info(path), "truncated", what="a legacy (pre-zip) torch.save stream cut in half")


@_case(CHECKPOINT)
def _ckpt_pickle_open_marker(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    path = fx.write_malicious(d / "evil.pt", marker)
    return _fail(path, _info(path), "pickled Python code", "--trust-checkpoint", marker=marker, isolated=True,
                 what="a torch.save zip whose pickle calls builtins.open(MARKER, 'w')")


@_case(CHECKPOINT)
def _ckpt_pickle_open_marker_legacy(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    path = fx.write_malicious(d / "evil-legacy.pt", marker, legacy=True)
    return _fail(path, _info(path), "pickled Python code", "--trust-checkpoint", marker=marker, isolated=True,
                 what="the same payload in a legacy torch.save stream")


@_case(CHECKPOINT)
def _ckpt_pickle_os_system(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    payload = _demo_payload()
    payload["epoch"] = Payload(os.system, _touch_command(marker))
    path = fx.save(payload, d / "system.pt")
    return _fail(path, _info(path), "pickled Python code", "system", marker=marker, isolated=True,
                 what="a real checkpoint plus an entry whose unpickling runs os.system('touch MARKER')")


@_case(CHECKPOINT)
def _ckpt_pickle_shell_legacy(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    payload = _demo_payload()
    payload["state_dict"]["classifier.bias"] = Payload(subprocess.Popen, ["sh", "-c", _touch_command(marker)])
    path = fx.save(payload, d / "shell.pth", legacy=True)
    return _fail(path, _info(path), "pickled Python code", "Popen", marker=marker, isolated=True,
                 what="a legacy stream whose classifier.bias runs subprocess.Popen(['sh', '-c', ...])")


@_case(CHECKPOINT)
def _ckpt_pickle_eval(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    payload = {"state_dict": _demo_payload()["state_dict"],
               "hook": Payload(eval, f"open({os.fspath(marker)!r}, 'w').close()")}
    path = fx.save(payload, d / "eval.pt")
    return _fail(path, _info(path), "pickled Python code", "eval", marker=marker, isolated=True,
                 what="a state_dict next to builtins.eval('open(MARKER)')")


@_case(CHECKPOINT)
def _ckpt_plain_pickle_system(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    path = d / "plain.pkl"
    path.write_bytes(pickle.dumps({"fc.weight": [[0.0]], "x": Payload(os.system, _touch_command(marker))}, protocol=4))
    return _fail(path, _info(path), "plain Python pickle", "--trust-checkpoint", marker=marker, isolated=True,
                 what="a plain pickle (not torch.save) running os.system")


@_case(CHECKPOINT)
def _ckpt_arch_file_named_by_checkpoint(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    evil = d / "evil_arch.py"
    evil.write_text(f"open({os.fspath(marker)!r}, 'w').close()\n\ndef build(**kw):\n    raise RuntimeError('not a model')\n")
    payload = _demo_payload()
    payload["protoview"]["arch"] = f"{evil}:build"
    path = fx.save(payload, d / "names-a-file.pt")
    return _fail([path, evil], _info(path), "never runs code named by a checkpoint", marker=marker, isolated=True,
                 what="a protoview checkpoint whose stored arch is a Python file that creates MARKER")


@_case(CHECKPOINT)
def _ckpt_nan_weights(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["state_dict"]["classifier.weight"][3, 5] = float("nan")
    path = fx.save(payload, d / "nan.pt")
    return _fail(path, _info(path), "NaN or Inf", "classifier.weight", what="a NaN in the head's weights")


@_case(CHECKPOINT)
def _ckpt_inf_weights(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["state_dict"]["featurizer.1.running_var"][0] = float("inf")
    path = fx.save(payload, d / "inf.pt")
    return _fail(path, _info(path), "NaN or Inf", "featurizer.1.running_var", what="an Inf in a BatchNorm buffer")


@_case(CHECKPOINT)
def _ckpt_wrong_shapes(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["state_dict"]["classifier.weight"] = torch.zeros(10, 32)
    path = fx.save(payload, d / "shapes.pt")
    return _fail(path, _info(path), "64-d features but the head expects 32-d",
                 what="the head's weight has 32 columns, the featurizer gives 64")


@_case(CHECKPOINT)
def _ckpt_missing_keys(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    del payload["state_dict"]["featurizer.3.weight"]
    path = fx.save(payload, d / "missing.pt")
    return _fail(path, _info(path), "missing keys", "featurizer.3.weight", what="a layer's weight is missing")


@_case(CHECKPOINT)
def _ckpt_zero_classes(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["state_dict"]["classifier.weight"] = torch.zeros(0, 64)
    payload["state_dict"]["classifier.bias"] = torch.zeros(0)
    path = fx.save(payload, d / "zero-classes.pt")
    return _fail(path, _info(path), "0 classes", what="a head with 0 classes (its weight has 0 rows)")


@_case(CHECKPOINT)
def _ckpt_zero_classes_metadata(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["state_dict"]["classifier.weight"] = torch.zeros(0, 64)
    payload["state_dict"]["classifier.bias"] = torch.zeros(0)
    payload["protoview"]["arch_kwargs"]["num_classes"] = 0
    path = fx.save(payload, d / "zero-classes-meta.pt")
    return _fail(path, _info(path), "num_classes", ">= 1", what="0 classes in the weights and in the metadata")


@_case(CHECKPOINT)
def _ckpt_huge_arch_kwargs(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["protoview"]["arch_kwargs"]["num_classes"] = 2**40
    path = fx.save(payload, d / "huge-head.pt")
    return _fail(path, _info(path), "can't allocate memory",
                 what="metadata asks for a head of 2**40 classes (a 256 TiB model)")


@_case(CHECKPOINT)
def _ckpt_huge_storage(d: Path) -> dict[str, Any]:
    path = _rewrite_zip(_demo_path(), d / "huge-storage.pt",
                        {"data.pkl": lambda b: _patch_int_after_persid(b, -1, 2**29)})
    return _fail(path, _info(path), "damaged", what="a zip checkpoint whose first storage claims 2**29 floats (2 GiB)")


@_case(CHECKPOINT)
def _ckpt_huge_view(d: Path) -> dict[str, Any]:
    path = _rewrite_zip(_demo_path(), d / "huge-view.pt",
                        {"data.pkl": lambda b: _patch_int_after_persid(b, 1, 2**29)})
    return _fail(path, _info(path), "damaged", what="a tensor whose shape claims 2 GiB over a 1 KiB storage")


@_case(CHECKPOINT)
def _ckpt_missing_record(d: Path) -> dict[str, Any]:
    path = _rewrite_zip(_demo_path(), d / "no-data.pt", {"/data/0": None})
    return _fail(path, _info(path), "damaged", what="a zip checkpoint without the record of its first tensor")


@_case(CHECKPOINT)
def _ckpt_zip_not_torch(d: Path) -> dict[str, Any]:
    path = d / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return _fail(path, _info(path), "not a PyTorch checkpoint", what="a zip archive of a text file")


@_case(CHECKPOINT)
def _ckpt_safetensors_header_too_long(d: Path) -> dict[str, Any]:
    good = _good_safetensors(d)
    header, data = _safetensors_parts(good)
    text = json.dumps(header).encode()
    path = _write_safetensors_raw(d / "long-header.safetensors", text, data, claimed=good.stat().st_size + 1000)
    good.unlink()
    return _fail(path, _info(path), "safetensors", what="the 8-byte header length is larger than the file")


@_case(CHECKPOINT)
def _ckpt_safetensors_header_huge(d: Path) -> dict[str, Any]:
    good = _good_safetensors(d)
    header, data = _safetensors_parts(good)
    path = _write_safetensors_raw(d / "huge-header.safetensors", json.dumps(header).encode(), data, claimed=2**40)
    good.unlink()
    return _fail(path, _info(path), "safetensors", what="the header length claims 1 TiB")


@_case(CHECKPOINT)
def _ckpt_safetensors_broken_json(d: Path) -> dict[str, Any]:
    good = _good_safetensors(d)
    header, data = _safetensors_parts(good)
    text = json.dumps(header).encode()
    broken = (b'{"broken": [1, 2' + b" " * len(text))[: len(text)]
    path = _write_safetensors_raw(d / "broken-json.safetensors", broken, data)
    good.unlink()
    return _fail(path, _info(path), "safetensors", what="the header is not valid JSON")


@_case(CHECKPOINT)
def _ckpt_safetensors_bad_offsets(d: Path) -> dict[str, Any]:
    good = _good_safetensors(d)
    header, data = _safetensors_parts(good)
    header["classifier.weight"]["data_offsets"] = [0, 2**40]
    path = _write_safetensors_raw(d / "bad-offsets.safetensors", json.dumps(header).encode(), data)
    good.unlink()
    return _fail(path, _info(path), "safetensors", what="a tensor's data offsets point 1 TiB past the end")


@_case(CHECKPOINT)
def _ckpt_safetensors_without_arch(d: Path) -> dict[str, Any]:
    path = fx.write_safetensors(d / "weights.safetensors", _demo_payload()["state_dict"])
    return _fail(path, _info(path), "pass --arch", what="bare weights: nothing says which architecture")


@_case(CHECKPOINT)
def _ckpt_torchscript_version_99(d: Path) -> dict[str, Any]:
    good = fx.write_torchscript(d / "good-ts.pt", fx.FeaturizerClassifierNet())
    path = _rewrite_zip(good, d / "ts-v99.pt", {"/version": lambda b: b"99\n"})
    good.unlink()
    return _fail(path, _info(path), "format version 99", "upgrade torch",
                 what="a TorchScript archive in a (future) file format version 99")


@_case(CHECKPOINT)
def _ckpt_zip_version_99(d: Path) -> dict[str, Any]:
    path = _rewrite_zip(_demo_path(), d / "zip-v99.pt", {"/version": lambda b: b"99\n"})
    return _fail(path, _info(path), "format version 99", "upgrade torch",
                 what="the demo checkpoint with its zip's version record set to 99")


@_case(CHECKPOINT)
def _ckpt_torchscript_version_garbage(d: Path) -> dict[str, Any]:
    good = fx.write_torchscript(d / "good-ts.pt", fx.FeaturizerClassifierNet())
    path = _rewrite_zip(good, d / "ts-vbad.pt", {"/version": lambda b: b"banana\n"})
    good.unlink()
    return _fail(path, _info(path), "version", what="a TorchScript archive whose version record is not a number")


@_case(CHECKPOINT)
def _ckpt_torchscript_truncated(d: Path) -> dict[str, Any]:
    path = fx.truncate(fx.write_torchscript(d / "ts-cut.pt", fx.FeaturizerClassifierNet()), 0.7)
    return _fail(path, _info(path), "truncated", what="a TorchScript archive cut at 70%")


@_case(CHECKPOINT)
def _ckpt_text_file(d: Path) -> dict[str, Any]:
    path = d / "notes.pt"
    path.write_text("epoch 3: loss 0.21, accuracy 93.1%\n")
    return _fail(path, _info(path), "text file", what="a training log named .pt")


@_case(CHECKPOINT)
def _ckpt_hdf5_file(d: Path) -> dict[str, Any]:
    path = d / "snapshot.pt"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.zeros(3)
    return _fail(path, _info(path), "not a checkpoint", what="an HDF5 file named .pt")


@_case(CHECKPOINT)
def _ckpt_empty_directory(d: Path) -> dict[str, Any]:
    path = d / "model_dir"
    path.mkdir()
    return _fail(path, _info(path), "directory", what="an empty directory passed as the checkpoint")


@_case(CHECKPOINT)
def _ckpt_dangling_symlink(d: Path) -> dict[str, Any]:
    path = d / "link.pt"
    try:
        os.symlink(d / "gone.pt", path)
    except OSError as exc:
        raise Skip(str(exc)) from None
    return _fail(path, _info(path), "not found", what="a symlink to a file that does not exist")


@_case(CHECKPOINT)
def _ckpt_fifo(d: Path) -> dict[str, Any]:
    path = d / "pipe.pt"
    if not hasattr(os, "mkfifo"):
        raise Skip("no FIFOs here")
    os.mkfifo(path)
    return _fail(path, _info(path), "not a regular file", what="a named pipe (reading it would block forever)")


@_case(CHECKPOINT)
def _ckpt_newer_version(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["protoview"]["version"] = 99
    path = fx.save(payload, d / "future.pt")
    return _fail(path, _info(path), "version 99 is newer", what="protoview checkpoint format version 99")


@_case(CHECKPOINT)
def _ckpt_unknown_arch(d: Path) -> dict[str, Any]:
    payload = _demo_payload()
    payload["protoview"]["arch"] = "resnet81"
    path = fx.save(payload, d / "unknown-arch.pt")
    return _fail(path, _info(path), "unknown architecture 'resnet81'", what="a stored architecture nobody knows")


@_case(CHECKPOINT)
def _ckpt_list_payload(d: Path) -> dict[str, Any]:
    path = fx.save([torch.ones(3)], d / "list.pt")
    return _fail(path, _info(path), "holds a list", what="torch.save of a list")


@_case(CHECKPOINT)
def _ckpt_no_state_dict(d: Path) -> dict[str, Any]:
    path = fx.save({"epoch": 3, "lr": 0.1}, d / "no-weights.pt")
    return _fail(path, _info(path), "no state_dict", what="a training-state dict without weights")


@_case(CHECKPOINT)
def _ckpt_plain_state_dict(d: Path) -> dict[str, Any]:
    path = fx.save(_demo_payload()["state_dict"], d / "bare.pt")
    return _fail(path, _info(path), "pass --arch", what="a bare state_dict (no architecture stored)")


_TINY_ENCODER_ARCH = """from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)))


def build(num_classes=10):
    return Net(num_classes)
"""


def _tiny_encoder(d: Path, extra: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, Any], str]:
    """(a DDP state_dict of a tiny backbone without its fc, plus ``extra``; ``--arch`` for it)."""
    arch = fx.write_arch_file(d / "tiny_encoder.py", _TINY_ENCODER_ARCH)
    gen = torch.Generator().manual_seed(0)
    state = {"conv.weight": torch.randn(8, 1, 3, 3, generator=gen), "conv.bias": torch.zeros(8),
             **(extra or {})}
    return {f"module.{k}": v for k, v in state.items()}, f"{arch}:build"


def _swav_head(prototype_width: int) -> dict[str, torch.Tensor]:
    """SwAV's projection_head (Linear-BN-ReLU-Linear, 8 -> 16 -> 4) and its prototypes."""
    return {"projection_head.0.weight": torch.randn(16, 8), "projection_head.0.bias": torch.zeros(16),
            "projection_head.1.weight": torch.ones(16), "projection_head.1.bias": torch.zeros(16),
            "projection_head.1.running_mean": torch.zeros(16), "projection_head.1.running_var": torch.ones(16),
            "projection_head.1.num_batches_tracked": torch.tensor(0),
            "projection_head.3.weight": torch.randn(4, 16), "projection_head.3.bias": torch.zeros(4),
            "prototypes.weight": torch.randn(6, prototype_width)}


@_case(CHECKPOINT)
def _ckpt_swav_prototypes_misfit(d: Path) -> dict[str, Any]:
    state, arch = _tiny_encoder(d, _swav_head(prototype_width=5))
    path = fx.save({"epoch": 2, "state_dict": state, "optimizer": {}}, d / "swav-misfit.pth.tar")
    return _fail(path, ["info", path, "--arch", arch], "(6 x 5) do not fit its projection head",
                 "4-d", what="a SwAV checkpoint whose 5-wide prototypes do not fit its 4-d projection")


@_case(CHECKPOINT)
def _ckpt_dino_without_networks(d: Path) -> dict[str, Any]:
    import argparse

    payload = {"optimizer": {}, "epoch": 5, "args": argparse.Namespace(arch="vit_small", patch_size=16),
               "dino_loss": {"center": torch.zeros(1, 8)}}
    path = fx.save(payload, d / "dino-checkpoint.pth")
    return _fail(path, _info(path), "without 'teacher' or 'student'",
                 what="a DINO checkpoint saved without its teacher and student")


@_case(OPTION)
def _opt_features_projection_on_a_plain_backbone(d: Path) -> dict[str, Any]:
    state, arch = _tiny_encoder(d)
    path = fx.save(state, d / "encoder_only.pt")
    return _option_fail(["info", path, "--arch", arch, "--features", "projection"], "--features",
                        "encoder_only.pt has no projection head", "--features backbone",
                        what="--features projection for a backbone without a projection head")


@_case(OPTION)
def _opt_probe_fraction_one(d: Path) -> dict[str, Any]:
    return _option_fail(["probe", "demo", "demo:noise:1", "--fraction", "1", "--no-cache"], "--fraction",
                        "between 0 and 1", what="a probe trained on every sample (nothing held out)")


@_case(CHECKPOINT)
def _ckpt_adapt_on_an_encoder(d: Path) -> dict[str, Any]:
    state, arch = _tiny_encoder(d, _swav_head(prototype_width=4))
    path = fx.save({"epoch": 2, "state_dict": state, "optimizer": {}}, d / "swav.pth.tar")
    return _fail(path, ["adapt", path, "demo:noise:1", "--arch", arch, "--steps", "1",
                        "--preprocess", "size=16,channels=1,mean=0.5,std=0.25"],
                 "SwAV encoder without a classifier head", "linear probe",
                 what="adaptation asked of a SwAV encoder (no classifier, no logits)")


@_case(CHECKPOINT)
def _ckpt_non_utf8_name(d: Path) -> dict[str, Any]:
    name = os.fsencode(d) + b"/model_\xff.pt"
    try:
        with open(name, "wb") as handle:
            handle.write(_demo_path().read_bytes())
    except OSError as exc:  # file systems that insist on UTF-8 names (e.g. APFS)
        raise Skip(str(exc)) from None
    path = Path(os.fsdecode(name))
    return _ok(path, _info(path), "model_", "linear head: 10 classes", what="a good checkpoint whose name is not UTF-8")


# ---------------------------------------------------------------------------- images
@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from protoview.core.demo import demo_arrays

    images, labels = demo_arrays(part="test", shift="none")
    return (images[:40, 0] * 255).round().astype(np.uint8), labels[:40]


def _digit(i: int, size: int = 16) -> Image.Image:
    return Image.fromarray(_digits()[0][i]).resize((size, size), Image.NEAREST)


def _image_folder(root: Path, per_class: int = 3, classes: tuple[str, ...] = ("0", "1")) -> Path:
    """``root/<class>/digit_<i>.png``: good 16x16 grey digits."""
    i = 0
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for _ in range(per_class):
            _digit(i).save(root / name / f"digit_{i}.png")
            i += 1
    return root


def _png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").resize((64, 64)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (CRC fixed, so it parses)."""
    data = bytearray(_png_bytes(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@_case(DATASET)
def _ds_empty_folder(d: Path) -> dict[str, Any]:
    root = d / "empty"
    root.mkdir()
    argv, out = _extract(root, d)
    return _fail(root, argv, "holds no images", out=out, what="an empty folder")


@_case(DATASET)
def _ds_empty_class_folders(d: Path) -> dict[str, Any]:
    root = d / "classes"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
    argv, out = _extract(root, d)
    return _fail(root, argv, "holds no images", out=out, what="class folders without images")


@_case(DATASET)
def _ds_only_non_images(d: Path) -> dict[str, Any]:
    root = d / "docs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "readme.txt").write_text("no images here")
    (root / "a" / "labels.csv").write_text("file,label\n")
    argv, out = _extract(root, d)
    return _fail(root, argv, "no images PIL can open", out=out, what="a folder of text files")


@_case(DATASET)
def _ds_corrupt_among_good(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "mixed")
    (root / "0" / "garbage.png").write_bytes(b"this is not a png at all")
    (root / "1" / "empty.jpg").write_bytes(b"")
    jpeg = _jpeg_bytes(_digit(7))
    (root / "1" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    argv, out = _extract(root, d)
    return _ok(root, argv, "7 samples", warns=("garbage.png", "empty.jpg", "cut.jpg"), out=out,
               what="6 good digits, a garbage .png, an empty .jpg, a truncated .jpg (read as blank)")


@_case(DATASET)
def _ds_all_corrupt(d: Path) -> dict[str, Any]:
    root = d / "broken"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    (root / "a" / "y.jpg").write_bytes(b"\xff\xd8\xffnope")
    argv, out = _extract(root, d)
    return _fail(root, argv, "none of its 2 image files could be read", out=out, what="every image is corrupt")


@_case(DATASET)
def _ds_one_pixel(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "tiny", per_class=1)
    Image.new("L", (1, 1), 200).save(root / "1" / "pixel.png")
    argv, out = _extract(root, d)
    return _ok(root, argv, "3 samples", out=out, what="a 1x1 image among 8x8 digits (resized like any other)")


@_case(DATASET)
def _ds_decompression_bomb(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "bomb")
    (root / "0" / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    argv, out = _extract(root, d)
    return _ok(root, argv, "6 samples", warns=("bomb.png", "DecompressionBomb"), out=out,
               what="a PNG whose header claims 20000x20000 (400 Mpx) among good images")


@_case(DATASET)
def _ds_decompression_bomb_only(d: Path) -> dict[str, Any]:
    root = d / "bomb-only"
    (root / "a").mkdir(parents=True)
    (root / "a" / "bomb.png").write_bytes(_png_claiming(20000, 20000))
    argv, out = _extract(root, d)
    return _fail(root, argv, "bomb.png", "DecompressionBomb", out=out, what="only the 400 Mpx PNG")


def _mode_folder(d: Path, name: str, save: Callable[[Image.Image, Path], None], suffix: str) -> Path:
    """Two classes of two digits each, every one written by ``save(image, path)``."""
    root = d / name
    for i in range(4):
        (root / str(i // 2)).mkdir(parents=True, exist_ok=True)
        save(_digit(i), root / str(i // 2) / f"img_{i}{suffix}")
    return root


@_case(DATASET)
def _ds_cmyk_jpeg(d: Path) -> dict[str, Any]:
    root = _mode_folder(d, "cmyk", lambda img, p: img.convert("RGB").convert("CMYK").save(p, "JPEG"), ".jpg")
    argv, out = _extract(root, d)
    return _ok(root, argv, "4 samples", out=out, what="CMYK JPEGs (must load)")


@_case(DATASET)
def _ds_16bit_png(d: Path) -> dict[str, Any]:
    def save(img: Image.Image, path: Path) -> None:
        Image.fromarray(np.asarray(img).astype(np.uint16) * 257).save(path)

    root = _mode_folder(d, "sixteen", save, ".png")
    argv, out = _extract(root, d)
    return _ok(root, argv, "4 samples", out=out, what="16-bit grey PNGs (must load)")


@_case(DATASET)
def _ds_palette_png(d: Path) -> dict[str, Any]:
    root = _mode_folder(d, "palette", lambda img, p: img.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=8).save(p), ".png")
    argv, out = _extract(root, d)
    return _ok(root, argv, "4 samples", out=out, what="palette PNGs (must load)")


@_case(DATASET)
def _ds_symlink_dir_loop(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "loop")
    try:
        os.symlink(".", root / "0" / "again")
        os.symlink("..", root / "1" / "up")
    except OSError as exc:
        raise Skip(str(exc)) from None
    argv, out = _extract(root, d)
    return _ok(root, argv, "6 samples", out=out,
               what="class folders holding symlinks to themselves / their parent (each image counts once)")


@_case(DATASET)
def _ds_symlink_file_loop(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "file-loop")
    try:
        os.symlink("b.png", root / "0" / "a.png")
        os.symlink("a.png", root / "0" / "b.png")
        os.symlink("nowhere.png", root / "1" / "dangling.png")
    except OSError as exc:
        raise Skip(str(exc)) from None
    argv, out = _extract(root, d)
    return _ok(root, argv, "6 samples", warns=("a.png", "b.png", "dangling.png"), out=out,
               what="image symlinks pointing at each other and nowhere")


@_case(DATASET)
def _ds_fifo_image(d: Path) -> dict[str, Any]:
    if not hasattr(os, "mkfifo"):
        raise Skip("no FIFOs here")
    root = _image_folder(d / "pipe")
    os.mkfifo(root / "1" / "pipe.png")
    argv, out = _extract(root, d)
    return _ok(root, argv, "6 samples", warns=("pipe.png",), out=out,
               what="a named pipe called pipe.png (opening it would block forever)")


@_case(DATASET)
def _ds_non_utf8_names(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "names")
    base = os.fsencode(root)
    try:
        with open(base + b"/0/digit_\xff.png", "wb") as handle:
            handle.write(_png_bytes(_digit(20)))
        with open(base + b"/1/bad_\xfe.png", "wb") as handle:
            handle.write(b"not a png")
    except OSError as exc:  # file systems that insist on UTF-8 names
        raise Skip(str(exc)) from None
    argv, out = _extract(root, d)
    return _ok(root, argv, "7 samples", warns=("bad_",), out=out,
               what="a good and a corrupt image whose names are not UTF-8")


@_case(DATASET)
def _ds_non_utf8_folder(d: Path) -> dict[str, Any]:
    name = os.fsencode(d) + b"/data_\xff"
    try:
        os.mkdir(name)
    except OSError as exc:
        raise Skip(str(exc)) from None
    root = _image_folder(Path(os.fsdecode(name)))
    argv, out = _extract(root, d, cache=True)
    return _ok(root, argv, "6 samples", out=out,
               what="a dataset folder whose own name is not UTF-8 (also goes through the feature cache)")


def _npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def _xy(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _digits()
    return images[:n, None], labels[:n].copy()


@_case(DATASET)
def _ds_npz_labels_out_of_range(d: Path) -> dict[str, Any]:
    x, y = _xy()
    y[4] = 12
    path = _npz(d / "labels-12.npz", x=x, y=y)
    argv, out = _extract(path, d)
    return _fail(path, argv, "out of range", "12", out=out, what="a label 12 for a 10-class model")


@_case(DATASET)
def _ds_npz_negative_labels(d: Path) -> dict[str, Any]:
    x, y = _xy()
    y[0] = -7
    path = _npz(d / "labels-neg.npz", x=x, y=y)
    argv, out = _extract(path, d)
    return _fail(path, argv, "out of range", "-7", out=out, what="a label -7 (only -1 means unknown)")


@_case(DATASET)
def _ds_npz_one_class(d: Path) -> dict[str, Any]:
    x, _ = _xy()
    path = _npz(d / "one-class.npz", x=x, y=np.full(len(x), 3))
    argv, out = _extract(path, d)
    return _ok(path, argv, "20 samples", out=out, what="every label is 3 (valid: a one-class test set)")


@_case(DATASET)
def _ds_npz_mismatched_lengths(d: Path) -> dict[str, Any]:
    x, y = _xy()
    path = _npz(d / "lengths.npz", x=x, y=y[:-1])
    argv, out = _extract(path, d)
    return _fail(path, argv, "20 images", "19 labels", out=out, what="20 images, 19 labels")


@_case(DATASET)
def _ds_npz_nan_images(d: Path) -> dict[str, Any]:
    x, y = _xy()
    x = x.astype(np.float32) / 255
    x[2, 0, 3, 3] = np.nan
    path = _npz(d / "nan.npz", x=x, y=y)
    argv, out = _extract(path, d)
    return _fail(path, argv, "NaN", out=out, what="a NaN pixel")


@_case(DATASET)
def _ds_npz_no_images(d: Path) -> dict[str, Any]:
    x, y = _xy()
    path = _npz(d / "renamed.npz", images=x, labels=y)
    argv, out = _extract(path, d)
    return _fail(path, argv, "neither 'x'", out=out, what="arrays under unexpected names")


@_case(DATASET)
def _ds_npz_empty(d: Path) -> dict[str, Any]:
    path = _npz(d / "empty.npz", x=np.zeros((0, 1, 8, 8), np.uint8), y=np.zeros(0, np.int64))
    argv, out = _extract(path, d)
    return _fail(path, argv, "no images", out=out, what="zero images")


@_case(DATASET)
def _ds_npz_bad_shape(d: Path) -> dict[str, Any]:
    path = _npz(d / "flat.npz", x=np.zeros(20, np.uint8), y=np.zeros(20, np.int64))
    argv, out = _extract(path, d)
    return _fail(path, argv, "'x' must be", out=out, what="x is 1-D")


@_case(DATASET)
def _ds_npz_string_labels(d: Path) -> dict[str, Any]:
    x, _ = _xy()
    path = _npz(d / "names.npz", x=x, y=np.array(["cat"] * len(x)))
    argv, out = _extract(path, d)
    return _fail(path, argv, "labels must be integers", out=out, what="labels are strings")


@_case(DATASET)
def _ds_npz_fractional_labels(d: Path) -> dict[str, Any]:
    x, y = _xy()
    path = _npz(d / "fractions.npz", x=x, y=y + 0.5)
    argv, out = _extract(path, d)
    return _fail(path, argv, "whole numbers", out=out, what="labels like 3.5")


@_case(DATASET)
def _ds_npz_truncated(d: Path) -> dict[str, Any]:
    x, y = _xy()
    path = fx.truncate(_npz(d / "cut.npz", x=x, y=y), 0.5)
    argv, out = _extract(path, d)
    return _fail(path, argv, "not a readable .npz", out=out, what="an .npz cut in half")


@_case(DATASET)
def _ds_npz_pickled_objects(d: Path) -> dict[str, Any]:
    marker = d / "MARKER"
    x = np.empty(1, dtype=object)
    x[0] = Payload(os.system, _touch_command(marker))
    path = _npz(d / "objects.npz", x=x, y=np.zeros(1, np.int64))
    argv, out = _extract(path, d)
    return _fail(path, argv, "not a readable .npz", "pickle", out=out, marker=marker, isolated=True,
                 what="'x' is a pickled object array whose unpickling runs os.system")


@_case(DATASET)
def _ds_npz_huge_claim(d: Path) -> dict[str, Any]:
    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (2**20, 1, 1024, 1024)}
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(b"\0" * 64)
    path = d / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
        labels = io.BytesIO()
        np.save(labels, np.zeros(1, np.int64))
        archive.writestr("y.npy", labels.getvalue())
    argv, out = _extract(path, d)
    return _fail(path, argv, "too large", out=out, what="x.npy's header claims 2**20 images of 1024x1024 (1 TiB) over 64 bytes")


@_case(DATASET)
def _ds_npz_fifo(d: Path) -> dict[str, Any]:
    if not hasattr(os, "mkfifo"):
        raise Skip("no FIFOs here")
    path = d / "pipe.npz"
    os.mkfifo(path)
    argv, out = _extract(path, d)
    return _fail(path, argv, "not a regular file", out=out, what="a named pipe called pipe.npz")


@_case(DATASET)
def _ds_unsupported_suffix(d: Path) -> dict[str, Any]:
    path = d / "labels.csv"
    path.write_text("file,label\na.png,0\n")
    argv, out = _extract(path, d)
    return _fail(path, argv, "unsupported file type .csv", out=out, what="a CSV file")


@_case(DATASET)
def _ds_missing(d: Path) -> dict[str, Any]:
    path = d / "no-such-folder"
    argv, out = _extract(path, d)
    return _fail(path, argv, "does not exist", out=out, what="a path that does not exist")


def _feature_file(path: Path, features: np.ndarray, labels: np.ndarray, **attrs: Any) -> Path:
    with h5py.File(path, "w") as h5:
        h5["features"], h5["labels"] = features, labels
        for key, value in {"format": "protoview-features", "version": 1, **attrs}.items():
            h5.attrs[key] = value
    return path


@_case(DATASET)
def _ds_features_nan(d: Path) -> dict[str, Any]:
    features = np.ones((10, 64), np.float32)
    features[6, 2] = np.nan
    path = _feature_file(d / "nan-features.h5", features, np.arange(10) % 10, complete=True)
    return _fail(path, _info(path), "NaN", "row 6", what="a features file with a NaN")


@_case(DATASET)
def _ds_features_huge_claim(d: Path) -> dict[str, Any]:
    path = d / "huge-features.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", shape=(2**36, 64), dtype=np.float32, chunks=(1024, 64))
        h5.create_dataset("labels", shape=(2**36,), dtype=np.int64, chunks=(1024,))
        h5.attrs.update({"format": "protoview-features", "version": 1, "complete": True})
    return _fail(path, _info(path), "too large", what="a features file whose (empty) arrays claim 2**36 rows (16 TiB)")


@_case(DATASET)
def _ds_features_incomplete(d: Path) -> dict[str, Any]:
    path = _feature_file(d / "half-written.h5", np.ones((10, 64), np.float32), np.arange(10) % 10)
    return _fail(path, _info(path), "not completely written", what="a features file without complete=True")


@_case(DATASET)
def _ds_features_wrong_dim(d: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    path = _feature_file(d / "dim5.h5", rng.normal(size=(30, 5)).astype(np.float32), np.arange(30) % 10,
                         complete=True)
    return _fail(path, ["cluster", "demo", path, "--k", "3"], "5", "64",
                 what="5-d features opened with the demo model (64-d)")


@_case(DATASET)
def _ds_features_without_labels(d: Path) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    path = d / "unlabelled-features.h5"
    with h5py.File(path, "w") as h5:
        h5["features"] = rng.normal(size=(40, 64)).astype(np.float32)
    return _ok(path, ["cluster", "demo", path, "--k", "3"], "NMI no labels", what="a features file with no labels (must work)")


# ---------------------------------------------------------------------------- unlabelled data, TTA benchmarks
@_case(DATASET)
def _ds_unlabelled_folder(d: Path) -> dict[str, Any]:
    root = d / "target"
    root.mkdir()
    for i in range(6):
        _digit(i).save(root / f"img_{i}.png")
    out = d / "snapshot-out.h5"
    return _ok(root, ["export", "demo", root, "--no-map", "--out", out], "no labels", out=out,
               what="a folder of images without class folders (unlabelled target data; must work)")


@_case(DATASET)
def _ds_npz_x_only(d: Path) -> dict[str, Any]:
    x, _ = _xy()
    path = _npz(d / "x-only.npz", x=x)
    return _ok(path, ["adapt", "demo", path, "--steps", "1", "--batch-size", "8"], "accuracy no labels",
               what="an .npz with only 'x' (unlabelled; adaptation must work)")


def _cifar_c(d: Path, n: int = 2, rows: int | None = None, labels: int | None = None) -> Path:
    """A CIFAR-10-C folder: fog.npy (rows, 32, 32, 3) uint8 and labels.npy (labels,)."""
    root = d / "CIFAR-10-C"
    root.mkdir()
    rows = 5 * n if rows is None else rows
    np.save(root / "fog.npy", np.random.default_rng(0).integers(0, 256, (rows, 32, 32, 3), dtype=np.uint8))
    np.save(root / "labels.npy", np.arange(rows if labels is None else labels) % 10)
    return root


@_case(DATASET)
def _ds_cifar10c_ok(d: Path) -> dict[str, Any]:
    root = _cifar_c(d)
    argv, out = _extract(f"cifar10c:{root}:fog:5", d)
    return _ok(root, argv, "2 samples", out=out, what="a CIFAR-10-C folder in the released layout (must load)")


@_case(DATASET)
def _ds_cifar10c_unknown_corruption(d: Path) -> dict[str, Any]:
    root = _cifar_c(d)
    argv, out = _extract(f"cifar10c:{root}:fgo:5", d)
    return _fail(root / "fgo.npy", argv, "fgo.npy", "no corruption 'fgo'", "did you mean fog", out=out,
                 what="a corruption name that does not exist (a typo of fog)")


@_case(DATASET)
def _ds_cifar10c_severity_6(d: Path) -> dict[str, Any]:
    root = _cifar_c(d)
    argv, out = _extract(f"cifar10c:{root}:fog:6", d)
    return _fail(root, argv, "CIFAR-10-C:fog:6", "severity 6 does not exist", "1 to 5", out=out,
                 what="severity 6 (CIFAR-10-C has 1..5)")


@_case(DATASET)
def _ds_cifar10c_labels_length(d: Path) -> dict[str, Any]:
    root = _cifar_c(d, n=4, labels=19)
    argv, out = _extract(f"cifar10c:{root}:fog:1", d)
    return _fail(root / "labels.npy", argv, "labels.npy", "19 labels", "20 images", out=out,
                 what="a labels.npy one label shorter than fog.npy")


@_case(DATASET)
def _ds_cifar10c_not_multiple_of_5(d: Path) -> dict[str, Any]:
    root = _cifar_c(d, rows=12)
    argv, out = _extract(f"cifar10c:{root}:fog:1", d)
    return _fail(root / "fog.npy", argv, "fog.npy", "12 images", "multiple of 5", out=out,
                 what="a CIFAR-10-C file of 12 rows (5 severities cannot split it)")


@_case(DATASET)
def _ds_cifar10c_no_labels_file(d: Path) -> dict[str, Any]:
    root = _cifar_c(d)
    (root / "labels.npy").unlink()
    argv, out = _extract(f"cifar10c:{root}:fog:1", d)
    return _fail(root / "labels.npy", argv, "labels.npy", "does not exist", out=out,
                 what="a CIFAR-10-C folder without labels.npy")


@_case(DATASET)
def _ds_cifar10c_float_images(d: Path) -> dict[str, Any]:
    root = _cifar_c(d)
    np.save(root / "fog.npy", np.zeros((10, 32, 32, 3), np.float32))
    argv, out = _extract(f"cifar10c:{root}:fog:1", d)
    return _fail(root / "fog.npy", argv, "fog.npy", "uint8", "float32", out=out,
                 what="a CIFAR-10-C file of float32 instead of uint8 images")


def _imagenet_c(d: Path) -> Path:
    root = d / "ImageNet-C"
    for i, wnid in enumerate(("n01440764", "n01443537")):
        folder = root / "fog" / "3" / wnid
        folder.mkdir(parents=True)
        _digit(i).convert("RGB").save(folder / f"ILSVRC2012_val_{i:08d}.JPEG", "JPEG")
    return root


@_case(DATASET)
def _ds_imagenetc_missing_severity(d: Path) -> dict[str, Any]:
    root = _imagenet_c(d)
    argv, out = _extract(f"imagenetc:{root}:fog:5", d)
    return _fail(root / "fog" / "5", argv, os.path.join("fog", "5"), "severity folders found: 3", out=out,
                 what="an ImageNet-C severity that is not on disk")


@_case(DATASET)
def _ds_imagenetc_foreign_class_folder(d: Path) -> dict[str, Any]:
    root = _imagenet_c(d)
    (root / "fog" / "3" / "cats").mkdir()
    argv, out = _extract(f"imagenetc:{root}:fog:3", d)
    return _fail(root / "fog" / "3" / "cats", argv, "cats", "not a class folder", out=out,
                 what="a class folder that is no ImageNet WordNet id")


def _pacs(d: Path) -> Path:
    for domain in ("art_painting", "sketch"):
        for i, name in enumerate(("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")):
            folder = d / "PACS" / domain / name
            folder.mkdir(parents=True)
            _digit(i).convert("RGB").save(folder / "pic_001.jpg", "JPEG")
    return d / "PACS"


@_case(DATASET)
def _ds_pacs_ok(d: Path) -> dict[str, Any]:
    root = _pacs(d)
    argv, out = _extract(f"pacs:{d}:sketch", d)
    return _ok(root, argv, "7 samples", out=out, what="a PACS domain in DomainBed's layout (must load)")


@_case(DATASET)
def _ds_pacs_missing_domain(d: Path) -> dict[str, Any]:
    root = _pacs(d)
    argv, out = _extract(f"pacs:{d}:cartoon", d)
    return _fail(root / "cartoon", argv, "cartoon", "no PACS domain 'cartoon'", "art_painting, sketch", out=out,
                 what="a PACS domain that is not on disk (cartoon)")


@_case(DATASET)
def _ds_pacs_environment_7(d: Path) -> dict[str, Any]:
    root = _pacs(d)
    argv, out = _extract(f"pacs:{d}:7", d)
    return _fail(root, argv, "pacs:", "environment 7 does not exist", "0..3", out=out,
                 what="DomainBed environment index 7 (PACS has 0..3)")


def _imagenet_r(d: Path) -> Path:
    root = d / "imagenet-r"
    for i, wnid in enumerate(("n01443537", "n01484850")):
        (root / wnid).mkdir(parents=True)
        _digit(i).convert("RGB").save(root / wnid / f"art_{i}.jpg", "JPEG")
    return root


@_case(DATASET)
def _ds_imagenet_r_foreign_class_folder(d: Path) -> dict[str, Any]:
    root = _imagenet_r(d)
    (root / "cats").mkdir()
    argv, out = _extract(f"imagenet-r:{root}", d)
    return _fail(root / "cats", argv, "cats", "not a class folder", out=out,
                 what="an ImageNet-R class folder that is none of its 200 WordNet ids")


def _domainnet126(d: Path, lines: str) -> Path:
    root = d / "domainnet"
    (root / "real" / "apple").mkdir(parents=True)
    _digit(0).convert("RGB").save(root / "real" / "apple" / "a.jpg", "JPEG")
    (root / "real_list.txt").write_text(lines)
    return root


@_case(DATASET)
def _ds_domainnet126_missing_list(d: Path) -> dict[str, Any]:
    root = _domainnet126(d, "real/apple/a.jpg 0\n")
    argv, out = _extract(f"domainnet126:{root}:clipart", d)
    return _fail(root / "clipart_list.txt", argv, "clipart_list.txt", "is missing", out=out,
                 what="a DomainNet-126 domain whose image list is not on disk")


@_case(DATASET)
def _ds_domainnet126_list_names_an_absent_image(d: Path) -> dict[str, Any]:
    root = _domainnet126(d, "real/apple/a.jpg 0\nreal/apple/gone.jpg 0\n")
    argv, out = _extract(f"domainnet126:{root}:real", d)
    return _fail(root / "real_list.txt", argv, "real_list.txt", "absent", "real/apple/gone.jpg",
                 out=out, what="a DomainNet-126 list naming an image that is not on disk")


def _imagenet_d(d: Path, lines: str) -> Path:
    """The toolkit's ImageNet-D layout: ROOT/clipart/<class>/<file>, its list in
    ROOT/imagenet_d_lists/clipart_list.txt (label = the class's index among the 164)."""
    root = d / "imagenet-d"
    (root / "clipart" / "dog").mkdir(parents=True)
    _digit(0).convert("RGB").save(root / "clipart" / "dog" / "a.jpg", "JPEG")
    (root / "imagenet_d_lists").mkdir()
    (root / "imagenet_d_lists" / "clipart_list.txt").write_text(lines)
    return root


@_case(DATASET)
def _ds_imagenet_d_foreign_class_folder(d: Path) -> dict[str, Any]:
    root = _imagenet_d(d, "clipart/dog/a.jpg 47\nclipart/mouse/b.jpg 47\n")
    argv, out = _extract(f"imagenet-d:{root}:clipart", d)
    return _fail(root / "imagenet_d_lists" / "clipart_list.txt", argv, "clipart_list.txt",
                 "line 2", "'mouse' is not one of ImageNet-D's 164 classes", out=out,
                 what="an ImageNet-D list line whose class folder is none of its 164 classes")


@_case(DATASET)
def _ds_imagenet_d_unknown_domain(d: Path) -> dict[str, Any]:
    root = _imagenet_d(d, "clipart/dog/a.jpg 47\n")
    argv, out = _extract(f"imagenet-d:{root}:photo", d)
    return _fail(root, argv, "imagenet-d:", "unknown ImageNet-D domain 'photo'", "quickdraw",
                 out=out, what="an ImageNet-D domain that does not exist (photo)")


@_case(DATASET)
def _ds_imagenet_d_missing_domain_list(d: Path) -> dict[str, Any]:
    root = _imagenet_d(d, "clipart/dog/a.jpg 47\n")
    argv, out = _extract(f"imagenet-d:{root}:clipart,sketch", d)
    return _fail(root / "sketch_list.txt", argv, "sketch_list.txt", "is missing",
                 "imagenet_d_lists", out=out,
                 what="an ImageNet-D domain whose image list is not on disk (sketch)")


_CCC_DOMAIN = "baseline_20_transition+speed_1000_seed_44"


def _ccc_shard(path: Path, samples: list[dict[str, bytes]]) -> None:
    """A CCC shard as webdataset's TarWriter writes it: ``<key>.<field>`` in sorted field order."""
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
        for sample in samples:
            for field in sorted(k for k in sample if k != "__key__"):
                info = tarfile.TarInfo(f"{sample['__key__'].decode()}.{field}")
                info.size, info.mode = len(sample[field]), 0o444
                tar.addfile(info, io.BytesIO(sample[field]))


def _ccc_sample(i: int, label: bytes = b"7", drop: str = "") -> dict[str, bytes]:
    jpeg = io.BytesIO()
    _digit(i).convert("RGB").save(jpeg, "JPEG")
    sample = {"__key__": f"sample_{i}".encode(), "info": b"++dir++n01440764",
              "input.jpg": jpeg.getvalue(), "output.cls": label}
    sample.pop(drop, None)
    return sample


def _ccc(d: Path, *shards: list[dict[str, bytes]]) -> tuple[Path, Path]:
    """``d/CCC/<domain>/serial_<k>.tar`` (root, domain folder)."""
    folder = d / "CCC" / _CCC_DOMAIN
    folder.mkdir(parents=True)
    for k, samples in enumerate(shards):
        _ccc_shard(folder / f"serial_{k:05d}.tar", samples)
    return d / "CCC", folder


@_case(DATASET)
def _ds_ccc_missing_domain(d: Path) -> dict[str, Any]:
    root, _folder = _ccc(d, [_ccc_sample(0)])
    other = "baseline_0_transition+speed_5000_seed_43"
    argv, out = _extract(f"ccc:{root}:{other}", d)
    return _fail(root / other, argv, other, "does not exist", _CCC_DOMAIN, out=out,
                 what="a CCC domain folder that is not on disk")


@_case(DATASET)
def _ds_ccc_shard_not_a_tar(d: Path) -> dict[str, Any]:
    root, folder = _ccc(d, [_ccc_sample(0)], [_ccc_sample(0)])
    (folder / "serial_00001.tar").write_bytes(b"GIF89a not a tar" * 64)
    argv, out = _extract(f"ccc:{root}:{_CCC_DOMAIN}", d)
    return _fail(folder / "serial_00001.tar", argv, "serial_00001.tar", "not a readable tar",
                 out=out, what="a CCC shard that is not a tar file")


@_case(DATASET)
def _ds_ccc_sample_without_cls(d: Path) -> dict[str, Any]:
    root, folder = _ccc(d, [_ccc_sample(0), _ccc_sample(1, drop="output.cls")])
    argv, out = _extract(f"ccc:{root}:{_CCC_DOMAIN}", d)
    return _fail(folder / "serial_00000.tar", argv, "serial_00000.tar", "sample_1.output.cls",
                 out=out, what="a CCC sample without its .cls member")


@_case(DATASET)
def _ds_ccc_sample_without_jpg(d: Path) -> dict[str, Any]:
    root, folder = _ccc(d, [_ccc_sample(0, drop="input.jpg"), _ccc_sample(1)])
    argv, out = _extract(f"ccc:{root}:{_CCC_DOMAIN}", d)
    return _fail(folder / "serial_00000.tar", argv, "serial_00000.tar", "sample_0.input.jpg",
                 out=out, what="a CCC sample without its .jpg member")


@_case(DATASET)
def _ds_ccc_cls_not_an_integer(d: Path) -> dict[str, Any]:
    root, folder = _ccc(d, [_ccc_sample(0, b"tabby cat")])
    argv, out = _extract(f"ccc:{root}:{_CCC_DOMAIN}", d)
    return _fail(folder / "serial_00000.tar", argv, "serial_00000.tar", "sample_0.output.cls",
                 "0..999", out=out, what="a CCC .cls that is not a whole number")


@_case(DATASET)
def _ds_ccc_cls_out_of_range(d: Path) -> dict[str, Any]:
    root, folder = _ccc(d, [_ccc_sample(0), _ccc_sample(1, b"1000")])
    argv, out = _extract(f"ccc:{root}:{_CCC_DOMAIN}", d)
    return _fail(folder / "serial_00000.tar", argv, "serial_00000.tar", "'1000'", "0..999",
                 out=out, what="a CCC .cls outside the 1000 ImageNet classes")


# ---------------------------------------------------------------------------- options
# --preprocess / --nb-proxy given wrong: one line naming the option (issue 13).
def _option_fail(argv: list[Any], *expect: str, what: str, out: Path | None = None) -> dict[str, Any]:
    """An option at fault: the error line names it (``expect[0]``), not a file."""
    return {"paths": [Path(expect[0])], "argv": tuple(os.fspath(a) for a in argv), "expect": expect,
            "what": what, "out": out}


def _preprocess_case(d: Path, option: str, *expect: str, what: str) -> dict[str, Any]:
    argv, out = _extract("demo:noise:1", d)
    return _option_fail([*argv, "--preprocess", option], "--preprocess", *expect, what=what, out=out)


@_case(OPTION)
def _opt_mean_two_values_for_three_channels(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "size=8,mean=0.5,0.5,std=0.25", "mean has 2 values for 3 channels",
                            what="a mean with two values for three channels")


@_case(OPTION)
def _opt_size_zero(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "size=0", "size must be at least 1 pixel", what="a size of 0")


@_case(OPTION)
def _opt_unknown_preset(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "imagenett", "unknown preset 'imagenett'", "imagenet", what="a misspelt preset")


@_case(OPTION)
def _opt_bad_channels(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "channels=2", "channels must be 1 or 3", what="two channels")


@_case(OPTION)
def _opt_channels_the_model_cannot_take(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "cifar10", "1-channel", "gives 3",
                            what="RGB inputs (cifar10) for the grey demo model")


@_case(OPTION)
def _opt_std_zero(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "size=8,channels=1,mean=0.5,std=0", "std must be positive", what="a std of 0")


@_case(OPTION)
def _opt_unknown_field(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "sise=8", "unknown field 'sise'", what="a misspelt field")


@_case(OPTION)
def _opt_short_side_without_crop(d: Path) -> dict[str, Any]:
    return _preprocess_case(d, "size=8,resize=short-side,channels=1,mean=0.5,std=0.2", "needs crop=",
                            what="a short-side resize without a crop (images of many shapes)")


@_case(OPTION)
def _opt_preprocess_for_the_window_alone(d: Path) -> dict[str, Any]:
    return _option_fail(["gui", "--preprocess", "cifar10"], "--preprocess", "give CHECKPOINT and DATA",
                        what="a window option without the files it applies to")


# adaptation options given wrong (issue 14): one line naming the option or parameter
def _adapt_case(d: Path, extra: list[str], *expect: str, what: str) -> dict[str, Any]:
    out = d / "run-out.h5"
    argv = ["adapt", "demo", "demo:noise:1", "--steps", "1", "--out", out, *extra]
    return _option_fail(argv, *expect, what=what, out=out)


@_case(OPTION)
def _opt_unknown_stream(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--stream", "sideways"], "stream", "unknown setting 'sideways'",
                       what="a stream setting that does not exist")


@_case(OPTION)
def _opt_dirichlet_zero(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--stream", "dirichlet=0"], "stream", "concentration must be a finite number > 0",
                       what="a Dirichlet label shift with concentration 0")


@_case(OPTION)
def _opt_reset_each_shift_mixed(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--stream", "reset_each_shift,mixed"], "--stream",
                       "reset_each_shift resets the model where the shift changes",
                       what="a reset at each shift on a mixed stream, which has no shift")


@_case(OPTION)
def _opt_gradual_without_severities(d: Path) -> dict[str, Any]:
    out = d / "run-out.h5"
    argv = ["adapt", "demo", "demo:noise,blur:5", "--steps", "1", "--out", out, "--stream", "gradual"]
    return _option_fail(argv, "--stream", "noise is open at severity 5 only", "1-5", out=out,
                        what="a gradual stream over corruptions opened at one severity")


@_case(OPTION)
def _opt_batch_of_one_for_batchnorm(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--method", "bn", "--batch-size", "1"], "--batch-size",
                       "bn normalises BatchNorm with the statistics of each batch",
                       what="batches of one sample for BN adaptation (no batch statistics)")


@_case(OPTION)
def _opt_severity_range_out_of_bounds(d: Path) -> dict[str, Any]:
    out = d / "run-out.h5"
    argv = ["adapt", "demo", "demo:noise,blur:0-5", "--steps", "1", "--out", out]
    return _option_fail(argv, "demo:noise,blur:0-5", "severity 0 does not exist", out=out,
                        what="a range of severities starting at 0")


@_case(OPTION)
def _opt_negative_learning_rate(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--param", "lr=-1"], "lr", "finite number > 0", what="a negative learning rate")


@_case(OPTION)
def _opt_filter_k_zero(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--method", "t3a", "--param", "filter_K=0"], "filter_K", "-1 for all",
                       what="T3A keeping 0 supports per class")


@_case(OPTION)
def _opt_parameter_of_another_method(d: Path) -> dict[str, Any]:
    return _adapt_case(d, ["--method", "bn", "--param", "lr=0.1"], "lr", "not a parameter of 'bn'",
                       what="a learning rate for BN adaptation (which has none)")


def _gtta_style_case(d: Path, params: list[str], *expect: str, what: str) -> dict[str, Any]:
    extra = ["--method", "gtta", "--source-data", "demo:source", "--param", "style_transfer=true"]
    for param in params:
        extra += ["--param", param]
    return _adapt_case(d, extra, *expect, what=what)


@_case(OPTION)
def _opt_gtta_style_transfer_without_vgg_weights(d: Path) -> dict[str, Any]:
    return _gtta_style_case(d, [f"decoder={d / 'decoder.pth'}"], "vgg_weights",
                            "style_transfer needs AdaIN's VGG-19 encoder weights",
                            what="GTTA's style transfer without the VGG-19 weights it needs")


@_case(OPTION)
def _opt_gtta_style_transfer_vgg_not_weights(d: Path) -> dict[str, Any]:
    vgg = d / "vgg-not-weights.pth"
    vgg.write_text("not a state_dict")
    return _gtta_style_case(d, [f"vgg_weights={vgg}", f"decoder={d / 'decoder.pth'}"],
                            "vgg_weights", "vgg-not-weights.pth", "cannot be read by torch.load",
                            what="GTTA's style transfer given a VGG file that is not weights")


@_case(OPTION)
def _opt_compare_unknown_method(d: Path) -> dict[str, Any]:
    out = d / "table-out.csv"
    argv = ["compare", "demo", "demo:noise:1", "--methods", "tsd,nope", "--csv", out]
    return _option_fail(argv, "methods", "unknown method 'nope'", what="compare with a method that does not exist",
                        out=out)


def _compare_case(d: Path, extra: list[str], *expect: str, what: str) -> dict[str, Any]:
    out = d / "table-out.csv"
    argv = ["compare", "demo", "demo:noise:1", "--methods", "none", "--csv", out, *extra]
    return _option_fail(argv, *expect, what=what, out=out)


@_case(OPTION)
def _opt_compare_seeds_malformed(d: Path) -> dict[str, Any]:
    return _compare_case(d, ["--seeds", "1,two"], "--seeds", "expected seeds like 1,2,3 or 1-5",
                         what="a seed list with a word in it")


@_case(OPTION)
def _opt_compare_seeds_empty(d: Path) -> dict[str, Any]:
    return _compare_case(d, ["--seeds", ""], "--seeds", "expected seeds like 1,2,3 or 1-5",
                         what="an empty seed list")


@_case(OPTION)
def _opt_compare_seeds_negative(d: Path) -> dict[str, Any]:
    return _compare_case(d, ["--seeds=-1,2"], "--seeds", "a seed must be >= 0, got -1",
                         what="a negative seed")


@_case(OPTION)
def _opt_compare_seeds_backwards(d: Path) -> dict[str, Any]:
    return _compare_case(d, ["--seeds", "5-1"], "--seeds", "the range 5-1 runs backwards",
                         what="a seed range that runs backwards")


@_case(OPTION)
def _opt_compare_seed_and_seeds(d: Path) -> dict[str, Any]:
    return _compare_case(d, ["--seed", "1", "--seeds", "1-5"], "--seeds", "not both",
                         what="one seed and a list of seeds at once")


@_case(OPTION)
def _opt_compare_unknown_metric(d: Path) -> dict[str, Any]:
    return _compare_case(d, ["--metric", "top5"], "--metric", "unknown metric 'top5'",
                         what="a metric compare does not report")


_PYCIL_ARCH = """
from torch import nn


def convnet():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
"""


def _pycil_cosine(d: Path, classes: int) -> tuple[Path, Path, Path]:
    """A PyCIL checkpoint (5 classes x 3 proxies, nb_proxy not stored), its arch file, and
    digits labelled with ``classes`` classes."""
    arch = d / "pycil_arch.py"
    arch.write_text(_PYCIL_ARCH)
    generator = torch.Generator().manual_seed(0)
    state = {"convnet.0.weight": torch.randn(8, 1, 3, 3, generator=generator), "convnet.0.bias": torch.zeros(8),
             "fc.weight": torch.randn(15, 8, generator=generator), "fc.sigma": torch.tensor([4.0])}
    ckpt = d / "pycil_task1.pkl"
    torch.save({"tasks": 1, "model_state_dict": state}, ckpt)
    x, y = _xy()
    data = _npz(d / f"digits-{classes}-classes.npz", x=x, y=y % classes)
    return ckpt, arch, data


def _pycil_argv(ckpt: Path, arch: Path, data: Path, d: Path) -> tuple[list[Any], Path]:
    argv, out = _extract(data, d)
    argv[1] = ckpt
    return [*argv, "--arch", f"{arch}:convnet", "--preprocess", "size=8,channels=1,mean=0.3,std=0.4"], out


@_case(OPTION)
def _opt_cosine_rows_do_not_fit_the_classes(d: Path) -> dict[str, Any]:
    ckpt, arch, data = _pycil_cosine(d, 4)
    argv, out = _pycil_argv(ckpt, arch, data, d)
    return _option_fail(argv, "--nb-proxy", "15 proxy rows", "not a multiple of the 4 classes", out=out,
                        what="a PyCIL cosine head of 15 rows on data of 4 classes, --nb-proxy not given")


@_case(OPTION)
def _opt_cosine_proxies_inferred_from_the_data(d: Path) -> dict[str, Any]:
    ckpt, arch, data = _pycil_cosine(d, 5)
    argv, out = _pycil_argv(ckpt, arch, data, d)
    return _ok(ckpt, argv, "3 proxies per class inferred", "20 samples", out=out,
               what="a PyCIL cosine head of 15 rows on data of 5 classes: 3 proxies per class, said so")


@_case(OPTION)
def _opt_class_order_file_not_an_order(d: Path) -> dict[str, Any]:
    ckpt, arch, data = _pycil_cosine(d, 5)
    argv, out = _pycil_argv(ckpt, arch, data, d)
    order = d / "class-order.txt"
    order.write_text("0 1 2\n")
    return {"paths": [order], "argv": tuple(os.fspath(a) for a in [*argv, "--class-order", order]),
            "expect": (order.name, "holds 3 indices, not an order of the data's 5 classes"),
            "what": "a class order file of 3 indices for data of 5 classes", "out": out}


@_case(OPTION)
def _opt_class_order_bad_seed(d: Path) -> dict[str, Any]:
    ckpt, arch, data = _pycil_cosine(d, 5)
    argv, out = _pycil_argv(ckpt, arch, data, d)
    return _option_fail([*argv, "--class-order", "pycil:soon"], "--class-order",
                        "pycil:SEED takes an integer seed", out=out,
                        what="PyCIL's class order with a seed that is no number")


@_case(OPTION)
def _opt_class_order_applied_to_a_pycil_head(d: Path) -> dict[str, Any]:
    ckpt, arch, data = _pycil_cosine(d, 5)
    argv, out = _pycil_argv(ckpt, arch, data, d)
    return _ok(ckpt, ["info", *argv[1:3], *argv[6:]], "matched through the class order PyCIL's, "
               "seed 1993", what="a PyCIL head on data of its classes: PyCIL's order, said once")


@_case(OPTION)
def _opt_order_contradicts_no_shuffle(d: Path) -> dict[str, Any]:
    out = d / "run-out.h5"
    argv = ["adapt", "demo", "demo:noise:1", "--steps", "1", "--no-shuffle", "--order",
            "shuffled", "--out", out]
    return _option_fail(argv, "--no-shuffle", "contradicts --order shuffled", out=out,
                        what="--no-shuffle with --order shuffled")


@_case(DATASET)
def _ds_npz_normalised_floats(d: Path) -> dict[str, Any]:
    x = np.random.default_rng(0).standard_normal((20, 1, 8, 8)).astype(np.float32) * 1.1 + 0.2
    path = _npz(d / "normalised.npz", x=x, y=np.arange(20) % 10)
    argv, out = _extract(path, d)
    return _fail(path, argv, "values in [", "outside [0, 1]", "--preprocess none", out=out,
                 what="float model inputs (already normalised) without --preprocess none")


@_case(DATASET)
def _ds_npz_normalised_floats_as_model_inputs(d: Path) -> dict[str, Any]:
    x = np.random.default_rng(0).standard_normal((20, 1, 8, 8)).astype(np.float32) * 1.1 + 0.2
    path = _npz(d / "inputs.npz", x=x, y=np.arange(20) % 10)
    argv, out = _extract(path, d)
    return _ok(path, [*argv, "--preprocess", "none"], "20 samples", out=out,
               what="the same float model inputs with --preprocess none (fed as they are)")


@_case(DATASET)
def _ds_npz_float_pixels_0_255(d: Path) -> dict[str, Any]:
    x, y = _xy()
    path = _npz(d / "float255.npz", x=x.astype(np.float32), y=y)
    argv, out = _extract(path, d)
    return _fail(path, argv, "outside [0, 1]", "scale=255", out=out,
                 what="float pixels in [0, 255] (never divided by a guessed 255)")


@_case(DATASET)
def _ds_npz_pixels_with_preprocess_none(d: Path) -> dict[str, Any]:
    x, y = _xy()
    path = _npz(d / "pixels.npz", x=x, y=y)
    argv, out = _extract(path, d)
    return _fail(path, [*argv, "--preprocess", "none"], "8-bit pixels", "--preprocess none", out=out,
                 what="uint8 pixels with --preprocess none (they are not model inputs)")


@_case(DATASET)
def _ds_folder_with_preprocess_none(d: Path) -> dict[str, Any]:
    root = _image_folder(d / "pngs")
    argv, out = _extract(root, d)
    return _fail(root, [*argv, "--preprocess", "none"], "image files", out=out,
                 what="an image folder with --preprocess none (image files are pixels)")


# ---------------------------------------------------------------------------- snapshots
def _good_snapshot(path: Path) -> Path:
    from protoview.core.snapshot import write_snapshot

    write_snapshot(path, make_snapshot(1, 30, 4))
    return path


def _edit(path: Path, change: Callable[[h5py.File], Any]) -> Path:
    with h5py.File(path, "r+") as h5:
        change(h5)
    return path


def _replace(h5: h5py.File, name: str, value: Any) -> None:
    del h5[name]
    h5[name] = value


def _snap_case(d: Path, name: str, change: Callable[[h5py.File], Any], *expect: str, what: str) -> dict[str, Any]:
    path = _edit(_good_snapshot(d / name), change)
    return _fail(path, _info(path), *expect, what=what)


@_case(SNAPSHOT)
def _snap_missing_group(d: Path) -> dict[str, Any]:
    return _snap_case(d, "no-centers.h5", lambda h5: h5.__delitem__("centers"), "'centers' is missing",
                      what="the centers group was deleted")


@_case(SNAPSHOT)
def _snap_missing_dataset(d: Path) -> dict[str, Any]:
    return _snap_case(d, "no-labels.h5", lambda h5: h5.__delitem__("samples/labels"), "samples/labels is missing",
                      what="samples/labels was deleted")


@_case(SNAPSHOT)
def _snap_labels_as_strings(d: Path) -> dict[str, Any]:
    return _snap_case(d, "string-labels.h5", lambda h5: _replace(h5, "samples/labels", np.array([b"cat"] * 30)),
                      "samples/labels", "int64", what="labels stored as strings")


@_case(SNAPSHOT)
def _snap_embedding_float64(d: Path) -> dict[str, Any]:
    return _snap_case(d, "f64.h5", lambda h5: _replace(h5, "samples/embedding", np.zeros((30, 2))),
                      "samples/embedding", "float64", what="the embedding stored as float64")


@_case(SNAPSHOT)
def _snap_shape_mismatch(d: Path) -> dict[str, Any]:
    return _snap_case(d, "n-mismatch.h5", lambda h5: _replace(h5, "samples/predictions", np.zeros(31, np.int64)),
                      "samples/predictions", "31", what="31 predictions for 30 samples")


@_case(SNAPSHOT)
def _snap_embedding_3d(d: Path) -> dict[str, Any]:
    return _snap_case(d, "emb3.h5", lambda h5: _replace(h5, "samples/embedding", np.zeros((30, 3), np.float32)),
                      "samples/embedding", "(N, 2)", what="a 3-column embedding")


@_case(SNAPSHOT)
def _snap_newer_version(d: Path) -> dict[str, Any]:
    return _snap_case(d, "future.h5", lambda h5: h5.attrs.__setitem__("format_version", 7), "newer protoview",
                      what="format_version 7")


@_case(SNAPSHOT)
def _snap_foreign_hdf5(d: Path) -> dict[str, Any]:
    path = d / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5["data"] = np.arange(10)
    return _fail(path, _info(path), "not a protoview snapshot", what="someone else's HDF5 file")


@_case(SNAPSHOT)
def _snap_params_not_json(d: Path) -> dict[str, Any]:
    return _snap_case(d, "params.h5", lambda h5: h5.attrs.__setitem__("params", "{oops"), "attrs/params",
                      what="params is not JSON")


@_case(SNAPSHOT)
def _snap_bad_offsets(d: Path) -> dict[str, Any]:
    return _snap_case(d, "offsets.h5",
                      lambda h5: _replace(h5, "history/batch_indices_offsets", np.array([0, 99], np.int64)),
                      "history/batch_indices_offsets", what="ragged offsets that index past the data")


@_case(SNAPSHOT)
def _snap_geometry_rows_disagree(d: Path) -> dict[str, Any]:
    def change(h5: h5py.File) -> None:
        group = h5["metrics"].create_group("geometry")
        group["run"] = np.zeros(2, np.int64)
        group["step"] = np.arange(2, dtype=np.int64)
        group["nc1"] = np.ones(3)

    return _snap_case(d, "geometry-rows.h5", change, "metrics/geometry/",
                      what="metrics/geometry with 2 steps and 3 NC1 values")


@_case(SNAPSHOT)
def _snap_geometry_without_run(d: Path) -> dict[str, Any]:
    def change(h5: h5py.File) -> None:
        group = h5["metrics"].create_group("geometry")
        group["step"] = np.arange(2, dtype=np.int64)
        group["nc1"] = np.ones(2)

    return _snap_case(d, "geometry-no-run.h5", change, "metrics/geometry/run is missing",
                      what="metrics/geometry without its run column")


@_case(SNAPSHOT)
def _snap_huge_history(d: Path) -> dict[str, Any]:
    def change(h5: h5py.File) -> None:
        del h5["history"]
        group = h5.create_group("history")
        group.create_dataset("step", shape=(2**40,), dtype=np.int64, chunks=(1024,))
        group.create_dataset("accuracy", shape=(2**40,), dtype=np.float64, chunks=(1024,))

    return _snap_case(d, "huge-history.h5", change, "history", what="history columns that claim 2**40 rows (8 TiB)")


@_case(SNAPSHOT)
def _snap_external_link(d: Path) -> dict[str, Any]:
    def change(h5: h5py.File) -> None:
        del h5["centers"]
        h5["centers"] = h5py.ExternalLink("/nonexistent/elsewhere.h5", "/centers")

    return _snap_case(d, "link.h5", change, "centers", what="the centers group is a link to a missing file")


@_case(SNAPSHOT)
def _snap_truncated(d: Path) -> dict[str, Any]:
    path = fx.truncate(_good_snapshot(d / "cut.h5"), 0.5)
    return _fail(path, _info(path), "truncated", what="a snapshot cut in half")


@_case(SNAPSHOT)
def _snap_not_hdf5(d: Path) -> dict[str, Any]:
    path = d / "notes.h5"
    path.write_text("this is a text file, not HDF5\n" * 20)
    return _fail(path, _info(path), "not an HDF5 file", what="a text file named .h5")


@_case(SNAPSHOT)
def _snap_random_bytes(d: Path) -> dict[str, Any]:
    path = d / "random.h5"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return _fail(path, _info(path), "not an HDF5 file", what="random bytes named .h5")


@_case(SNAPSHOT)
def _snap_empty(d: Path) -> dict[str, Any]:
    path = d / "empty.h5"
    path.touch()
    return _fail(path, _info(path), "empty (0 bytes)", what="an empty .h5 file")


@_case(SNAPSHOT)
def _snap_folder(d: Path) -> dict[str, Any]:
    path = d / "run.h5"
    path.mkdir()
    return _fail(path, _info(path), "folder", what="a folder named run.h5")


@_case(SNAPSHOT)
def _snap_fifo(d: Path) -> dict[str, Any]:
    if not hasattr(os, "mkfifo"):
        raise Skip("no FIFOs here")
    path = d / "pipe.h5"
    os.mkfifo(path)
    return _fail(path, _info(path), "not a regular file", what="a named pipe called pipe.h5")


# ---------------------------------------------------------------------------- geometry
@_case(DATASET)
def _ds_geometry_labels_beyond_the_head(d: Path) -> dict[str, Any]:
    x, y = _xy(20)
    path = _npz(d / "twelve-classes.npz", x=x, y=np.arange(20) % 12)
    return _fail(path, ["geometry", "demo", path, "--no-cache"], "out of range (10, 11)",
                 "expected [0, 10)", what="protoview geometry: labels 10 and 11 for a 10-class head")


@_case(OPTION)
def _opt_geometry_versus_other_data(d: Path) -> dict[str, Any]:
    argv = ["geometry", "demo", "demo:noise:3", "--versus", "demo:linear", "--versus-data",
            "demo:blur:3", "--no-cache"]
    return _option_fail(argv, "--versus-data", "is not the same data", "same samples in the same order",
                        what="CKA between the noise and the blur data (same size, other samples)")


@_case(DATASET)
def _opt_geometry_versus_other_size(d: Path) -> dict[str, Any]:
    x, y = _xy(20)
    path = _npz(d / "twenty.npz", x=x, y=y)
    argv = ["geometry", "demo", "demo:noise:3", "--versus", "demo:linear", "--versus-data", path,
            "--no-cache"]
    return _option_fail(argv, "--versus-data", "has 20 samples", "the first side has 539",
                        what="CKA between 539 demo images and a 20-image .npz")
# ---------------------------------------------------------------------------- timelines
@_case(CHECKPOINT)
def _ckpt_timeline_two_architectures(d: Path) -> dict[str, Any]:
    from tests._timeline_fixtures import write_demo_format

    wide = write_demo_format(d / "a_wide.pt", feature_dim=64)
    narrow = write_demo_format(d / "b_narrow.pt", feature_dim=32)
    return _fail([narrow, wide], ["timeline", wide, narrow, "demo"],
                 "featurizer of other layers", "one architecture",
                 what="a timeline of two architectures (64-d and 32-d demo CNNs)")


@_case(CHECKPOINT)
def _ckpt_timeline_head_misses_classes(d: Path) -> dict[str, Any]:
    from tests._timeline_fixtures import write_demo_format

    path = write_demo_format(d / "task_1.pt", classes=7)
    out = d / "t.h5"
    return _fail(path, ["timeline", path, "demo", "--out", out], "largest head", "7 classes",
                 what="a timeline whose largest head has 7 of the data's 10 classes", out=out)


@_case(CHECKPOINT)
def _ckpt_timeline_glob_matches_nothing(d: Path) -> dict[str, Any]:
    glob = d / "epoch_*.pt"
    return _fail(glob, ["timeline", glob, "demo"], "matches no file",
                 what="a glob of checkpoints that matches no file")


@_case(OPTION)
def _opt_timeline_tasks_do_not_add_up(d: Path) -> dict[str, Any]:
    from tests._timeline_fixtures import ARCH, write_pycil_tasks

    paths = write_pycil_tasks(d, steps=1)  # heads of 4, 7, 10 classes
    return _option_fail(["timeline", *paths, "demo", "--arch", ARCH, "--tasks", "4,4"],
                        "--tasks", "adds up to 8 classes", "the largest head holds 10",
                        what="task sizes 4,4 for PyCIL task checkpoints whose heads grow to 10")


@_case(OPTION)
def _opt_timeline_tasks_without_a_growing_head(d: Path) -> dict[str, Any]:
    from tests._timeline_fixtures import ARCH, write_epochs

    paths = write_epochs(d, epochs=2, steps=1)
    return _option_fail(["timeline", *paths, "demo", "--arch", ARCH, "--tasks", "5,5"],
                        "--tasks", "every checkpoint's head holds 10 classes",
                        what="task sizes for the epochs of a plain run (a head that never grows)")


# ---------------------------------------------------------------------------- script
def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], "\nusage: make_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    cases = build(argv[0])
    for case in cases:
        answer = "works" if case.ok else f"fails: {' / '.join(case.expect)}"
        print(f"{case.kind:10} {case.name:40} {case.what} -> {answer}\n{'':11}{case.command}")
    print(f"{len(cases)} cases in {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
