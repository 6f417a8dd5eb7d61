"""Reading a checkpoint file safely: sniff the container, then load it without running code.

Containers: a ``torch.save`` zip archive, a legacy (pre-1.6) ``torch.save`` pickle stream, a
TorchScript zip archive, a safetensors file. ``torch.save`` files are ALWAYS opened with
``weights_only=True`` first; only a file that needs pickled code AND ``trust=True`` is
opened again with ``weights_only=False``. TorchScript archives hold TorchScript code (run by
the TorchScript interpreter, not Python's unpickler) and are loaded with ``torch.jit.load``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protoview.errors import CheckpointError, UntrustedCodeError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_TRUST_HINT = "it was not loaded. If you trust this file, pass --trust-checkpoint"


def _harmless_globals() -> list[Any]:
    """Plain data types that training scripts often store next to the weights.

    ``argparse.Namespace`` (saved ``args``) and numpy scalars / arrays (saved metrics). Their
    unpickling builds data only; the objects inside still go through torch's restricted
    unpickler.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]

    dtypes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)]
    return [argparse.Namespace, multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


@dataclass
class RawCheckpoint:
    """What a file held, before any interpretation.

    container: ``"torch.save"``, ``"torch.save (legacy)"``, ``"TorchScript"``,
    ``"safetensors"`` or ``"pickle"``; payload: the loaded object (dict, nn.Module,
    ScriptModule, or a flat dict of tensors for safetensors); metadata: safetensors'
    string metadata; trusted_code: True when the file was unpickled with code allowed.
    """

    container: str
    payload: Any
    metadata: dict[str, str] | None = None
    trusted_code: bool = False
    notes: list[str] = field(default_factory=list)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as 64 lowercase hex digits (read in 1 MiB blocks)."""
    check_readable_file(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read: {exc.strerror or exc}") from None
    return digest.hexdigest()


def check_readable_file(path: str | os.PathLike[str]) -> Path:
    """The path as a ``Path`` if it is a non-empty regular file, else a CheckpointError."""
    file = Path(path).expanduser()
    if not file.exists():
        raise CheckpointError(path, "file not found")
    if file.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    if not file.is_file():
        raise CheckpointError(path, "is not a regular file")
    if file.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty (0 bytes)")
    return file


def sniff_container(path: str | os.PathLike[str]) -> str:
    """Which container a file is, from its first bytes and (for zips) its entry names.

    Returns one of ``"torch.save"``, ``"TorchScript"``, ``"torch.save (legacy)"``,
    ``"pickle"``, ``"safetensors"``; raises CheckpointError for anything else.
    """
    file = check_readable_file(path)
    size = file.stat().st_size
    try:
        with open(file, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read: {exc.strerror or exc}") from None
    if head[:4] == b"PK\x03\x04":
        return _zip_kind(path)
    if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 31):
        return "safetensors"
    if head[:1] == b"\x80":
        return "torch.save (legacy)" if _starts_with_legacy_magic(file) else "pickle"
    if str(path).lower().endswith(".safetensors"):
        raise CheckpointError(path, "is not a valid safetensors file (bad header)")
    if _looks_like_text(head):
        raise CheckpointError(path, "is a text file, not a checkpoint (expected torch.save, TorchScript or safetensors)")
    raise CheckpointError(
        path, f"is not a checkpoint: unknown file type ({size} bytes that are none of torch.save, TorchScript, safetensors)"
    )


def _zip_kind(path: str | os.PathLike[str]) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(path, f"is a truncated or damaged zip archive ({exc}); re-copy or re-save the checkpoint") from None
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "TorchScript"
    if any(n.endswith("data.pkl") for n in names):
        return "torch.save"
    raise CheckpointError(path, "is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")


def _starts_with_legacy_magic(file: Path) -> bool:
    try:
        with open(file, "rb") as handle:
            for count, (_, arg, _) in enumerate(pickletools.genops(handle)):
                if arg == _LEGACY_MAGIC:
                    return True
                if count >= 3:
                    break
    except Exception:  # noqa: BLE001 - garbage after a 0x80 byte: not the legacy magic
        pass
    return False


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def read_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> RawCheckpoint:
    """Load a checkpoint file's content onto the CPU without running untrusted code.

    Raises
    ------
    CheckpointError: missing / empty / damaged / unknown files, and files that need
    pickled code when ``trust`` is False (nothing of their code runs).
    """
    kind = sniff_container(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "TorchScript":
        return RawCheckpoint(kind, _read_torchscript(path))
    if kind == "pickle":
        if not trust:
            raise UntrustedCodeError(
                path, f"is a plain Python pickle (not written by torch.save); unpickling it can run code, so {_TRUST_HINT}"
            )
        return RawCheckpoint(kind, _unpickle_trusted(path, plain=True), trusted_code=True)
    return _read_torch_save(path, kind, trust)


def _read_torch_save(path: str | os.PathLike[str], kind: str, trust: bool) -> RawCheckpoint:
    try:
        with torch.serialization.safe_globals(_harmless_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4" notices etc.
            payload = torch.load(path, map_location="cpu", weights_only=True)
        return RawCheckpoint(kind, payload)
    except Exception as exc:  # noqa: BLE001 - classified below
        failure = exc
    code = _pickled_code(path, kind, failure)
    if code is None:
        problem = _newer_format(failure) or f"is a damaged or truncated {kind} file ({_short(failure)})"
        raise CheckpointError(path, problem) from None
    if not trust:
        raise UntrustedCodeError(path, f"contains pickled Python code ({code}); {_TRUST_HINT}") from None
    raw = RawCheckpoint(kind, _unpickle_trusted(path, plain=False), trusted_code=True)
    raw.notes.append(f"loaded with pickled code allowed (--trust-checkpoint); it uses {code}")
    return raw


def _pickled_code(path: str | os.PathLike[str], kind: str, failure: Exception) -> str | None:
    """The unsafe globals a file needs, or None when the failure is damage, not code."""
    message = str(failure)
    if "unsupported global" not in message.lower():
        return None
    if kind == "torch.save":
        try:
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in _harmless_globals()}
            names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n not in allowed]
            # torch lists them in no fixed order; name the user's own classes first
            names.sort(key=lambda n: (n.startswith(("torch.", "collections.", "builtins.")), n))
        except Exception:  # noqa: BLE001 - unreadable pickle: damaged
            return None
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return ", ".join(names[:5]) + more if names else None
    if not _legacy_pickles_complete(path):
        return None  # a truncated stream reports cut-off names as "unsupported globals"
    found = re.findall(r"GLOBAL ([\w.]+)", message)
    return ", ".join(dict.fromkeys(found)) or "unknown globals"


def _legacy_pickles_complete(path: str | os.PathLike[str]) -> bool:
    """Whether the legacy stream's 5 pickles (magic, protocol, sys info, object, keys) parse."""
    try:
        with open(path, "rb") as handle:
            for _ in range(5):
                for _op in pickletools.genops(handle):
                    pass
    except Exception:  # noqa: BLE001 - any parse failure means damage
        return False
    return True


def _unpickle_trusted(path: str | os.PathLike[str], *, plain: bool) -> Any:
    """Unpickle with code allowed (only reached with ``trust=True``)."""
    try:
        if plain:
            with open(path, "rb") as handle:
                return pickle.load(handle)  # noqa: S301 - the user trusted this file
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(
            path, f"its pickled code refers to something that cannot be imported here ({_short(exc)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - damaged file or failing code
        raise CheckpointError(path, f"could not be unpickled ({_short(exc)})") from None


def _read_torchscript(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated but still reads archives
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError for any bad archive
        problem = _newer_format(exc) or f"is a damaged TorchScript archive ({_short(exc)})"
        raise CheckpointError(path, problem) from None


def _read_safetensors(path: str | os.PathLike[str]) -> RawCheckpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError, ...
        raise CheckpointError(path, f"is a damaged or truncated safetensors file ({_short(exc)})") from None
    return RawCheckpoint("safetensors", tensors, metadata=dict(metadata) if metadata else None)


def _newer_format(exc: BaseException) -> str | None:
    """The problem, when torch refused an archive for its (newer) file format version."""
    found = re.search(r"file with version (\d+), but the maximum supported version for reading is (\d+)", str(exc))
    if found is None:
        return None
    return (
        f"was written in PyTorch file format version {found[1]}, newer than this torch "
        f"{torch.__version__} reads (up to {found[2]}); upgrade torch, or re-save it with this version"
    )


def _short(exc: BaseException) -> str:
    """A one-line, bounded description of an exception."""
    text = " ".join(str(exc).split())
    text = re.sub(r"\[enforce fail at [^\]]*\]\s*\.?\s*", "", text)  # torch's C++ source location
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text[text.index(marker) + len(marker):].strip()
    text = text.split(" Check the documentation")[0]
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
