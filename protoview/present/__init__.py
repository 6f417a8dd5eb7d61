"""Between the session and the window, without Qt: what the window shows and every number
derived for it.

- :class:`~protoview.present.shown.Shown`: the one evented model of what is shown.
- :mod:`~protoview.present.derive`: colour codes, group-to-class matching, members,
  per-class accuracy and confusion, hover / selection / neighbour texts, the map's
  freshness, the numbers line and the export caption, each from the core's science.
- :mod:`~protoview.present.compute`: what the compute worker drives (:class:`Computes`),
  opening a session, snapshot files.
- :mod:`~protoview.present.geometry`: the Geometry view's numbers and texts (neural
  collapse, k-NN accuracy, CKA against the source model, the groups with the most errors).
- :mod:`~protoview.present.timeline`: a timeline of checkpoints as the window builds it
  (File → Open checkpoints…) and its movers between any two frames.
- :class:`~protoview.present.progress.TimeLeft`: the progress bar's estimate of the time
  left.
- The requests the window sends and the Update it receives (from the core, named here so
  that the window imports nothing of the core: ``tests/test_layering.py`` checks it).
"""

from protoview.core.neighbors import METRICS as NEIGHBOUR_METRICS
from protoview.core.requests import (
    ForgetRunsRequest,
    GeometryRequest,
    KMeansRequest,
    OpenRequest,
    RefreshRequest,
    ResetRequest,
    SinkhornRequest,
    StepRequest,
)
from protoview.core.runs import VERSUS_NAMES, HistoryRow, RunRecord
from protoview.core.updates import DataView, Update
from protoview.present import derive, geometry
from protoview.present.compute import Computes
from protoview.present.progress import TimeLeft
from protoview.present.shown import UNADAPTED, Shown

__all__ = [
    "NEIGHBOUR_METRICS", "UNADAPTED", "VERSUS_NAMES", "Computes", "DataView",
    "ForgetRunsRequest", "GeometryRequest", "HistoryRow", "KMeansRequest", "OpenRequest",
    "RefreshRequest", "ResetRequest", "RunRecord", "Shown", "SinkhornRequest", "StepRequest", "TimeLeft",
    "Update", "derive", "geometry",
]
