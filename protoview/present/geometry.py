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
    "NO_LABELS", "ErrorRow", "cosine_bars", "curve", "error_rows", "for_shown", "header_text",
    "number_rows", "place", "shown_place",
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
    A snapshot's map is never the measured one (the session's model is measured)."""
    measured = tuple(shown.geometry)
    if not measured:
        return None, False
    if shown.snapshot is None:
        run, step = shown_place(shown)
        for g in reversed(measured):
            if (g.run, g.step) == (run, step):
                return g, True
    return measured[-1], False


def header_text(shown: Any) -> str:
    """What the view's first line says: what was measured, on how many samples, grouped by
    what; or why there is nothing (yet), or that the map moved since."""
    if shown.snapshot is not None:
        return ("A snapshot is shown: Geometry measures the open session's model (or run "
                "protoview geometry CKPT DATA on a checkpoint).")
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
    cmp = g.comparison
    if cmp is None:
        rows.append(("CKA vs source", "—", g.versus_note or "no comparison"))
    else:
        rbf = ("" if cmp.rbf_samples == cmp.samples
               else f" on {cmp.rbf_samples:,} of {cmp.samples:,} samples")
        rows += [
            ("linear CKA vs source", _num(cmp.linear_cka, ".4f"),
             "Kornblith et al. 2019: 1 = the same up to rotation and scale"),
            ("RBF CKA vs source", _num(cmp.rbf_cka, ".4f"), f"Gaussian kernel{rbf}"),
            (f"{cmp.knn_k}-NN consistency vs source", _num(cmp.knn_consistency, ".3f"),
             "share of each sample's nearest neighbours kept since the source model"),
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
