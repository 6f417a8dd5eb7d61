"""Test-time adaptation: TSD and the baselines.

``make_adapter(method, model, **params)`` builds one; the methods are listed once, in
:mod:`~protoview.core.adapt.registry` (``method_names()``), each class declaring its
parameters (``method_params(method)``, ``method_defaults(method)``: see
:mod:`~protoview.core.adapt.params`); ``AdaptRun`` walks it over a dataset in seeded
batches and records each step.

The names below are imported on first use, so that ``protoview.core.adapt.registry`` and
``protoview.core.adapt.params`` stay free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Adapter": "base",
    "SupportMemory": "base",
    "softmax_entropy": "base",
    "T3A": "baselines",
    "BNAdapt": "baselines",
    "NoAdapt": "baselines",
    "Tent": "baselines",
    "AdaptRun": "run",
    "StepRecord": "run",
    "TSDAdapter": "tsd",
    "TSDConfig": "tsd",
    "PseudoLabel": "pseudo_label",
    "PseudoLabelClassifier": "pseudo_label",
    "SHOTIM": "shot",
    "EATA": "eata",
    "RDumb": "rdumb",
    "RPL": "rpl",
    "BNAlpha": "bn_alpha",
    "BNEMA": "bn_alpha",
    "SAR": "sar",
    "ROID": "roid",
    "CMF": "cmf",
    "LAME": "lame",
    "AdaContrast": "adacontrast",
    "DeYO": "deyo",
    "MEMO": "memo",
    "RoTTA": "rotta",
    "CoTTA": "cotta",
    "Param": "params",
    "check_params": "registry",
    "make_adapter": "registry",
    "method_class": "registry",
    "method_defaults": "registry",
    "method_names": "registry",
    "method_params": "registry",
    "method_summary": "registry",
    "register": "registry",
    "unregister": "registry",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


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


__all__ = [*sorted(_WHERE), "warm_up"]
