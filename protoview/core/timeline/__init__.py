"""A timeline of checkpoints over one dataset: features, aligned maps, accuracy, movers.

Given several checkpoints of one training run (files in natural order, or globs such as
``runs/epoch_*.pt``) and one dataset: each checkpoint's features (through the feature
cache: reopening is instant), the map of the first fitted and each next one aligned from
the one before by the anchored update a live step uses (a point whose vector did not move
stays exactly in place), the accuracy and per-class accuracy of each, and the **movers**
between any two: the samples whose feature-space k-NN neighbourhood changed most (Jaccard
distance of the lists). Heads may grow (class-incremental runs): each checkpoint's proxies
are its own head's, its accuracy counts the classes its head has.

- :func:`build_timeline` / :class:`TimelineBuilder` (a generator of steps, for a worker);
  :class:`AlignedMaps`, the map sequence alone (features in, aligned geometry out);
  :class:`Timeline`, :class:`CheckpointStep`; :func:`expand_checkpoints`.
- :func:`timeline_to_snapshot`: the snapshot, laid out as an adaptation run's (replay,
  ``info``, ``export``); :func:`snapshot_movers` reads the movers back from one,
  :func:`snapshot_tasks` its class-incremental numbers.
- :func:`knn_lists`, :func:`knn_jaccard`, :func:`rank_movers`, :class:`Movers`.
- Class-incremental runs (``_tasks``): :class:`Tasks` (``--tasks`` or the heads' sizes,
  PyCIL's class order), :class:`TaskNumbers` per checkpoint (accuracy per task, old /
  new, weight norms per class and task, WA's gamma), :func:`forgetting`,
  :func:`mean_forgetting`, :func:`average_incremental_accuracy` (PyCIL's definitions).

Modules: ``_inputs`` (files, checks, opening), ``_movers``, ``_tasks``, ``_build``,
``_snapshot``.
"""

from protoview.core.timeline._build import (
    AlignedMaps,
    CheckpointStep,
    Timeline,
    TimelineBuilder,
    build_timeline,
    grown_layout,
    seen_class_accuracy,
)
from protoview.core.timeline._inputs import OpenOptions, expand_checkpoints, natural_key
from protoview.core.timeline._movers import (
    DEFAULT_K,
    Movers,
    knn_jaccard,
    knn_lists,
    movers_between,
    rank_movers,
)
from protoview.core.timeline._snapshot import (
    TIMELINE_METHOD,
    is_timeline_snapshot,
    snapshot_movers,
    snapshot_tasks,
    timeline_checkpoints,
    timeline_to_snapshot,
)
from protoview.core.timeline._tasks import (
    TaskNumbers,
    Tasks,
    average_incremental_accuracy,
    class_norms,
    forgetting,
    mean_forgetting,
    parse_tasks,
    task_accuracy,
    task_numbers,
    tasks_for,
    wa_gamma,
)

__all__ = [
    "DEFAULT_K", "TIMELINE_METHOD", "AlignedMaps", "CheckpointStep", "Movers", "OpenOptions",
    "TaskNumbers", "Tasks", "Timeline", "TimelineBuilder", "average_incremental_accuracy",
    "build_timeline", "class_norms", "expand_checkpoints", "forgetting", "grown_layout",
    "is_timeline_snapshot", "knn_jaccard", "knn_lists", "mean_forgetting", "movers_between",
    "natural_key", "parse_tasks", "rank_movers", "seen_class_accuracy", "snapshot_movers", "snapshot_tasks",
    "task_accuracy", "task_numbers", "tasks_for", "timeline_checkpoints",
    "timeline_to_snapshot", "wa_gamma",
]
