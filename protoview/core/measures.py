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
    seed: int = 0, device: Any = None,
) -> GeometryReport:
    """Measure one model's feature space on one dataset.

    features: ``(N, D)`` float; logits: ``(N, C)`` float the head's (None or ``(N, 0)``: an
    encoder without a head: no NC3 / NC4, no head accuracy, no error groups; without labels
    too, the geometry of the k-means groups); labels: ``(N,)`` int,
    ``-1`` unknown; head_rows / nb_proxy / cosine_head: the head's weight rows
    (:func:`~protoview.core.heads.head_proxies`), see :func:`neural_collapse`; kmeans_k: the
    groups (default ``C``); knn_*: :func:`knn_accuracy`'s; seed: k-means' and the k-NN
    query sample's; device: where the k-NN runs.
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
    groups = kmeans_prototypes(x, k, seed=seed, nredo=1, use_gpu=False).assignments
    seconds["kmeans"] = time.perf_counter() - t0
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
    scores_km = clustering_scores(groups, y) if labelled else {}
    return GeometryReport(
        samples=x.shape[0], labelled=labelled,
        classes_by=classes_by, collapse=collapse,
        head_accuracy=accuracy(preds, y) if labelled and preds is not None else None,
        ncc_accuracy=accuracy(collapse.ncc_predictions, y) if labelled else None,
        knn=knn, nmi=scores_km.get("nmi"), ari=scores_km.get("ari"), kmeans_k=k,
        groups=groups,
        error_groups=error_groups(groups, preds, y) if labelled and preds is not None else [],
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
    ``step``, ``method`` the run's method ("none" for the source model)."""

    report: GeometryReport
    comparison: Comparison | None
    run: int
    step: int
    method: str = "none"
    versus_note: str = ""


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
    from protoview.core.heads import head_proxies
    from protoview.errors import CancelledError, ParameterError

    if features is None or features.logits is None:
        raise ParameterError("geometry", "the map has no logits: geometry needs the "
                                         "model's head")
    rows, _ = head_proxies(model.classifier)
    info = model.info
    comparing = adapted and source is not None
    say = detail or (lambda _done, _total, _text: None)
    say(0, 1 + comparing, "geometry: neural collapse, k-NN accuracy, k-means")
    # the k-NN's similarity blocks run where the features were extracted (a GPU when one was)
    device = features.device if str(features.device).startswith("cuda") else None
    report = measure_geometry(
        features.features, features.logits, features.labels,
        head_rows=rows.float().cpu().numpy(), nb_proxy=info.head.nb_proxy if info else 1,
        cosine_head=bool(info) and info.head.kind == "cosine", kmeans_k=req.kmeans_k,
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
