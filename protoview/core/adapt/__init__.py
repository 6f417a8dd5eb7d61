"""Test-time adaptation: TSD and the baselines.

``make_adapter(method, model, **params)`` builds one ("tsd", "tent", "t3a", "bn", "none");
``AdaptRun`` walks it over a dataset in seeded batches and records each step.
"""

from protoview.core.adapt.base import Adapter, SupportMemory, softmax_entropy
from protoview.core.adapt.baselines import (
    METHODS,
    T3A,
    BNAdapt,
    NoAdapt,
    Tent,
    adapter_defaults,
    make_adapter,
)
from protoview.core.adapt.run import AdaptRun, StepRecord
from protoview.core.adapt.tsd import TSDAdapter, TSDConfig


def warm_up() -> float:
    """Take one Adam step on a dummy parameter; returns seconds taken.

    torch's first optimizer step imports torch._dynamo and sympy (~2 s here, holding the
    interpreter): pay it at start-up on the worker, not inside the user's first Step.
    """
    import time

    import torch

    t0 = time.perf_counter()
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=1e-3)
    p.sum().backward()
    opt.step()
    return time.perf_counter() - t0

__all__ = [
    "METHODS",
    "T3A",
    "AdaptRun",
    "Adapter",
    "BNAdapt",
    "NoAdapt",
    "StepRecord",
    "SupportMemory",
    "TSDAdapter",
    "TSDConfig",
    "Tent",
    "adapter_defaults",
    "make_adapter",
    "softmax_entropy",
    "warm_up",
]
