"""The divergence guard of an adaptation step: a copy of the state before the step (when
the model is small enough to copy), and a step whose loss, logits or weights are NaN or
infinite undone and refused with one error naming ``lr``."""

from __future__ import annotations

import numpy as np
import torch

from protoview.core.adapt.base import Adapter, AdapterSnapshot
from protoview.errors import DatasetError, ParameterError, ProtoviewError


def guarded_step(
    adapter: Adapter, x: torch.Tensor, step: int, guard_max_bytes: int, where: str
) -> torch.Tensor:
    """``adapter.step(x)``, undone when it diverged (:func:`divergence`) and the state
    (at most ``guard_max_bytes``) could be copied before it; a batch the model cannot take
    is a :class:`DatasetError` naming ``where``."""
    snap: AdapterSnapshot | None = None
    if adapter.state_bytes() <= guard_max_bytes:
        snap = adapter.snapshot()
    try:
        logits = adapter.step(x)
    except ParameterError as exc:
        if exc.where != "batch":
            raise
        raise DatasetError(where, exc.problem) from exc
    problem = divergence(adapter, logits)
    if problem is None:
        return logits
    if snap is not None:
        adapter.restore(snap)
        tail = "lower the learning rate or reset"
    else:
        tail = "the model is too large to keep a copy, so reset it and lower the learning rate"
    raise ProtoviewError("lr", f"adaptation diverged at step {step} ({problem}); {tail}")


def divergence(adapter: Adapter, logits: torch.Tensor) -> str | None:
    """What diverged in the step that gave ``logits``, or None."""
    loss = adapter.last_loss
    # NaN over an empty selection (PL's confident mask, EATA's and SAR's reliable samples)
    # is a mean of nothing, not divergence; the logits and weights are still checked.
    if loss is not None and not np.isfinite(loss) and adapter.last_selected != 0:
        return f"loss is {loss}"
    if not bool(torch.isfinite(logits).all()):
        return "logits are NaN or infinite"
    if not adapter.state_is_finite():
        return "weights are NaN or infinite"
    return None
