"""The adaptation methods as the window lists them: the core's method registry
(:mod:`protoview.core.adapt.registry`, torch-free until a method's class is needed)."""

from protoview.core.adapt.params import Param
from protoview.core.adapt.registry import (
    DEFAULT_METHOD,
    method_names,
    method_summary,
    window_params,
)

__all__ = ["DEFAULT_METHOD", "Param", "method_names", "method_summary", "window_params"]
