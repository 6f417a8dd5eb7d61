"""What the window's compute worker drives, and the files it reads and writes.

:class:`Computes` is everything the worker needs of a session (the core's
:class:`~protoview.core.session.Session` has it; the window's test fakes implement it): it
drives the generators, never a private field, never a rewritten request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from protoview.core.updates import Update

Progress = Callable[[int, int], None] | None
Detail = Callable[[int, int, str], None] | None
Cancel = Callable[[], bool] | None


@runtime_checkable
class Computes(Protocol):
    """A session as the worker drives it."""

    @property
    def refresh_pending(self) -> bool:
        """Some sample does not hold the current model's features yet (the worker refreshes
        in the background while idle)."""

    def run(self, request: Any, progress: Progress = None, cancel: Cancel = None,
            detail: Detail = None) -> Iterator[Update]:
        """Carry out a request, yielding an Update after each part; ``detail(done, total,
        text)`` tells the phases of a step (the progress bar's text)."""

    def background(self, seconds: float = 0.5, cancel: Cancel = None) -> Update | None:
        """One slice of the progressive refresh (None: nothing to do)."""

    @property
    def map_pending(self) -> bool:
        """The map shown is a quick preview; :meth:`finish_open` draws the real one."""

    def finish_open(self, request: Any = None, progress: Progress = None,
                    cancel: Cancel = None) -> Iterator[Update]:
        """After an open with a preview: the real map, as an ``open`` Update (else none)."""

    def update(self, kind: str, request: Any = None, started: float | None = None,
               partial: bool = False, followed: bool = False) -> Update:
        """What the session shows now (the worker sends it after opening)."""

    def to_snapshot(self) -> Any:
        """The session as a Snapshot (File → Export snapshot)."""


def open_session(request: Any, progress: Progress = None, cancel: Cancel = None,
                 preview: bool = False) -> Computes:
    """Open the checkpoint and data of an OpenRequest (on the worker thread); ``preview``: a
    quick PCA layout first, the map by ``finish_open`` (see ``Session.open``)."""
    from protoview.core.session import Session

    return Session.open(request, progress=progress, cancel=cancel, preview=preview)


def warm_up(message: Callable[[str], None]) -> float:
    """The one-time costs before the first click (the map engine, torch's optimiser)."""
    from protoview.core.live import warm_up as live_warm_up

    return live_warm_up(message)


def read_snapshot(path: str) -> Any:
    from protoview.core.snapshot import read_snapshot as read

    return read(path)


def with_measurements(snapshot: Any, measured: tuple) -> Any:
    """``snapshot`` with the session's geometry measurements (``shown.geometry``, each a
    MapGeometry) as its ``metrics/geometry`` rows (File → Export snapshot keeps them:
    replayed, Numbers → Geometry shows them)."""
    if measured:
        from protoview.core.measures import geometry_row, geometry_table

        latest = {(g.run, g.step): g for g in measured}  # a step measured again: the latest
        snapshot.geometry = geometry_table([geometry_row(g.report, g.comparison, run=g.run,
                                                         step=g.step)
                                            for _key, g in sorted(latest.items())])
        snapshot.geometry_attrs = {"versus": "the source model"}
    return snapshot


def write_snapshot(path: str, snapshot: Any) -> str:
    """Write atomically; returns the path."""
    from protoview.core.snapshot import write_snapshot as write

    write(path, snapshot)
    return path


def is_features_file(path: str) -> bool:
    """An HDF5 file of features (data to open), not a snapshot."""
    from protoview.core.snapshot import hdf5_format

    return hdf5_format(path) == "protoview-features"


def neighbours(state: Any, index: int, k: int, metric: str) -> tuple[Any, Any]:
    """The ``k`` nearest samples of ``index`` in feature space and their ranks on the map
    (:func:`~protoview.core.neighbors.feature_neighbors`, :func:`~protoview.core.neighbors.map_ranks`)."""
    from protoview.core.neighbors import feature_neighbors, map_ranks

    found = feature_neighbors(state.features, index, k, metric)
    return found, map_ranks(state.embedding, index, found.indices)


def write_selection(path: str, state: Any, selection: Any) -> None:
    """Write the selected samples (K,) to ``.npy`` (their indices), or to ``.csv`` with their
    label and prediction (``index,label,prediction``)."""
    import numpy as np

    from protoview.errors import ParameterError

    sel = np.asarray(selection, np.int64)
    if str(path).endswith(".npy"):
        np.save(path, sel)
    elif str(path).endswith(".csv"):
        rows = np.column_stack([sel, np.asarray(state.labels)[sel],
                                np.asarray(state.predictions)[sel]])
        np.savetxt(path, rows, fmt="%d", delimiter=",", header="index,label,prediction",
                   comments="")
    else:
        raise ParameterError(str(path), "choose a file name ending in .npy or .csv")


def replay_states(snapshot: Any) -> list:
    """Every recorded frame of ``snapshot`` (a live session's, say), each with its step's
    numbers, as a replay shows it (:func:`~protoview.core.state.timeline_states`)."""
    from protoview.core.runs import rows_from_columns
    from protoview.core.state import state_from_snapshot, timeline_states

    return timeline_states(state_from_snapshot(snapshot), snapshot.timeline,
                           rows_from_columns(snapshot.history))

