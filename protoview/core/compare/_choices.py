"""What ``protoview compare`` is asked to run, checked: the seeds, the metric, the method
entries (with their variants) and each entry's parameters. Each mistake is a
:class:`~protoview.errors.ParameterError` naming the option."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from protoview.errors import ParameterError

#: What a table reports: ``accuracy`` (%), or ``error`` = 100 - accuracy (%), the toolkit's.
METRICS = ("accuracy", "error")
#: The largest seed: numpy.random.seed takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
#: The most seeds one table runs (each seed is one run of every method over every shift).
MAX_SEEDS = 1000


def parse_seeds(text: str | Sequence[int], where: str = "seeds") -> list[int]:
    """Seeds from ``"1,2,3"``, ``"1-5"`` (inclusive) or a mix (``"0,10-12"``), or a
    sequence of ints. Raises ParameterError naming ``where`` for an empty or malformed
    list, a negative seed, one above 2**32 - 1, a range that runs backwards, more than
    :data:`MAX_SEEDS` seeds, a seed twice."""
    usage = "expected seeds like 1,2,3 or 1-5"
    spans: list[tuple[int, int]] = []
    if isinstance(text, str):
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or not all(items):
            raise ParameterError(where, f"{usage}, got {text!r}")
        for item in items:
            if item.startswith("-"):
                raise ParameterError(where, f"a seed must be >= 0, got {item}")
            first, dash, last = (p.strip() for p in item.partition("-"))
            if not first.isdecimal() or (dash and not last.isdecimal()):
                raise ParameterError(where, f"{usage}, got {item!r}")
            spans.append((int(first), int(last or first)))
            if spans[-1][1] < spans[-1][0]:
                raise ParameterError(where, f"the range {item} runs backwards")
    else:
        for seed in text:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
                raise ParameterError(where, f"a seed must be a whole number, got {seed!r}")
            spans.append((int(seed), int(seed)))
        if not spans:
            raise ParameterError(where, f"{usage}, got none")
    for low, high in spans:
        for seed in (low, high):
            if not 0 <= seed <= MAX_SEED:
                raise ParameterError(where, f"a seed must be between 0 and {MAX_SEED}, got {seed}")
    if sum(high - low + 1 for low, high in spans) > MAX_SEEDS:
        raise ParameterError(where, f"at most {MAX_SEEDS} seeds (each one a run of every method)")
    seeds = [seed for low, high in spans for seed in range(low, high + 1)]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ParameterError(where, f"seed {twice[0]} is listed twice")
    return seeds


def check_metric(metric: str, where: str = "metric") -> str:
    """``metric`` if it is one of :data:`METRICS`, else ParameterError naming ``where``."""
    if metric not in METRICS:
        raise ParameterError(where, f"unknown metric {metric!r}; choose {' or '.join(METRICS)}")
    return metric


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """Method entries from ``"none,bn,tsd:corrected"`` (checked: a known method, a known
    variant, no entry twice). Raises ParameterError naming ``methods``."""
    from protoview.core.adapt.params import VARIANTS
    from protoview.core.adapt.registry import method_names

    known = method_names()
    entries = [e.strip() for e in (text.split(",") if isinstance(text, str) else text)]
    if not entries or not all(entries):
        raise ParameterError("methods", f"expected method names separated by commas, got {text!r}")
    for entry in entries:
        name, _, variant = entry.partition(":")
        if name not in known:
            where = f" in {entry!r}" if entry != name else ""
            raise ParameterError("methods", f"unknown method {name!r}{where}; choose from "
                                            f"{', '.join(known)}")
        if variant and variant not in VARIANTS:
            raise ParameterError("methods", f"unknown variant {variant!r} in {entry!r}; "
                                            f"choose {' or '.join(VARIANTS)}")
    twice = sorted({e for e in entries if entries.count(e) > 1})
    if twice:
        raise ParameterError("methods", f"{twice[0]} is listed twice")
    return entries


def method_params(entries: Sequence[str], params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Each entry's parameters: its variant, the ``"*"`` ones it accepts, then its own.

    Raises ParameterError naming the parameter when an entry's own parameter is not one
    of its method's or a value its declaration refuses, when a ``"*"`` parameter fits no
    method, or a key names no entry.
    """
    from protoview.core.adapt.registry import check_params, method_defaults

    for key in params:
        if key != "*" and key not in entries:
            raise ParameterError("param", f"{key!r} is not one of the methods compared "
                                          f"({', '.join(entries)})")
    out: dict[str, dict] = {}
    shared = dict(params.get("*", {}))
    used: set[str] = set()
    for entry in entries:
        name, _, variant = entry.partition(":")
        accepted = method_defaults(name)
        chosen = {k: v for k, v in shared.items() if k in accepted}
        used |= set(chosen)
        if variant:
            if "variant" not in accepted:
                raise ParameterError("methods", f"{name} has no variants (in {entry!r})")
            chosen["variant"] = variant
        chosen.update(params.get(entry, {}))
        check_params(name, **chosen)  # a parameter the method does not take, a bad value
        out[entry] = chosen
    unused = sorted(set(shared) - used)
    if unused:
        raise ParameterError(unused[0], f"no compared method takes it ({', '.join(entries)})")
    return out
