"""The adaptation methods as the window lists them: the core's method registry
(:mod:`protoview.core.adapt.registry`, torch-free until a method's class is needed)."""

from protoview.core.adapt.params import Param
from protoview.core.adapt.registry import (
    DEFAULT_METHOD,
    method_names,
    method_summary,
    window_params,
)


def needs_source(name: str) -> str:
    """What method ``name`` needs beyond the test stream ("" for nothing; RMT: labelled
    source data), as its class declares it."""
    from protoview.core.adapt.registry import method_class

    return str(method_class(name).needs_source)


__all__ = [
    "DEFAULT_METHOD", "Param", "method_names", "method_summary", "needs_source", "window_params",
]
