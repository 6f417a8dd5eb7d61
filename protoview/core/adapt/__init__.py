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
]
