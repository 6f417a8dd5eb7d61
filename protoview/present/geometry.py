"""The Geometry view's numbers and texts (Numbers → Geometry), from the measurements the
session made (:class:`~protoview.core.measures.MapGeometry`, answers of a
:class:`~protoview.core.requests.GeometryRequest`, kept by :class:`~protoview.present.Shown`
in ``shown.geometry``). Qt-free; the formulas are the core's (``core.collapse``,
``core.knn``, ``core.cka``, ``core.metrics``), this module only words and orders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

NO_LABELS = "no labels"

__all__ = [
    "CURVES", "NO_LABELS", "Along", "ErrorRow", "along", "cosine_bars", "curve", "error_rows",
    "for_shown", "header_text", "number_rows", "place", "shown_place", "stored_for_shown",
]


def place(run: int, step: int, method: str = "none") -> str:
    """Where a measurement was made, in words: "the source model", "run 2 (tent), step 5"."""
    if run == 0:
        return "the source model"
    return f"run {run} ({method}), step {step}"


def shown_place(shown: Any) -> tuple[int, int]:
    """(run, step) of the map shown live (the run's last step; 0 for the source model)."""
    return int(shown.current_run), int(shown.history[-1].step) if shown.history else 0


def for_shown(shown: Any) -> tuple[Any, bool]:
    """The measurement to show and whether it is of the map shown: the latest one of the
    shown run and step when there is one, else the latest (``(None, False)``: none yet).
    A snapshot shows what it stores (:func:`stored_for_shown`): the session's model is
    not the one it shows."""
    if shown.snapshot is not None:
        return stored_for_shown(shown)
    measured = tuple(shown.geometry)
    if not measured:
        return None, False
    if shown.snapshot is None:
        run, step = shown_place(shown)
        for g in reversed(measured):
            if (g.run, g.step) == (run, step):
                return g, True
    return measured[-1], False


def _shown_step(shown: Any) -> int:
    """The step of the snapshot's map shown (its frame's, or the snapshot's own)."""
    snap = shown.snapshot
    if shown.frame is not None and snap.timeline:
        return int(snap.timeline[int(shown.frame)].get("step", shown.frame))
    return int(snap.attrs.get("step", 0) or 0)


def _versus(snap: Any) -> str:
    text = str(getattr(snap, "geometry_attrs", {}).get("versus", "") or "the source model")
    return text.removeprefix("the ")


def stored_for_shown(shown: Any) -> tuple[Any, bool]:
    """The geometry a snapshot stores for the map shown (a MapGeometry made from its row of
    ``metrics/geometry``) and whether it is of the step shown (else the latest row before
    it of the same run, or of the source model); ``(None, False)``: it stores none."""
    from protoview.core.measures import map_geometry_from_row, table_rows

    snap = shown.snapshot
    rows = [r for r in table_rows(getattr(snap, "geometry", {}))
            if r["run"] in (0, int(shown.current_run))]
    if not rows:
        return None, False
    step = _shown_step(shown)
    exact = [r for r in rows if r["step"] == step]
    if exact:
        row, current = max(exact, key=lambda r: r["run"]), True
    else:
        before = [r for r in rows if r["step"] <= step]
        if not before:
            return None, False
        row, current = max(before, key=lambda r: (r["step"], r["run"])), False
    state = shown.state
    return map_geometry_from_row(
        row, None if state is None else state.predictions,
        None if state is None else state.labels, method=_method(shown),
        versus=_versus(snap)), current


def header_text(shown: Any) -> str:
    """What the view's first line says: what was measured, on how many samples, grouped by
    what; or why there is nothing (yet), or that the map moved since."""
    if shown.snapshot is not None:
        g, current = stored_for_shown(shown)
        if g is None:
            if getattr(shown.snapshot, "geometry", None):
                return "The snapshot's geometry starts at a later step: move the slider."
            return ("A snapshot is shown; it stores no geometry (a timeline, or adapt "
                    "--geometry-every N, stores it). Geometry measures the open session's "
                    "model, or run protoview geometry CKPT DATA on a checkpoint.")
        r = g.report
        by = "labels" if r.labelled else f"predicted classes ({NO_LABELS})"
        where = _stored_place(shown, g)
        text = (f"{where}, stored in the snapshot: {r.samples:,} samples, "
                f"{r.collapse.classes.size} classes with samples, grouped by {by}")
        if not current:
            text += f". The map shows step {_shown_step(shown)}: the latest measured before it"
        return text
    if shown.state is None:
        return "Nothing is open."
    g, current = for_shown(shown)
    if g is None:
        return ("Not measured yet: press Measure (on the worker: seconds, about a minute at "
                "50,000 samples on a small CPU).")
    r = g.report
    by = "labels" if r.labelled else f"predicted classes ({NO_LABELS})"
    text = (f"{place(g.run, g.step, g.method)}: {r.samples:,} samples, "
            f"{r.collapse.classes.size} classes with samples, grouped by {by}")
    if not current:
        run, step = shown_place(shown)
        text += f". The map shows {place(run, step, _method(shown))} now: Measure again."
    return text


def _stored_place(shown: Any, g: Any) -> str:
    """Where a stored row was measured: its checkpoint's file for a timeline, else
    :func:`place`."""
    if g.run == 0 and g.step > 0:
        for name, step in zip(shown.frame_names(), shown.frame_steps(), strict=False):
            if step == g.step:
                return f"checkpoint {step} ({name})"
        return f"step {g.step}"
    return place(g.run, g.step, g.method)


def _method(shown: Any) -> str:
    run = next((r for r in shown.runs if r.number == shown.current_run), None)
    return "none" if run is None else str(run.method)


def _num(value: float | None, fmt: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, fmt)


def _score(value: float | None, labelled: bool) -> str:
    """An accuracy-type number: "no labels" without labels, never 0% or NaN."""
    if not labelled:
        return NO_LABELS
    return _num(value, ".1%")


def number_rows(g: Any) -> list[tuple[str, str, str]]:
    """The measurement's numbers as (name, value, what it means) rows, in the order of
    ``protoview geometry``'s table; accuracy-type numbers read "no labels" without labels,
    the comparison with the source model its reason when there is none."""
    r, c = g.report, g.report.collapse
    lab = r.labelled
    rows = [
        ("NC1", _num(c.nc1), "Tr(Σ_W Σ_B⁺) / C: within-class variability against "
                             "between-class (Papyan, Han & Donoho 2020); 0 at collapse"),
        ("NC2 equinorm", _num(c.equinorm), "std / mean of the centred class means' norms "
                                           "(0: equal norms)"),
        ("NC2 equiangularity", _num(c.equiangularity), "std of the cosines between distinct "
                                                       "centred class means (0: equal angles)"),
        ("NC2 distance to ETF", _num(c.etf_error), "distance of the centred means' Gram "
                                                   "matrix to the simplex ETF's"),
        ("NC3 self-duality", _num(c.nc3), "mean |w_c/|w_c| − m_c/|m_c||: the head's rows "
                                          "against the centred class means (0: self-dual)"),
        ("NC3 ETF form", _num(c.self_duality_error), "distance of W Mᵀ (normalised) to the "
                                                     "simplex ETF"),
        ("NC4 NCC = head", _num(c.nc4, ".1%"), "share of samples whose nearest class mean "
                                               "is the head's prediction"),
    ]
    if c.proxy_center_cosine is not None:
        rows.append(("proxy–center cosine", _num(float(np.mean(c.proxy_center_cosine)), ".3f"),
                     "mean over classes of cos(head row, class mean); per class in "
                     "Proxy ↔ center"))
    knn = r.knn
    what = "weighted k-NN in feature space (DINO's vote)"
    if knn is not None:
        what = f"weighted {knn.k}-NN, temperature {knn.temperature:g}"
        if knn.sampled:
            what += f", {knn.queries.size:,} of {r.samples:,} samples as queries"
    rows += [
        ("head accuracy", _score(r.head_accuracy, lab), "the classifier's top-1"),
        ("k-NN accuracy", _score(None if knn is None else knn.accuracy, lab), what),
        ("nearest-center accuracy", _score(r.ncc_accuracy, lab), "the nearest class mean's "
                                                                 "class (Euclidean)"),
        ("k-means NMI", NO_LABELS if not lab else _num(r.nmi, ".3f"),
         f"faiss k-means, k = {r.kmeans_k}, against the labels"),
        ("k-means ARI", NO_LABELS if not lab else _num(r.ari, ".3f"),
         f"faiss k-means, k = {r.kmeans_k}, against the labels"),
    ]
    cmp, versus = g.comparison, getattr(g, "versus", "source")
    if cmp is None:
        rows.append((f"CKA vs {versus}", "—", g.versus_note or "no comparison"))
    else:
        rows.append((f"linear CKA vs {versus}", _num(cmp.linear_cka, ".4f"),
                     "Kornblith et al. 2019: 1 = the same up to rotation and scale"))
        if cmp.rbf_samples:  # a row measured along a run keeps the linear CKA only
            rbf = ("" if cmp.rbf_samples == cmp.samples
                   else f" on {cmp.rbf_samples:,} of {cmp.samples:,} samples")
            rows += [
                (f"RBF CKA vs {versus}", _num(cmp.rbf_cka, ".4f"), f"Gaussian kernel{rbf}"),
                (f"{cmp.knn_k}-NN consistency vs {versus}", _num(cmp.knn_consistency, ".3f"),
                 "share of each sample's nearest neighbours kept since the "
                 + ("source model" if versus == "source" else versus)),
            ]
    return rows


def cosine_bars(g: Any) -> tuple[np.ndarray, np.ndarray]:
    """(classes (K,), cosine of each class's head row with its mean (K,)); empty without a
    head."""
    c = g.report.collapse
    if c.proxy_center_cosine is None:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.asarray(c.classes, np.int64), np.asarray(c.proxy_center_cosine, np.float64)


@dataclass(frozen=True)
class ErrorRow:
    """One k-means group of the error table: ``texts`` (group, size, errors, error rate,
    class mix) and ``members`` (its sample indices: what a click selects)."""

    texts: tuple[str, str, str, str, str]
    members: np.ndarray


def error_rows(g: Any, names: list[str], mix_classes: int = 4) -> list[ErrorRow]:
    """The k-means groups by error rate (the most errors first), each as an
    :class:`ErrorRow`: its first ``mix_classes`` true classes with their counts
    ("cat (40), dog (12), …")."""
    def name(k: int) -> str:
        return names[k] if 0 <= k < len(names) else str(k)

    rows = []
    for e in g.report.error_groups:
        mix = ", ".join(f"{name(k)} ({n})" for k, n in e.class_mix[:mix_classes])
        if len(e.class_mix) > mix_classes:
            mix += ", …"
        rate = "n/a" if e.error_rate is None or e.error_rate != e.error_rate \
            else f"{e.error_rate:.1%}"
        rows.append(ErrorRow((str(e.group), f"{e.members.size:,}", f"{e.errors:,}", rate, mix),
                             np.asarray(e.members, np.int64)))
    return rows


def curve(measured: tuple, run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, NC1, k-NN accuracy) of the measurements of ``run``, by step; the source
    model's measurement is step 0 of every run (each starts from it). k-NN accuracy is NaN
    without labels. The latest measurement of a step counts."""
    points: dict[int, Any] = {}
    for g in measured:  # in the order measured: the latest of a step stays
        if g.run in (0, run):
            points[0 if g.run == 0 else g.step] = g
    steps = np.array(sorted(points), np.float64)
    nc1 = np.array([points[s].report.collapse.nc1 for s in sorted(points)], np.float64)
    knn = np.array([np.nan if points[s].report.knn is None else points[s].report.knn.accuracy
                    for s in sorted(points)], np.float64)
    return steps, nc1, knn


#: The curves of "Along the run", by plot: (column, legend text); the plots are NC1, the
#: shares in [0, 1] (k-NN accuracy, NC4, linear CKA) and the NC2 / NC3 numbers.
CURVES = (
    (("nc1", "NC1"),),
    (("knn_accuracy", "k-NN accuracy"), ("nc4_ncc_agreement", "NC4 (NCC = head)"),
     ("linear_cka", "linear CKA")),
    (("nc2_equinorm", "NC2 equinorm"), ("nc2_equiangularity", "NC2 equiangularity"),
     ("nc3", "NC3 self-duality")),
)


@dataclass(frozen=True)
class Along:
    """The curves of "Along the run": ``steps`` (T,) and ``values[column]`` (T,) float64
    (NaN: not measured), ``now`` the step of the map shown (None: none), ``stored``
    whether they come from the snapshot, ``label`` the x axis' name, ``versus`` what the
    CKA compares with, ``note`` the line above the plots."""

    steps: np.ndarray
    values: dict[str, np.ndarray]
    now: float | None
    stored: bool
    label: str
    versus: str
    note: str


def along(shown: Any) -> Along:
    """The geometry along the steps of the run (or timeline) shown: a snapshot's stored rows
    (the current run's and run 0's), else the session's measurements of the current run
    (the source model as step 0)."""
    from protoview.core.measures import curve_columns, geometry_row, geometry_table

    snap = shown.snapshot
    if snap is not None:
        columns = curve_columns(getattr(snap, "geometry", {}), int(shown.current_run))
        timeline = _is_timeline(snap)
        label = "checkpoint" if timeline else "step"
        versus = _versus(snap)
        now = float(_shown_step(shown))
        note = ("Stored in the snapshot: one point per " + ("checkpoint" if timeline else
                "measured step (adapt --geometry-every N)") + f"; linear CKA against the {versus}."
                if columns else "This snapshot stores no geometry along its steps (a timeline "
                "stores it per checkpoint; protoview adapt --geometry-every N per N steps).")
        stored = True
    else:
        run = int(shown.current_run)
        points: dict[int, Any] = {}
        for g in shown.geometry:  # in the order measured: the latest of a step stays
            if g.run in (0, run):
                points[0 if g.run == 0 else g.step] = g
        rows = [geometry_row(points[s].report, points[s].comparison, run=points[s].run,
                             step=s) for s in sorted(points)]
        columns = curve_columns(geometry_table(rows))
        label, versus, stored = "step", "source", False
        now = float(shown_place(shown)[1]) if shown.state is not None else None
        note = ("One point per measurement of this run (step 0: the source model). The "
                "features of earlier steps are not kept: tick \"after each step\" to measure "
                "as the run goes.")
    steps = columns.get("step", np.zeros(0))
    values = {key: columns.get(key, np.full(steps.shape, np.nan))
              for plot in CURVES for key, _ in plot}
    return Along(steps, values, now, stored, label, versus, note)


def _is_timeline(snap: Any) -> bool:
    from protoview.core.timeline import is_timeline_snapshot

    return is_timeline_snapshot(snap)
