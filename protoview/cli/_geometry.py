"""``protoview geometry``: a feature space's geometry measured (neural collapse, k-NN / NCC
accuracy beside the head's, k-means against the labels, the clusters with the most errors,
CKA against another checkpoint). Light to import; the science is in ``core.measures``."""

from __future__ import annotations

import argparse
from pathlib import Path

from protoview.cli._common import (
    NO_LABELS,
    Handler,
    add_model_args,
    open_model_and_data,
    progress_printer,
    say,
    score_text,
)


def register(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    p = sub.add_parser("geometry", help="neural collapse NC1-NC4, k-NN / nearest-center accuracy, "
                                        "k-means NMI/ARI, error clusters, CKA against another model")
    add_model_args(p)
    p.add_argument("--csv", metavar="PATH", help="also write every number as CSV rows "
                   "(section, item, metric, value)")
    p.add_argument("--versus", metavar="CKPT2", help="another checkpoint: CKA (linear, RBF) and "
                   "k-NN consistency between the two models' features of the same samples")
    p.add_argument("--versus-data", metavar="DATA2", help="the data CKPT2 is run on (default "
                   "DATA); must be the same samples in the same order")
    p.add_argument("--kmeans-k", type=int, help="k-means groups (default: the head's classes, else the labels', else 10)")
    p.add_argument("--knn-k", type=int, default=20, help="k-NN neighbours (default 20, DINO's)")
    p.add_argument("--knn-temperature", type=float, default=0.07,
                   help="k-NN vote temperature (default 0.07, DINO's)")
    p.add_argument("--knn-queries", type=int, default=10_000, metavar="N",
                   help="k-NN accuracy on at most N queries, a seeded sample, against all "
                        "samples (default 10000; 0: every sample)")
    p.add_argument("--rbf-samples", type=int, default=3000, metavar="N",
                   help="RBF CKA on at most N samples, a seeded sample (its matrices are N x N; "
                        "default 3000; 0: all)")
    p.add_argument("--clusters", type=int, default=5, help="error clusters to print (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of k-means and the samples (default 0)")
    handlers["geometry"] = cmd_geometry


def _check_args(args: argparse.Namespace) -> None:
    from protoview.errors import ParameterError

    for option, value, low in (("--knn-k", args.knn_k, 1), ("--knn-queries", args.knn_queries, 0),
                               ("--rbf-samples", args.rbf_samples, 0), ("--clusters", args.clusters, 0),
                               ("--kmeans-k", args.kmeans_k, 1)):
        if value is not None and value < low:
            raise ParameterError(option, f"must be at least {low}, got {value}")
    if 0 < args.rbf_samples < 4:
        raise ParameterError("--rbf-samples", f"must be 0 (all) or at least 4, got {args.rbf_samples}")
    if not args.knn_temperature > 0:
        raise ParameterError("--knn-temperature", f"must be > 0, got {args.knn_temperature}")
    if args.versus_data and not args.versus:
        raise ParameterError("--versus-data", "needs --versus CKPT2")
    if args.csv and not Path(args.csv).expanduser().absolute().parent.is_dir():
        raise ParameterError(args.csv, "the folder to write into does not exist")


def _features(args: argparse.Namespace, model, dataset):
    from protoview.core.data import FeatureSet
    from protoview.core.features import cached_features, extract_features, precomputed_features

    if isinstance(dataset, FeatureSet):
        return precomputed_features(dataset, model)
    kwargs = dict(batch_size=args.batch_size, device=args.device, progress=progress_printer("extract"))
    result = (extract_features if args.no_cache else cached_features)(model, dataset, **kwargs)
    for note in result.notes:
        say(f"note: {note}")
    return result


def cmd_geometry(args: argparse.Namespace) -> int:
    from protoview.core.measures import (
        compare_representations,
        head_arguments,
        measure_geometry,
        sample_identity,
    )

    _check_args(args)
    model, dataset = open_model_and_data(args)
    other = None
    if args.versus:
        second = argparse.Namespace(**{**vars(args), "checkpoint": args.versus,
                                       "data": args.versus_data or args.data})
        other = open_model_and_data(second)
        from protoview.core.cka import check_same_samples

        check_same_samples(len(dataset), len(other[1]), sample_identity(dataset),
                           sample_identity(other[1]),
                           "--versus-data" if args.versus_data else "--versus")
    result = _features(args, model, dataset)
    info = model.info
    # the k-NN's similarity blocks run where the features were extracted (a GPU when one was)
    device = args.device or (result.device if str(result.device).startswith("cuda") else None)
    report = measure_geometry(
        result.features, result.logits, result.labels, **head_arguments(model),
        kmeans_k=args.kmeans_k, knn_k=args.knn_k, knn_temperature=args.knn_temperature,
        knn_max_queries=args.knn_queries or None, seed=args.seed, device=device,
    )
    names = list(getattr(dataset, "class_names", None) or info.class_names or [])
    comparison = None
    if other is not None:
        second_result = _features(args, *other)
        comparison = compare_representations(
            result.features, second_result.features, where="--versus",
            rbf_max_samples=args.rbf_samples or None, knn_max_queries=args.knn_queries or None,
            seed=args.seed, device=device,
        )
    for line in report_lines(report, names, args, comparison):
        say(line)
    if args.csv:
        _write_csv(args.csv, report, names, comparison, args.versus or "")
    return 0


def _name(names: list[str], c: int) -> str:
    return names[c] if c < len(names) else str(c)


def report_lines(report, names: list[str], args: argparse.Namespace, comparison=None) -> list[str]:
    """The printed table of ``protoview geometry``."""
    c, lab = report.collapse, report.labelled
    by = {"labels": "labels", "predictions": "predicted classes (no labels)",
          "k-means groups": f"k-means groups (no labels, no head: k={report.kmeans_k})"
          }[report.classes_by]
    num = lambda v, fmt=".4g": "n/a" if v is None else format(v, fmt)  # noqa: E731
    lines = [
        f"geometry of {args.checkpoint} on {args.data}: {report.samples} samples, "
        f"{c.classes.size} classes with samples, grouped by {by}",
        "neural collapse (Papyan, Han & Donoho 2020; reference rhubarbwu/neural-collapse):",
        f"  NC1  Tr(Sigma_W Sigma_B^+) / C                      {num(c.nc1)}",
        f"  NC2  equinorm: std / mean of centred-mean norms     {num(c.equinorm)}",
        f"       equiangularity: std of their cosines           {num(c.equiangularity)}",
        f"       distance to the simplex ETF                    {num(c.etf_error)}",
        f"  NC3  mean |w_c/|w_c| - m_c/|m_c||  (0: self-dual)    {num(c.nc3)}"
        + ("" if c.self_duality_error is None else f"   (ETF form {num(c.self_duality_error)})"),
        f"  NC4  nearest class mean agrees with the head        {num(c.nc4, '.1%')}",
    ]
    if c.proxy_center_cosine is not None:
        cos = c.proxy_center_cosine
        lo, hi = int(cos.argmin()), int(cos.argmax())
        lines.append(
            f"proxy-to-center cosine: mean {cos.mean():.3f}, lowest {cos[lo]:.3f} "
            f"({_name(names, int(c.classes[lo]))}), highest {cos[hi]:.3f} "
            f"({_name(names, int(c.classes[hi]))})")
    knn = report.knn
    knn_text = NO_LABELS if knn is None else score_text(knn.accuracy, lab)
    knn_what = f"{args.knn_k if knn is None else knn.k}-NN, T {args.knn_temperature:g}"
    if knn is not None and knn.sampled:
        knn_what += f", {knn.queries.size:,} of {report.samples:,} samples as queries"
    head = "n/a (no head)" if lab and report.head_accuracy is None else \
        score_text(report.head_accuracy, lab)
    lines.append(f"accuracy: head {head} | weighted k-NN "
                 f"({knn_what}) {knn_text} | nearest class center "
                 f"{score_text(report.ncc_accuracy, lab)}")
    lines.append(f"k-means (k={report.kmeans_k}) against the labels: NMI "
                 f"{score_text(report.nmi, lab, '.3f')}, ARI {score_text(report.ari, lab, '.3f')}")
    if not lab:
        lines.append(f"clusters with the most errors: {NO_LABELS}")
    elif report.head_accuracy is None:
        lines.append("clusters with the most errors: no head (no predictions to be wrong)")
    elif args.clusters:
        lines.append("clusters with the most errors (k-means group: size, errors, error rate, "
                     "true classes):")
        for g in report.error_groups[: args.clusters]:
            mix = ", ".join(f"{_name(names, k)} {n}" for k, n in g.class_mix[:4])
            more = ", ..." if len(g.class_mix) > 4 else ""
            lines.append(f"  group {g.group:>3}: {g.members.size:>6} samples, {g.errors:>6} errors, "
                         f"{score_text(g.error_rate, True):>6}  {mix}{more}")
    if comparison is not None:
        rbf = "" if comparison.rbf_samples == comparison.samples else \
            f" on {comparison.rbf_samples:,} of {comparison.samples:,} samples"
        lines.append(f"versus {args.versus}: linear CKA {comparison.linear_cka:.4f}, RBF CKA "
                     f"{comparison.rbf_cka:.4f}{rbf}, {comparison.knn_k}-NN consistency "
                     f"{comparison.knn_consistency:.3f} (Kornblith et al. 2019; 1 = same up to "
                     "rotation and scale)")
    return lines


def _write_csv(path: str, report, names: list[str], comparison, versus: str) -> None:
    import csv
    import io

    from protoview.core.atomic import atomic_path
    from protoview.core.measures import report_rows

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "item", "metric", "value"))
    writer.writerows(report_rows(report, names, comparison, versus))
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")
    say(f"wrote {path}")
