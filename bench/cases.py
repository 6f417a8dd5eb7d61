"""The registry of benchmarks, one module per area; :mod:`bench.run` runs them."""

from __future__ import annotations

from collections.abc import Callable

from bench._common import Context, Row
from bench.adacontrast import adacontrast_step
from bench.adaptation import (
    cotta_step,
    memory,
    probe_accuracy,
    roid_cmf_step,
    rotta_step,
    tsd_step,
)
from bench.backbones import backbone_tent
from bench.big_map import big_map
from bench.bigmap import bigmap_first, bigmap_step, bigmap_trust
from bench.clustering import kmeans, kmeans_sizes
from bench.deyo_memo import deyo_step, memo_step
from bench.drawing import drawing
from bench.end_to_end import step_to_pixels, step_to_pixels_resnet
from bench.extraction import extraction, refresh_second_pass
from bench.geometry import geometry
from bench.maps import map_first, map_update
from bench.sinkhorn import sinkhorn
from bench.source_methods import source_steps
from bench.timeline import timeline_maps
from bench.toolkit_basic import toolkit_basic_steps

CASES: dict[str, Callable[[Context], list[Row]]] = {
    "map_first": map_first,
    "map_update": map_update,
    "bigmap_first": bigmap_first,
    "bigmap_trust": bigmap_trust,
    "bigmap_step": bigmap_step,
    "timeline_maps": timeline_maps,
    "kmeans": kmeans,
    "kmeans_sizes": kmeans_sizes,
    "sinkhorn": sinkhorn,
    "geometry": geometry,
    "extraction": extraction,
    "tsd_step": tsd_step,
    "backbone_tent": backbone_tent,
    "adacontrast_step": adacontrast_step,
    "roid_cmf_step": roid_cmf_step,
    "deyo_step": deyo_step,
    "memo_step": memo_step,
    "rotta_step": rotta_step,
    "toolkit_basic_steps": toolkit_basic_steps,
    "source_steps": source_steps,
    "cotta_step": cotta_step,
    "drawing": drawing,
    "big_map": big_map,
    "step_to_pixels": step_to_pixels,
    "step_to_pixels_resnet": step_to_pixels_resnet,
    "refresh_second_pass": refresh_second_pass,
    "probe_accuracy": probe_accuracy,
    "memory": memory,
}
