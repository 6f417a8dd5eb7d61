"""The registry of benchmarks, one module per area; :mod:`bench.run` runs them."""

from __future__ import annotations

from collections.abc import Callable

from bench._common import Context, Row
from bench.adaptation import cotta_step, memory, probe_accuracy, tsd_step
from bench.clustering import kmeans
from bench.drawing import drawing
from bench.end_to_end import step_to_pixels, step_to_pixels_resnet
from bench.extraction import extraction, refresh_second_pass
from bench.maps import map_first, map_update
from bench.sinkhorn import sinkhorn

CASES: dict[str, Callable[[Context], list[Row]]] = {
    "map_first": map_first,
    "map_update": map_update,
    "kmeans": kmeans,
    "sinkhorn": sinkhorn,
    "extraction": extraction,
    "tsd_step": tsd_step,
    "cotta_step": cotta_step,
    "drawing": drawing,
    "step_to_pixels": step_to_pixels,
    "step_to_pixels_resnet": step_to_pixels_resnet,
    "refresh_second_pass": refresh_second_pass,
    "probe_accuracy": probe_accuracy,
    "memory": memory,
}
