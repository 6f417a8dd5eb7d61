"""Image folders decoded once per preprocessing: a uint8 cache, in memory or on disk.

Decoding and resizing a JPEG costs about 1–2.5 ms per core, every time a pass reads it;
with a live map the whole set is read after every few steps. :class:`DecodedImages` wraps
an image folder (anything with ``read_pixels(i)``, ``identity()`` and ``transform``): the
first read of an image decodes and resizes it once and stores its pixels as uint8
``(C, H, W)``; later reads are a copy and the normalisation, on the compute device when
given (uint8 over the bus: 4x less than float32).

Exact: an image is stored as uint8 only when its decoded pixels are exactly ``k / 255``
(every 8-bit image); others (16-bit, float TIFF) keep their float32 pixels in this
process. So a read from the cache gives the same model input, bit for bit, as decoding the
file (tested). An unreadable file reads as a blank image (zeros after normalisation, as
``read_item`` gives), and its problem is reported once.

Storage (``storage=``):

- ``"memory"``: an anonymous shared mapping. DataLoader workers (forked) write into it, so
  a first pass with workers fills the cache of the session;
- ``"disk"``: a file ``<folder>/<key>.u8`` (``PROTOVIEW_DECODED_DIR``, else
  ``~/.cache/protoview/decoded``), the key a sha256 of the dataset's identity (paths, sizes,
  modification times) and ``transform.key()``: kept across sessions, so a later session
  reads instead of decoding. Space is reserved when the file is made (a full disk fails
  there, with a note, and the cache stays in memory);
- ``"auto"``: memory when the cache needs at most :func:`memory_budget` bytes, else disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from protoview.core.data._pixels import normalise
from protoview.errors import ParameterError

STORAGES = ("auto", "memory", "disk", "off")
DIR_ENV = "PROTOVIEW_DECODED_DIR"
MEMORY_ENV = "PROTOVIEW_DECODED_MEMORY"
_VERSION = "protoview-decoded/1"
_MISSING, _STORED, _UNREADABLE, _FLOAT = 0, 1, 2, 3
# The float32 value of each uint8 level, as the decoder computes it (float32(k) * (1/255)).
_LEVELS = np.arange(256, dtype=np.float32) * (1.0 / 255.0)


def decoded_folder() -> Path:
    """``$PROTOVIEW_DECODED_DIR``, else ``~/.cache/protoview/decoded``."""
    chosen = os.environ.get(DIR_ENV) or Path.home() / ".cache" / "protoview" / "decoded"
    return Path(chosen).expanduser().absolute()


def memory_budget() -> int:
    """Bytes the ``auto`` storage keeps in memory: ``$PROTOVIEW_DECODED_MEMORY`` (bytes),
    else a quarter of the machine's memory, at most 4 GiB."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        try:
            return max(0, int(text))
        except ValueError:
            raise ParameterError(MEMORY_ENV, f"must be a number of bytes, got {text!r}") from None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(min(4 * 2**30, total // 4))


def decoded_cache_key(dataset: Any) -> str:
    """sha256 hex of the cache version, ``dataset.identity()`` and ``transform.key()``."""
    digest = hashlib.sha256()
    for part in (_VERSION, dataset.identity(), dataset.transform.key()):
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    return digest.hexdigest()


def decoded_images(dataset: Any, storage: str = "auto") -> Any:
    """``dataset`` behind a :class:`DecodedImages` cache when it decodes files
    (``read_pixels``) to one size, else ``dataset`` itself; ``storage="off"`` never wraps
    (neither does a preprocessing whose input size depends on the image)."""
    if storage not in STORAGES:
        raise ParameterError(
            "decoded", f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}"
        )
    if storage == "off" or not callable(getattr(dataset, "read_pixels", None)):
        return dataset
    if getattr(getattr(dataset, "transform", None), "input_size", None) is None:
        return dataset
    return DecodedImages(dataset, storage)


class DecodedImages(Dataset):
    """``dataset`` with every image decoded once (see the module docstring).

    Everything else (``labels``, ``class_names``, ``identity()``, ``thumbnail(i)``, ...)
    is the wrapped dataset's. ``storage`` is what was used (``memory`` / ``disk``);
    ``notes`` says why when it differs from what was asked.
    """

    def __init__(self, dataset: Any, storage: str = "auto", folder: str | os.PathLike | None = None):
        if storage not in STORAGES[:3]:
            raise ParameterError(
                "decoded", f"unknown storage {storage!r}; choose auto, memory or disk"
            )
        self.dataset = dataset
        self.transform = dataset.transform
        n = len(dataset)
        self.shape = (n, self.transform.channels, *self.transform.input_size)
        self.nbytes = int(np.prod(self.shape))
        self.key = decoded_cache_key(dataset)
        self.notes: list[str] = []
        self.path: Path | None = None
        if storage == "auto":
            storage = "memory" if self.nbytes <= memory_budget() else "disk"
        self._floats: dict[int, np.ndarray] = {}
        self._problems: list[str] = []
        self.storage = storage
        if storage == "disk":
            try:
                self._open_file(Path(folder) if folder is not None else decoded_folder())
                return
            except OSError as exc:
                self.notes.append(f"decoded images kept in memory: the disk cache failed ({exc})")
                self.storage = "memory"
        self._open_memory()

    # ---- storage ------------------------------------------------------------------------
    def _open_memory(self) -> None:
        buffer = mmap.mmap(-1, self.nbytes + self.shape[0])  # shared with forked workers
        self._buffer = buffer
        self._bind(np.frombuffer(buffer, np.uint8))

    def _open_file(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.key}.u8"
        size = self.nbytes + self.shape[0]
        header = folder / f"{self.key}.json"
        if not (path.is_file() and path.stat().st_size == size):
            with open(path, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)  # space now, not a SIGBUS later
            header.write_text(json.dumps({
                "format": _VERSION, "shape": list(self.shape),
                "identity": self.dataset.identity()[:2000],
                "transform": self.transform.key(),
            }))
        self.path = path
        self._bind(np.memmap(path, np.uint8, mode="r+", shape=(size,)))

    def _bind(self, flat: np.ndarray) -> None:
        self._flat = flat
        self.pixels = flat[: self.nbytes].reshape(self.shape)
        self.status = flat[self.nbytes :]

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_buffer", "_flat", "pixels", "status")}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.storage == "disk" and self.path is not None:  # a spawned worker shares the file
            self._bind(np.memmap(self.path, np.uint8, mode="r+"))
        else:  # a spawned worker cannot share the mapping: it decodes for itself
            self._open_memory()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "dataset" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def needs_decoding(self) -> bool:
        """Whether some image was never decoded (the first pass may use workers)."""
        return bool((self.status == _MISSING).any())

    @property
    def decoded_count(self) -> int:
        return int((self.status != _MISSING).sum())

    def _decode(self, index: int) -> str:
        pixels, _label, problem = self.dataset.read_pixels(index)
        if pixels is None:
            self.status[index] = _UNREADABLE
            return problem
        levels = np.rint(pixels * 255.0)
        if levels.min(initial=0) >= 0 and levels.max(initial=0) <= 255:
            as_bytes = levels.astype(np.uint8)
            if np.array_equal(_LEVELS[as_bytes], pixels):
                self.pixels[index] = as_bytes
                self.status[index] = _STORED
                return ""
        self._floats[index] = np.asarray(pixels, np.float32)
        self.status[index] = _FLOAT
        return ""

    def _ensure(self, indices: np.ndarray) -> None:
        status = self.status[indices]
        todo = indices[(status == _MISSING) | (status == _FLOAT)]
        for i in todo.tolist():
            if self.status[i] == _MISSING or i not in self._floats:
                problem = self._decode(i)
                if problem:
                    self._problems.append(problem)

    def take_problems(self) -> list[str]:
        """Problems of the files decoded here since the last call (each reported once)."""
        problems, self._problems = self._problems, []
        return problems

    def get_batch(
        self, indices: Any, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs for several images (decoding the ones never read).

        Returns x (B, C, H, W) float32 normalised on ``device`` (default CPU; on CUDA the
        uint8 pixels are copied there through pinned memory) and y (B,) int64 on the CPU.
        """
        idx = (np.arange(len(self))[indices] if isinstance(indices, slice)
               else np.asarray(indices, np.int64).reshape(-1))
        self._ensure(idx)
        raw = torch.from_numpy(self.pixels[idx])
        if device is not None and torch.device(device).type == "cuda":
            raw = raw.pin_memory().to(device, non_blocking=True)
        elif device is not None:
            raw = raw.to(device)
        x = normalise(raw.to(torch.float32) * (1.0 / 255.0), self.transform)
        status = self.status[idx]
        for j in np.flatnonzero(status != _STORED).tolist():
            i = int(idx[j])
            if status[j] == _FLOAT:
                pixels = torch.from_numpy(self._floats[i]).to(x.device)
                x[j] = normalise(pixels[None], self.transform)[0]
            else:  # unreadable: the mean colour, as read_item gives
                x[j] = 0.0
        labels = np.asarray(self.dataset.labels)[idx]
        return x, torch.from_numpy(np.ascontiguousarray(labels, np.int64))

    def read_item(self, index: int) -> tuple[torch.Tensor, int, str]:
        """Like the folder's ``read_item`` (never raises for a bad file), through the cache:
        in a DataLoader worker the decoded pixels land in the shared storage."""
        index = int(index) % len(self)
        problem = ""
        if self.status[index] == _MISSING or (
            self.status[index] == _FLOAT and index not in self._floats
        ):
            problem = self._decode(index)
        x, y = self.get_batch([index])
        return x[0], int(y[0]), problem

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y, _ = self.read_item(index)
        return x, y

    def close(self) -> None:
        """Release the storage (the disk file stays for the next session)."""
        for name in ("pixels", "status", "_flat"):
            self.__dict__.pop(name, None)
        buffer = self.__dict__.pop("_buffer", None)
        if buffer is not None:
            with contextlib.suppress(BufferError):
                buffer.close()
