"""A pass's stream plan cut into batches: per segment (a domain, a severity: the toolkit's
loaders), so no batch holds two domains; the batches before which the adapter is reset
(``reset_each_shift``); where each domain starts.

A segment's short last batch is dropped with ``drop_last``; a last batch of one sample is
merged into the batch before it when the adapter cannot adapt on one
(:mod:`~protoview.core.adapt._one_sample`). Both are said once in the run's notes.
"""

from __future__ import annotations

import numpy as np

from protoview.core.adapt._one_sample import one_sample_problem
from protoview.core.adapt.base import Adapter
from protoview.core.adapt.stream import StreamPlan, StreamSpec, first_positions
from protoview.errors import ParameterError


def cut_batches(
    plan: StreamPlan,
    batch_size: int,
    *,
    stream: StreamSpec,
    domains: np.ndarray | None,
    drop_last: bool,
    merge_single: bool,
    adapter: Adapter,
    notes: list[str],
) -> tuple[list[tuple[int, int]], set[int], list[tuple[int, int]]]:
    """Batches ``(start, stop)`` of each segment, the batches before which the adapter is
    reset (``reset_each_shift``) and ``(domain, position)`` where each domain starts.
    What was dropped or merged is added to ``notes`` (the run's), once."""
    b = batch_size
    bounds: list[tuple[int, int]] = []
    resets: set[int] = set()
    starts: list[tuple[int, int]] = []
    dropped = merged = 0
    for k, (start, stop) in enumerate(plan.segments):
        cut = [(s, min(s + b, stop)) for s in range(start, stop, b)]
        if not cut:
            continue
        short = cut[-1][1] - cut[-1][0]
        if drop_last and short < b:
            cut.pop()
            dropped += short
        elif merge_single and len(cut) > 1 and short == 1:
            cut[-2:] = [(cut[-2][0], stop)]
            merged += 1
        if not cut:
            continue
        if k in plan.resets:
            resets.add(len(bounds))
        if stream.in_sequence and plan.domains[k] >= 0:
            starts.append((plan.domains[k], cut[0][0]))
        bounds.extend(cut)
    if not bounds:
        raise ParameterError("drop_last", f"no whole batch of {b} samples is left in a pass")
    if not stream.in_sequence:
        starts = sorted(first_positions(plan.order, domains).items(),
                        key=lambda item: item[1])
    if dropped and not any(n.startswith("drop_last") for n in notes):
        notes.append(f"drop_last: the last {dropped} samples of each pass are not used"
                     + (" (each segment's short last batch)" if len(plan.segments) > 1
                        else ""))
    if merged and not any(n.startswith("a batch of 1") for n in notes):
        notes.append(
            f"a batch of 1 sample merged into the batch before it ({merged} in each pass): "
            f"{one_sample_problem(adapter)}")
    return bounds, resets, starts
