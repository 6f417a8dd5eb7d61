"""The one place where protoview picks a compute device (``cuda`` > ``mps`` > ``cpu``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_ENV = "PROTOVIEW_DEVICE"


def pick_device(override: str | None = None) -> torch.device:
    """Return the device to compute on.

    Parameters
    ----------
    override:
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``None``. When ``None`` the
        environment variable ``PROTOVIEW_DEVICE`` is consulted, then the best available
        device is chosen: CUDA, then Apple MPS, then the CPU.
    """
    import torch

    from protoview.errors import ParameterError

    choice = override or os.environ.get(_ENV) or None
    if choice:
        try:
            dev = torch.device(choice)
        except RuntimeError as exc:
            raise ParameterError("--device", f"unknown device {choice!r} ({exc})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ParameterError("--device", f"{choice!r} asked for, but CUDA is not available here")
        if dev.type == "mps" and not _mps_available():
            raise ParameterError("--device", f"{choice!r} asked for, but MPS is not available here")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
