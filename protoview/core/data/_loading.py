"""The machinery under ``extract_features``: ordered batches, and an OOM-safe forward pass.

In-memory datasets (with ``get_batch``) are sliced directly, on the target device; others
go through a ``DataLoader`` whose workers never raise for a bad image file (datasets with
``read_item`` report the problem instead). :class:`BatchRunner` runs featurizer +
classifier under autocast on CUDA and halves its chunk size when CUDA runs out of memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from protoview.core.model import SplitModel
from protoview.errors import ProtoviewError


def default_num_workers(dataset: Any, device: torch.device | str | None = None) -> int:
    """DataLoader workers: 0 for in-memory datasets (``get_batch``) and when computing on
    the CPU (decoding is then small next to the model: resnet18 over a 224 px JPEG folder on
    2 cores ran at 18-22 img/s with 0 or 1 worker alike, within run-to-run noise, and a
    worker only competes with torch's threads); else ``min(4, cpu_count - 1)`` so that image
    decoding keeps up with a GPU. A decoded-image cache (``needs_decoding``) counts as
    in memory once every image was decoded; its first pass gets the workers."""
    in_memory = hasattr(dataset, "get_batch") and not getattr(dataset, "needs_decoding", False)
    if in_memory or (device is not None and torch.device(device).type == "cpu"):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class _CheckedItems(Dataset):
    """Wraps a dataset with ``read_item`` so that decode failures travel back from workers."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        return self.dataset.read_item(index)


def iterate_batches(
    dataset: Any, batch_size: int, num_workers: int | None, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
    """Yield ``(x, y, problems)`` batches in dataset order."""
    pin = device.type == "cuda"
    workers = default_num_workers(dataset, device) if num_workers is None else num_workers
    if hasattr(dataset, "get_batch") and workers == 0:
        take_problems = getattr(dataset, "take_problems", None)  # a decoded-image cache's
        for start in range(0, len(dataset), batch_size):
            x, y = dataset.get_batch(slice(start, start + batch_size), device=device)
            yield x, y, take_problems() if callable(take_problems) else []
        return
    items = _CheckedItems(dataset) if hasattr(dataset, "read_item") else dataset
    loader = DataLoader(
        items, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin
    )
    iterator = iter(loader)
    try:
        for batch in iterator:
            x, y = batch[0], torch.as_tensor(batch[1])
            yield x, y, [p for p in batch[2] if p] if len(batch) > 2 else []
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


# Messages of errors that mean the GPU itself is gone or broken (driver reset, device
# unplugged or fallen off the bus, ECC failure), not a bug in the model.
_DEVICE_LOST = (
    "no cuda gpus are available", "cuda-capable device", "cudaerrordevicesunavailable",
    "devices unavailable", "device not ready", "unspecified launch failure",
    "uncorrectable ecc", "gpu has fallen off the bus", "cuda driver", "device is lost",
)


def is_device_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the accelerator is gone (so the CPU can take over)."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in _DEVICE_LOST)


class BatchRunner:
    """Runs featurizer + classifier on chunks, halving the chunk on CUDA out-of-memory and
    moving to the CPU (once, with a note) when the GPU fails."""

    def __init__(self, model: SplitModel, device: torch.device, amp: bool, batch_size: int) -> None:
        self.model, self.device, self.chunk = model, device, batch_size
        # an encoder without a head has no predictions to check a lower precision against:
        # its features stay float32
        headless = not getattr(model, "has_head", True)
        self.amp_dtype = torch.float16 if amp and device.type == "cuda" and not headless else None
        self._precision_checked = self.amp_dtype is None
        self.notes: list[str] = []
        self.fell_back = ""  # the note saying the GPU failed and the CPU took over, if it did

    def check_precision(self, x: torch.Tensor) -> None:
        """Choose the autocast dtype on this first batch: bfloat16 / float16 only where
        their predictions agree with float32's (:func:`protoview.core.accel.choose_precision`)."""
        from protoview.core.accel import choose_precision

        self._precision_checked = True
        precision = choose_precision(lambda b: self._forward(b, None)[1], x, self.device)
        self.amp_dtype = precision.dtype
        self.notes.append(precision.note)

    def probe_batch_size(self, sample: torch.Tensor) -> int:
        """A batch size from a memory probe on CUDA (:func:`protoview.core.accel.probe_batch_size`)."""
        from protoview.core.accel import probe_batch_size

        x = sample[None].to(self.device)
        if x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        size = probe_batch_size(lambda b: self._forward(b, self.amp_dtype), x)
        self.chunk = size
        self.notes.append(f"batch size {size} chosen by a memory probe")
        return size

    def _to_cpu(self, exc: BaseException) -> None:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        self.fell_back = f"the {self.device} device failed ({first}); continued on the CPU"
        self.notes.append(self.fell_back)
        self.device, self.amp_dtype = torch.device("cpu"), None
        self.model.to(self.device)

    def _forward(
        self, x: torch.Tensor, amp_dtype: torch.dtype | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = (
            torch.autocast("cuda", dtype=amp_dtype)
            if amp_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            features = self.model.featurizer(x)
            if features.ndim > 2:
                features = features.flatten(1)
            logits = self.model.classifier(features)
        if isinstance(logits, dict):  # PyCIL-style heads return {"logits": ...}
            logits = logits["logits"]
        return features.float(), logits.float()

    def _forward_checked(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self._forward(x, self.amp_dtype)
        if self.amp_dtype is not None and not (
            torch.isfinite(features).all() and torch.isfinite(logits).all()
        ):
            self.notes.append("float16 overflowed in a batch; that batch was recomputed in float32")
            features, logits = self._forward(x, None)
        return features, logits

    def run(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        memory_format = (
            torch.channels_last
            if self.device.type == "cuda" and x.ndim == 4
            else torch.contiguous_format
        )
        x = x.to(self.device, non_blocking=True, memory_format=memory_format)
        if not self._precision_checked:
            self.check_precision(x[: min(len(x), 256)])
        parts, start = [], 0
        while start < x.shape[0]:
            try:
                features, logits = self._forward_checked(x[start : start + self.chunk])
            except torch.OutOfMemoryError:
                if self.chunk == 1:
                    raise ProtoviewError(
                        str(self.device),
                        "ran out of memory even at batch size 1; free memory or use --device cpu",
                    ) from None
                self.notes.append(
                    f"CUDA ran out of memory at batch size {self.chunk}; continued with {self.chunk // 2}"
                )
                self.chunk //= 2
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            except RuntimeError as exc:
                if not is_device_lost(exc) or self.fell_back:
                    raise
                self._to_cpu(exc)
                x = x.to(self.device)
                continue
            parts.append((features.cpu().numpy(), logits.cpu().numpy()))
            start += features.shape[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
