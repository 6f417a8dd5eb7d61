"""``protoview adapt --geometry-every N``: the feature space's geometry measured along an
adaptation run (the source model at step 0, then every N steps and the last), each a row
of the snapshot's ``metrics/geometry``: NC1-NC4, the weighted k-NN accuracy and the linear
CKA against the source model (:func:`~protoview.core.measures.measure_point`)."""

from __future__ import annotations

import argparse
from typing import Any

from protoview.cli._common import say


def check_geometry_every(args: argparse.Namespace) -> int:
    """``--geometry-every``'s N (0: off), checked against ``--record-every`` before anything
    is opened: the features of a step are whole only at a recorded step."""
    from protoview.errors import ParameterError

    every = int(getattr(args, "geometry_every", 0) or 0)
    if every < 0:
        raise ParameterError("--geometry-every", f"must be 0 (off) or a number of steps, got {every}")
    if every and args.record_every and every % args.record_every:
        raise ParameterError("--geometry-every", f"must be a multiple of --record-every "
                                                 f"({args.record_every}): a step's features are "
                                                 "whole only at a recorded step")
    return every


def measure(session: Any, run: int, step: int) -> dict[str, Any] | None:
    """One row of the current map's geometry (None: fewer than two classes to measure)."""
    from protoview.core.measures import head_arguments, measure_point
    from protoview.errors import ParameterError

    features = session.map.features
    source = None if session.source is None else session.source.features
    try:
        return measure_point(
            features.features, features.logits, features.labels,
            reference=None if source is None else source.features,
            **head_arguments(session.model), run=run, step=step)
    except ParameterError as exc:
        say(f"note: geometry at step {step} not measured ({exc})")
        return None


def run_measured(session: Any, req: Any, every: int, progress: Any) -> list[dict[str, Any]]:
    """Run ``req`` on ``session`` (its ``record_every`` a divisor of ``every``), measuring
    the source model first and then every ``every`` steps and the last."""
    rows = [r for r in [measure(session, 0, 0)] if r is not None]
    done: set[int] = set()
    for update in session.run(req, progress):
        if update.kind != "step" or session.refresh_pending or not session.history:
            continue
        step = int(session.history[-1].step)
        if step in done or (step % every and update.partial):
            continue
        done.add(step)
        run = session.current_run
        row = measure(session, 0 if run is None else int(run.number), step)
        if row is not None:
            rows.append(row)
    return rows


def geometry_lines(rows: list[dict[str, Any]], labelled: bool) -> list[str]:
    """The measured rows as a table: step, NC1, NC2, NC3, NC4, k-NN accuracy, CKA."""
    if not rows:
        return []
    from protoview.cli._timeline import GEOMETRY_CELLS

    heads = [("CKA src" if key == "linear_cka" else head) for key, head, _ in GEOMETRY_CELLS]
    lines = ["geometry along the run (step 0: the source model; linear CKA against it):",
             f"{'step':>5}  " + "  ".join(f"{h:>9}" for h in heads)]
    for row in rows:
        cells = []
        for key, _, fmt in GEOMETRY_CELLS:
            value = row[key]
            cells.append("no labels" if key == "knn_accuracy" and not labelled else
                         ("-" if value != value else format(value, fmt)))
        lines.append(f"{row['step']:>5}  " + "  ".join(f"{c:>9}" for c in cells))
    return lines


def add_to_snapshot(snap: Any, rows: list[dict[str, Any]]) -> Any:
    """``snap`` with the rows as its geometry table (CKA against the source model)."""
    from protoview.core.measures import geometry_table

    if rows:
        snap.geometry = geometry_table(rows)
        snap.geometry_attrs = {"versus": "the source model"}
    return snap
