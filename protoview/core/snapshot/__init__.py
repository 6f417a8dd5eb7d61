"""HDF5 snapshots of a protoview state: versioned, validated, written atomically.

A snapshot holds everything needed to redraw the map without the model: the samples'
embedding, labels and predictions, the class centers, the classifier's proxies, the k-means
prototypes, an optional Sinkhorn plan, the per-step history, scalar metrics and an
optional timeline of recorded steps. The layout is documented in
``docs/snapshot-format.md``; this package needs only h5py and numpy (no torch).

Writing validates first (dtypes coerced to the documented ones, shapes checked), then
writes a temporary file in the same folder and replaces the target atomically, so a
crash, a cancel or a full disk leaves the previous file intact. Reading checks the format
name and version, the groups, the dtypes and the shapes, and names the file and the
field in every :class:`~protoview.errors.SnapshotError`.

Modules: ``_layout`` (format constants, the groups' fields, :class:`Snapshot`), ``_checks``
(validation shared by writer and reader), ``_timeline`` (history and recorded maps),
``_write``, ``_read`` (also the summary ``protoview info`` prints), ``_runs`` (the optional
``runs`` group), ``_geometry`` (the optional ``metrics/geometry`` table). A new field is one entry
in ``_layout._SCHEMA`` (or ``_TIMELINE_FIELDS``) plus a line in docs/snapshot-format.md.
"""

from protoview.core.snapshot._layout import FORMAT_NAME, FORMAT_VERSION, Snapshot
from protoview.core.snapshot._read import hdf5_format, read_snapshot, snapshot_summary
from protoview.core.snapshot._write import write_snapshot

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Snapshot",
    "hdf5_format",
    "read_snapshot",
    "snapshot_summary",
    "write_snapshot",
]
