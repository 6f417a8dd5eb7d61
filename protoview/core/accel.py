"""Faster compute on CUDA: mixed precision checked against float32, channels-last inputs,
and a batch size chosen by a memory probe. Nothing here changes what runs on the CPU.

- :func:`choose_precision` runs a probe batch in float32 and under autocast (bfloat16,
  then float16) and keeps the first reduced precision whose predictions agree with
  float32's on at least ``min_agreement`` of the probe (all values finite); else float32.
  The result (:class:`Precision`) says what was chosen and how well it agreed.
- :func:`use_channels_last` moves a convolutional model and its inputs to channels-last
  memory (faster convolutions with cuDNN) on CUDA only.
- :func:`batch_size_for_memory` turns the bytes one sample needed in a probe forward pass
  into the largest batch that fits in the free memory with head-room;
  :func:`probe_batch_size` measures those bytes on CUDA.

CPU stays float32, contiguous, and the caller's batch size: the tested path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from protoview.errors import ParameterError

__all__ = [
    "FLOAT32",
    "Precision",
    "amp_candidates",
    "batch_size_for_memory",
    "channels_last_input",
    "choose_precision",
    "probe_batch_size",
    "use_channels_last",
]


@dataclass(frozen=True)
class Precision:
    """How a forward pass runs.

    dtype: None (float32) or the autocast dtype (``torch.bfloat16`` / ``torch.float16``);
    agreement: share of the probe's predictions equal to float32's (1.0 when not checked);
    probe_size: samples in that probe (0: not checked); note: one line for the user.
    """

    dtype: torch.dtype | None = None
    agreement: float = 1.0
    probe_size: int = 0
    note: str = ""

    @property
    def name(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    @property
    def trains(self) -> bool:
        """Whether adaptation steps (with gradients) may run at this precision: bfloat16
        needs no loss scaling; float16 would (its small gradients underflow), so steps
        then stay float32."""
        return self.dtype in (None, torch.bfloat16)

    def autocast(self, device: torch.device | str, training: bool = False):
        """The autocast context for ``device`` (a no-op for float32, or when ``training``
        and this precision does not train)."""
        if self.dtype is None or (training and not self.trains):
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=self.dtype)


FLOAT32 = Precision()


def amp_candidates(device: torch.device | str) -> tuple[torch.dtype, ...]:
    """Reduced precisions worth trying on ``device``, best first: on CUDA bfloat16 (when the
    card supports it) then float16; none on the CPU (stays float32)."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return ()
    return (torch.bfloat16, torch.float16) if torch.cuda.is_bf16_supported() else (torch.float16,)


def choose_precision(
    forward: Callable[[torch.Tensor], torch.Tensor],
    probe: torch.Tensor,
    device: torch.device | str,
    *,
    candidates: Sequence[torch.dtype] | None = None,
    min_agreement: float = 0.99,
) -> Precision:
    """The first of ``candidates`` whose predictions match float32's on ``probe``.

    Parameters
    ----------
    forward: ``x -> logits (B, C)``, called under ``torch.inference_mode``.
    probe: (B, ...) inputs on ``device``; B >= 1.
    device: where ``forward`` runs (autocast's device type).
    candidates: dtypes to try, best first; default :func:`amp_candidates` (none on CPU).
    min_agreement: in (0, 1]; the share of argmax predictions that must equal float32's.

    Returns
    -------
    :class:`Precision`: the chosen dtype (None = float32) with the measured agreement.
    """
    if not 0 < min_agreement <= 1:
        raise ParameterError("min_agreement", f"must be in (0, 1], got {min_agreement!r}")
    if probe.ndim < 1 or probe.shape[0] == 0:
        raise ParameterError("probe", f"needs at least one sample, got shape {tuple(probe.shape)}")
    dev = torch.device(device)
    tried = list(amp_candidates(dev) if candidates is None else candidates)
    if not tried:
        return FLOAT32
    with torch.inference_mode():
        reference = forward(probe).float().argmax(1)
        n = int(reference.shape[0])
        seen = []
        for dtype in tried:
            with torch.autocast(dev.type, dtype=dtype):
                logits = forward(probe).float()
            if not bool(torch.isfinite(logits).all()):
                seen.append(f"{_name(dtype)} overflowed")
                continue
            agreement = float((logits.argmax(1) == reference).float().mean())
            if agreement >= min_agreement:
                note = (f"autocast {_name(dtype)}: {round(agreement * n)} of {n} probe "
                        "predictions equal float32's")
                if seen:
                    note += f" ({'; '.join(seen)})"
                return Precision(dtype, agreement, n, note)
            seen.append(f"{_name(dtype)} agreed on {agreement:.1%}")
    return Precision(None, 1.0, n, f"float32: {'; '.join(seen)} of {n} probe predictions")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def use_channels_last(model: torch.nn.Module, device: torch.device | str) -> bool:
    """Put ``model``'s 4-D weights in channels-last memory on CUDA; True when done (then
    send 4-D inputs with :func:`channels_last_input`). Nothing on other devices."""
    if torch.device(device).type != "cuda":
        return False
    if not any(p.ndim == 4 for p in model.parameters()):
        return False  # no convolutions: nothing to gain
    model.to(memory_format=torch.channels_last)
    return True


def channels_last_input(x: torch.Tensor, on: bool) -> torch.Tensor:
    """``x`` in channels-last memory when ``on`` and 4-D, else unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if on and x.ndim == 4 else x


def batch_size_for_memory(
    bytes_per_sample: float,
    free_bytes: int,
    *,
    headroom: float = 0.6,
    minimum: int = 1,
    maximum: int = 4096,
    multiple: int = 8,
) -> int:
    """The largest batch whose activations fit in ``headroom * free_bytes``.

    Rounded down to a ``multiple`` (when above it) and clamped to ``[minimum, maximum]``.
    """
    if bytes_per_sample <= 0 or free_bytes <= 0:
        return minimum
    size = int(headroom * free_bytes // bytes_per_sample)
    if size >= multiple:
        size -= size % multiple
    return max(minimum, min(maximum, size))


def probe_batch_size(
    forward: Callable[[torch.Tensor], object],
    sample: torch.Tensor,
    *,
    probe: int = 8,
    headroom: float = 0.6,
    maximum: int = 4096,
) -> int:
    """A batch size for ``forward`` on CUDA from one probe pass of ``probe`` copies of
    ``sample`` (1, ...): the peak memory it added, per sample, against the free memory.

    Out of memory during the probe itself halves ``probe`` and tries again (1 at worst).
    """
    if sample.device.type != "cuda":
        raise ParameterError("device", "the memory probe needs a CUDA tensor")
    while True:
        batch = sample.expand(probe, *sample.shape[1:]).contiguous()
        torch.cuda.synchronize(sample.device)
        base = torch.cuda.memory_allocated(sample.device)
        torch.cuda.reset_peak_memory_stats(sample.device)
        try:
            with torch.inference_mode():
                forward(batch)
            torch.cuda.synchronize(sample.device)
        except torch.OutOfMemoryError:
            del batch
            torch.cuda.empty_cache()
            if probe == 1:
                return 1
            probe //= 2
            continue
        peak = torch.cuda.max_memory_allocated(sample.device)
        del batch
        free, _total = torch.cuda.mem_get_info(sample.device)
        per_sample = max(peak - base, 1) / probe
        return batch_size_for_memory(per_sample, free, headroom=headroom, maximum=maximum)

