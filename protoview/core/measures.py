"""A feature space's geometry, measured: the numbers of ``protoview geometry`` and the window's
geometry panel, from the science modules (no formula lives here).

:func:`measure_geometry` gathers, for one model's features on one dataset: neural collapse
NC1-NC4 and the proxy-to-center cosines (:mod:`protoview.core.collapse`), the head's
accuracy beside the weighted k-NN accuracy (:mod:`protoview.core.knn`) and the
nearest-class-center accuracy, NMI / ARI of faiss k-means groups against the labels
(:func:`protoview.core.metrics.clustering_scores`), and those groups ranked by the head's
error rate (:func:`protoview.core.metrics.error_groups`). Without labels the collapse is
measured on the *predicted* classes and every label-based number is None ("no labels").

:func:`compare_representations` gives CKA (linear, RBF) and the k-NN consistency of two
feature sets of the same samples, after :func:`protoview.core.cka.check_same_samples`.
:class:`MapGeometry` holds both for one map of a session (the window's Geometry view),
:func:`measure_map` measures it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview.core.cka import RBF_MAX_SAMPLES, check_same_samples, linear_cka, rbf_cka, rbf_subset
from protoview.core.collapse import Collapse, neural_collapse
from protoview.core.geometry import as_labels, as_matrix
from protoview.core.heads import predicted_classes
from protoview.core.knn import KNN_K, KNN_TEMPERATURE, KnnResult, knn_accuracy, knn_consistency
from protoview.core.metrics import ErrorGroup, accuracy, clustering_scores, error_groups

#: Queries of the k-NN accuracy by default (a seeded sample above it; the bank stays whole).
KNN_MAX_QUERIES = 10_000
#: k-means groups when neither a head nor labels say how many classes there are.
DEFAULT_GROUPS = 10


@dataclass
class GeometryReport:
    """What :func:`measure_geometry` found.

    samples: N; labelled: some label is known; classes_by: ``"labels"``,
    ``"predictions"`` or ``"k-means groups"`` (what the collapse groups by); collapse: NC1-NC4 and the per-class
    numbers; head_accuracy, ncc_accuracy: None without labels; knn: the k-NN result (None
    without labels); nmi, ari: k-means against the labels (None without labels);
    kmeans_k: the groups' count; groups: ``(N,)`` int64 each sample's k-means group;
    error_groups: the groups by error rate (empty without labels); seconds: per part.
    """

    samples: int
    labelled: bool
    classes_by: str
    collapse: Collapse
    head_accuracy: float | None
    ncc_accuracy: float | None
    knn: KnnResult | None
    nmi: float | None
    ari: float | None
    kmeans_k: int
    groups: np.ndarray
    error_groups: list[ErrorGroup]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, float | None]:
        """The scalar numbers by name (None: not measured / no labels), for CSV and snapshots."""
        c = self.collapse
        return {
            "nc1": c.nc1, "nc2_equinorm": c.equinorm, "nc2_equiangularity": c.equiangularity,
            "nc2_etf_error": c.etf_error, "nc3": c.nc3, "nc3_etf_error": c.self_duality_error,
            "nc4_ncc_agreement": c.nc4,
            "proxy_center_cosine_mean": None if c.proxy_center_cosine is None
            else float(np.mean(c.proxy_center_cosine)),
            "head_accuracy": self.head_accuracy, "knn_accuracy": None if self.knn is None
            else self.knn.accuracy, "ncc_accuracy": self.ncc_accuracy,
            "kmeans_nmi": self.nmi, "kmeans_ari": self.ari,
        }


def measure_geometry(
    features: Any, logits: Any, labels: Any, *, head_rows: Any = None, nb_proxy: int = 1,
    cosine_head: bool = False, kmeans_k: int | None = None, knn_k: int = KNN_K,
    knn_temperature: float = KNN_TEMPERATURE, knn_max_queries: int | None = KNN_MAX_QUERIES,
    seed: int = 0, device: Any = None, with_kmeans: bool = True,
) -> GeometryReport:
    """Measure one model's feature space on one dataset.

    features: ``(N, D)`` float; logits: ``(N, C)`` float the head's (None or ``(N, 0)``: an
    encoder without a head: no NC3 / NC4, no head accuracy, no error groups; without labels
    too, the geometry of the k-means groups); labels: ``(N,)`` int,
    ``-1`` unknown; head_rows / nb_proxy / cosine_head: the head's weight rows
    (:func:`~protoview.core.heads.head_proxies`), see :func:`neural_collapse`; kmeans_k: the
    groups (default ``C``); knn_*: :func:`knn_accuracy`'s; seed: k-means' and the k-NN
    query sample's; device: where the k-NN runs; with_kmeans: False leaves k-means out
    (no NMI / ARI, no error groups, ``groups`` empty, ``kmeans_k`` 0: the cheap parts a
    curve along a timeline measures at every checkpoint).
    """
    x = as_matrix(features, "features")
    y = as_labels(labels, "labels", x.shape[0])
    labelled = bool((y >= 0).any())
    headless = logits is None or tuple(getattr(logits, "shape", (0, 1)))[-1:] == (0,)
    preds = None
    if headless:  # an encoder without a classifier: its classes are the labels' (or none)
        num_classes = int(y.max()) + 1 if labelled else 0
        head_rows = None
    else:
        scores = as_matrix(logits, "logits")
        if scores.shape[0] != x.shape[0]:
            from protoview.errors import ParameterError

            raise ParameterError("logits", f"have {scores.shape[0]} rows for {x.shape[0]} samples")
        preds = predicted_classes(scores)
        num_classes = scores.shape[1]
    seconds: dict[str, float] = {}
    from protoview.core.cluster import kmeans_prototypes

    t0 = time.perf_counter()
    k = min(int(kmeans_k or num_classes or DEFAULT_GROUPS), x.shape[0])
    if with_kmeans or (not labelled and preds is None):
        groups = kmeans_prototypes(x, k, seed=seed, nredo=1, use_gpu=False).assignments
        seconds["kmeans"] = time.perf_counter() - t0
    else:
        groups, k = np.zeros(0, np.int64), 0
    t0 = time.perf_counter()
    if labelled:
        classes, classes_by = y, "labels"
    elif preds is not None:
        classes, classes_by = preds, "predictions"
    else:  # no labels, no head: the geometry of the k-means groups
        classes, classes_by, num_classes = groups, "k-means groups", k
    collapse = neural_collapse(x, classes, num_classes=num_classes,
                               head_rows=head_rows, nb_proxy=nb_proxy, cosine_head=cosine_head,
                               head_predictions=preds)
    seconds["collapse"] = time.perf_counter() - t0
    knn = None
    if labelled:
        t0 = time.perf_counter()
        knn = knn_accuracy(x, y, k=knn_k, temperature=knn_temperature, num_classes=num_classes,
                           max_queries=knn_max_queries, seed=seed, device=device)
        seconds["knn"] = time.perf_counter() - t0
    scores_km = clustering_scores(groups, y) if labelled and groups.size else {}
    return GeometryReport(
        samples=x.shape[0], labelled=labelled,
        classes_by=classes_by, collapse=collapse,
        head_accuracy=accuracy(preds, y) if labelled and preds is not None else None,
        ncc_accuracy=accuracy(collapse.ncc_predictions, y) if labelled else None,
        knn=knn, nmi=scores_km.get("nmi"), ari=scores_km.get("ari"), kmeans_k=k,
        groups=groups,
        error_groups=(error_groups(groups, preds, y)
                      if labelled and preds is not None and groups.size else []),
        seconds=seconds,
    )


@dataclass(frozen=True)
class Comparison:
    """Two representations of the same samples: linear and RBF CKA (``rbf_samples`` rows
    used; all when it equals ``samples``) and the k-NN consistency (``knn_k`` neighbours)."""

    samples: int
    linear_cka: float
    rbf_cka: float
    rbf_samples: int
    knn_consistency: float
    knn_k: int


def compare_representations(
    a: Any, b: Any, *, identity_a: str | None = None, identity_b: str | None = None,
    where: str = "versus", rbf_max_samples: int | None = RBF_MAX_SAMPLES, knn_k: int = 10,
    knn_max_queries: int | None = KNN_MAX_QUERIES, seed: int = 0, device: Any = None,
) -> Comparison:
    """CKA and k-NN consistency of ``a (N, D1)`` and ``b (N, D2)``; refuses (naming
    ``where``) two sides that are not the same samples (count, or dataset identity when both
    are given). No labels needed."""
    n_a = len(a)
    check_same_samples(n_a, len(b), identity_a, identity_b, where)
    rows = rbf_subset(n_a, rbf_max_samples, seed)
    share, _, _ = knn_consistency(a, b, k=knn_k, max_queries=knn_max_queries, seed=seed,
                                  device=device)
    return Comparison(
        samples=n_a, linear_cka=linear_cka(a, b),
        rbf_cka=rbf_cka(a, b, max_samples=rbf_max_samples, seed=seed),
        rbf_samples=n_a if rows is None else rows.size, knn_consistency=share,
        knn_k=min(knn_k, n_a - 1),
    )


@dataclass(frozen=True)
class MapGeometry:
    """One map's geometry as the window's Geometry view shows it: the report of the
    model's features (:func:`measure_geometry`), the comparison with the source model's
    features of the same samples (None, and ``versus_note`` says why, when the source model
    is the one measured), and where it was measured: ``run`` (0: the source model) and
    ``step``, ``method`` the run's method ("none" for the source model); ``versus``: what
    the comparison is with ("source", "first checkpoint")."""

    report: GeometryReport
    comparison: Comparison | None
    run: int
    step: int
    method: str = "none"
    versus_note: str = ""
    versus: str = "source"  # what the comparison is with, in words ("first checkpoint")


def measure_map(model: Any, features: Any, source: Any, req: Any, *, adapted: bool, run: int,
                step: int, method: str, cancel: Any = None, detail: Any = None) -> MapGeometry:
    """One map's geometry (:meth:`protoview.core.session.Session.geometry`, the window's
    Geometry view): neural collapse, k-NN / NCC accuracy, k-means NMI / ARI and the error
    groups of ``features`` (the map's FeatureResult, with logits) with ``model``'s head
    rows; when ``adapted`` and ``source`` (the source model's FeatureResult of the same
    samples) is given, CKA and k-NN consistency against it. req: a
    :class:`~protoview.core.requests.GeometryRequest`; run, step, method: where it was
    measured; ``detail(done, total, text)`` names each part and ``cancel()`` is looked at
    before the comparison."""
    from protoview.errors import CancelledError, ParameterError

    if features is None or features.logits is None:
        raise ParameterError("geometry", "the map has no logits: geometry needs the "
                                         "model's head")
    comparing = adapted and source is not None
    say = detail or (lambda _done, _total, _text: None)
    say(0, 1 + comparing, "geometry: neural collapse, k-NN accuracy, k-means")
    # the k-NN's similarity blocks run where the features were extracted (a GPU when one was)
    device = features.device if str(features.device).startswith("cuda") else None
    report = measure_geometry(
        features.features, features.logits, features.labels, **head_arguments(model),
        kmeans_k=req.kmeans_k,
        knn_k=req.knn_k, knn_temperature=req.knn_temperature,
        knn_max_queries=req.knn_queries or None, seed=req.seed, device=device)
    comparison, note = None, ""
    if not adapted and not getattr(model, "has_head", True):
        note = ("an encoder without a head is not adapted: CKA between two checkpoints is "
                "protoview geometry CKPT DATA --versus CKPT2")
    elif not adapted:
        note = "the source model is shown: CKA compares it with an adapted run (take a step)"
    elif source is None:
        note = "the source model's map is not drawn yet: no CKA"
    else:
        if cancel is not None and cancel():
            raise CancelledError("geometry cancelled before the comparison")
        say(1, 2, "geometry: CKA and k-NN consistency against the source model")
        comparison = compare_representations(
            source.features, features.features, where="geometry",
            rbf_max_samples=req.rbf_samples or None,
            knn_max_queries=req.knn_queries or None, seed=req.seed, device=device)
    return MapGeometry(report, comparison, run=run, step=step, method=method,
                       versus_note=note)


def report_rows(report: GeometryReport, class_names: list[str] | None = None,
                comparison: Comparison | None = None, versus: str = "") -> list[tuple]:
    """The report as ``(section, item, metric, value)`` rows (CSV): ``summary`` numbers,
    per-``class`` numbers, k-means ``cluster`` rows by error rate, ``versus`` numbers.
    None values (no labels, no head) are empty strings."""
    names = class_names or []

    def name(c: int) -> str:
        return names[c] if c < len(names) else str(c)

    def cell(v: Any) -> Any:
        return "" if v is None or (isinstance(v, float) and v != v) else v

    rows: list[tuple] = [("summary", "", key, cell(v)) for key, v in report.summary().items()]
    rows.append(("summary", "", "samples", report.samples))
    rows.append(("summary", "", "classes_by", report.classes_by))
    if report.knn is not None:
        rows += [("summary", "", "knn_k", report.knn.k),
                 ("summary", "", "knn_temperature", report.knn.temperature),
                 ("summary", "", "knn_queries", int(report.knn.queries.size))]
    rows.append(("summary", "", "kmeans_k", report.kmeans_k))
    c = report.collapse
    for i, cls in enumerate(c.classes):
        label = name(int(cls))
        rows += [("class", label, "count", int(c.counts[i])),
                 ("class", label, "center_norm", float(c.center_norms[i]))]
        if c.nc3_per_class is not None:
            rows += [("class", label, "nc3_distance", float(c.nc3_per_class[i])),
                     ("class", label, "proxy_center_cosine", float(c.proxy_center_cosine[i]))]
    for g in report.error_groups:
        mix = "; ".join(f"{name(k)} {n}" for k, n in g.class_mix)
        rows += [("cluster", str(g.group), "size", int(g.members.size)),
                 ("cluster", str(g.group), "errors", g.errors),
                 ("cluster", str(g.group), "error_rate", cell(g.error_rate)),
                 ("cluster", str(g.group), "class_mix", mix)]
    if comparison is not None:
        rows += [("versus", versus, "linear_cka", comparison.linear_cka),
                 ("versus", versus, "rbf_cka", comparison.rbf_cka),
                 ("versus", versus, "rbf_samples", comparison.rbf_samples),
                 ("versus", versus, "knn_consistency", comparison.knn_consistency),
                 ("versus", versus, "knn_consistency_k", comparison.knn_k)]
    return rows


def sample_identity(dataset: Any) -> str | None:
    """What names a dataset's samples and their order, for :func:`check_same_samples`: its
    ``identity()`` (the preprocessing left out), for a features file the identity of the
    data it was extracted from; None when unknown."""
    attrs = getattr(dataset, "attrs", None)
    if isinstance(attrs, dict) and "dataset_identity" in attrs:
        return str(attrs["dataset_identity"]) or None
    identity = getattr(dataset, "identity", None)
    return identity() if callable(identity) else None


# --------------------------------------------------------------------- along the steps
#: The float64 columns of a geometry table (NaN: not measured, no labels, no head).
GEOMETRY_NUMBERS = (
    "nc1", "nc2_equinorm", "nc2_equiangularity", "nc2_etf_error", "nc3", "nc3_etf_error",
    "nc4_ncc_agreement", "proxy_center_cosine_mean", "head_accuracy", "knn_accuracy",
    "ncc_accuracy", "kmeans_nmi", "kmeans_ari", "linear_cka", "rbf_cka", "knn_consistency",
    "knn_temperature",
)
#: Its int64 columns (``labelled`` 0 / 1; ``classes_by`` 0 labels, 1 predictions, 2 k-means
#: groups; ``kmeans_k`` 0: k-means not run; ``rbf_samples`` 0: no comparison).
GEOMETRY_COUNTS = ("run", "step", "samples", "labelled", "classes_by", "knn_k", "knn_queries",
                   "knn_sampled", "kmeans_k", "rbf_samples", "knn_consistency_k")
#: Its ragged columns, one array per row: the classes measured and, per class, its count,
#: centred-mean norm, NC3 distance and proxy-to-center cosine (empty without a head); each
#: sample's k-means group (empty when k-means was not run).
GEOMETRY_RAGGED = {"classes": np.int64, "class_count": np.int64, "center_norm": np.float64,
                   "nc3_distance": np.float64, "proxy_center_cosine": np.float64,
                   "kmeans_groups": np.int64}
_CLASSES_BY = ("labels", "predictions", "k-means groups")


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def geometry_row(report: GeometryReport, comparison: Comparison | None = None, *,
                 run: int = 0, step: int = 0, linear: float | None = None) -> dict[str, Any]:
    """One measurement as a row of a geometry table (the snapshot's ``metrics/geometry``):
    the numbers of :meth:`GeometryReport.summary`, the comparison's (or only ``linear``,
    a linear CKA), the counts and the per-class arrays. See :data:`GEOMETRY_NUMBERS`."""
    c, knn = report.collapse, report.knn
    row: dict[str, Any] = {key: _nan(v) for key, v in report.summary().items()}
    row.update(
        run=int(run), step=int(step), samples=int(report.samples),
        labelled=int(report.labelled), classes_by=_CLASSES_BY.index(report.classes_by),
        knn_k=0 if knn is None else int(knn.k),
        knn_queries=0 if knn is None else int(knn.queries.size),
        knn_sampled=int(knn is not None and knn.sampled),
        knn_temperature=float("nan") if knn is None else float(knn.temperature),
        kmeans_k=int(report.kmeans_k),
        linear_cka=_nan(comparison.linear_cka if comparison is not None else linear),
        rbf_cka=_nan(None if comparison is None else comparison.rbf_cka),
        rbf_samples=0 if comparison is None else int(comparison.rbf_samples),
        knn_consistency=_nan(None if comparison is None else comparison.knn_consistency),
        knn_consistency_k=0 if comparison is None else int(comparison.knn_k),
        classes=np.asarray(c.classes, np.int64), class_count=np.asarray(c.counts, np.int64),
        center_norm=np.asarray(c.center_norms, np.float64),
        nc3_distance=np.zeros(0) if c.nc3_per_class is None else np.asarray(c.nc3_per_class,
                                                                             np.float64),
        proxy_center_cosine=np.zeros(0) if c.proxy_center_cosine is None
        else np.asarray(c.proxy_center_cosine, np.float64),
        kmeans_groups=np.asarray(report.groups, np.int64),
    )
    return row


def geometry_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of :func:`geometry_row` as the columns of a snapshot's ``geometry`` ({} for
    none)."""
    if not rows:
        return {}
    table: dict[str, Any] = {}
    for name in GEOMETRY_COUNTS:
        table[name] = np.array([int(r.get(name, 0)) for r in rows], np.int64)
    for name in GEOMETRY_NUMBERS:
        table[name] = np.array([_nan(r.get(name)) for r in rows], np.float64)
    for name, dtype in GEOMETRY_RAGGED.items():
        table[name] = [np.asarray(r.get(name, np.zeros(0)), dtype) for r in rows]
    return table


def table_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a snapshot's geometry table (:func:`geometry_table` read back; a column
    the file lacks is NaN / 0 / empty)."""
    if not table or "step" not in table:
        return []
    n = len(table["step"])
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name in GEOMETRY_COUNTS:
            row[name] = int(table[name][i]) if name in table else 0
        for name in GEOMETRY_NUMBERS:
            row[name] = float(table[name][i]) if name in table else float("nan")
        for name, dtype in GEOMETRY_RAGGED.items():
            row[name] = np.asarray(table[name][i], dtype) if name in table else np.zeros(0, dtype)
        rows.append(row)
    return rows


def curve_columns(table: dict[str, Any], run: int | None = None) -> dict[str, np.ndarray]:
    """The plain columns of a geometry table as curves (float64), the rows of ``run`` and
    of run 0 (the source model, or a timeline's checkpoints) when ``run`` is given, in
    step order."""
    if not table or "step" not in table:
        return {}
    keep = np.ones(len(table["step"]), bool)
    if run is not None:
        keep = np.isin(np.asarray(table["run"]), (0, int(run)))
    order = np.argsort(np.asarray(table["step"])[keep], kind="stable")
    return {name: np.asarray(table[name], np.float64)[keep][order]
            for name in (*GEOMETRY_COUNTS, *GEOMETRY_NUMBERS) if name in table}


def _none(value: float) -> float | None:
    return None if value != value else float(value)


def map_geometry_from_row(row: dict[str, Any], predictions: Any = None, labels: Any = None,
                          *, method: str = "none", versus: str = "source") -> MapGeometry:
    """A stored row (:func:`table_rows`) as the :class:`MapGeometry` the window shows: the
    error groups ranked again from its k-means groups with ``predictions`` and ``labels``
    (N,) (none without them); the per-sample arrays a row does not keep are empty."""
    n_classes = len(row["classes"])
    has_head = row["proxy_center_cosine"].size == n_classes and n_classes > 0
    collapse = Collapse(
        classes=row["classes"], counts=row["class_count"], nc1=row["nc1"],
        equinorm=row["nc2_equinorm"], equiangularity=row["nc2_equiangularity"],
        etf_error=row["nc2_etf_error"], center_norms=row["center_norm"],
        ncc_predictions=np.zeros(0, np.int64), nc3=_none(row["nc3"]),
        nc3_per_class=row["nc3_distance"] if has_head else None,
        self_duality_error=_none(row["nc3_etf_error"]),
        proxy_center_cosine=row["proxy_center_cosine"] if has_head else None,
        nc4=_none(row["nc4_ncc_agreement"]),
    )
    labelled = bool(row["labelled"])
    knn = None
    if labelled and row["knn_k"] > 0:
        knn = KnnResult(row["knn_accuracy"], np.zeros(0, np.int64),
                        np.zeros(row["knn_queries"], np.int64), row["knn_k"],
                        row["knn_temperature"], bool(row["knn_sampled"]))
    groups = row["kmeans_groups"]
    errors: list[ErrorGroup] = []
    if (labelled and groups.size and predictions is not None and labels is not None
            and len(predictions) == groups.size):
        errors = error_groups(groups, predictions, labels)
    report = GeometryReport(
        samples=row["samples"], labelled=labelled,
        classes_by=_CLASSES_BY[min(max(row["classes_by"], 0), 2)], collapse=collapse,
        head_accuracy=_none(row["head_accuracy"]), ncc_accuracy=_none(row["ncc_accuracy"]),
        knn=knn, nmi=_none(row["kmeans_nmi"]), ari=_none(row["kmeans_ari"]),
        kmeans_k=row["kmeans_k"], groups=groups, error_groups=errors)
    comparison = None
    if row["linear_cka"] == row["linear_cka"]:
        comparison = Comparison(row["samples"], row["linear_cka"], row["rbf_cka"],
                                row["rbf_samples"], row["knn_consistency"],
                                row["knn_consistency_k"])
    note = "" if comparison is not None else "not compared"
    return MapGeometry(report, comparison, run=row["run"], step=row["step"], method=method,
                       versus_note=note, versus=versus)


def class_major_rows(classifier: Any) -> np.ndarray:
    """The head's weight rows (C * P, D) float32, class-major in the data's classes (a head
    in another class order, PyCIL's, has its rows in its own order: sorted here)."""
    from protoview.core.heads import head_proxies

    vectors, classes = head_proxies(classifier)
    order = np.argsort(classes.cpu().numpy(), kind="stable")
    return vectors.float().cpu().numpy()[order]


def head_arguments(model: Any) -> dict[str, Any]:
    """:func:`measure_geometry`'s head arguments for a loaded model: its weight rows
    class-major in the data's classes (:func:`class_major_rows`), proxies per class, and
    whether the head is cosine (a model without a head: its rows are ignored there)."""
    info = getattr(model, "info", None)
    return {"head_rows": class_major_rows(model.classifier),
            "nb_proxy": info.head.nb_proxy if info else 1,
            "cosine_head": bool(info) and info.head.kind == "cosine"}


def measure_point(features: Any, logits: Any, labels: Any, *, reference: Any = None,
                  head_rows: Any = None, nb_proxy: int = 1, cosine_head: bool = False,
                  knn_k: int = KNN_K, knn_max_queries: int | None = KNN_MAX_QUERIES,
                  seed: int = 0, run: int = 0, step: int = 0,
                  device: Any = None) -> dict[str, Any]:
    """The cheap geometry of one step as a table row (:func:`geometry_row`): neural
    collapse NC1-NC4 and the proxy-to-center cosines, the head's and the weighted k-NN
    accuracy, and the linear CKA against ``reference`` (N, D') features of the same samples
    (None: not compared). No k-means (no NMI / ARI, no error groups), no RBF CKA: at 10,000
    x 512 the k-NN accuracy is most of its cost (see docs/geometry.md)."""
    report = measure_geometry(features, logits, labels, head_rows=head_rows, nb_proxy=nb_proxy,
                              cosine_head=cosine_head, knn_k=knn_k, seed=seed,
                              knn_max_queries=knn_max_queries, device=device, with_kmeans=False)
    linear = None
    if reference is not None:
        check_same_samples(len(reference), len(features), where="geometry")
        linear = linear_cka(reference, features)
    return geometry_row(report, run=run, step=step, linear=linear)
