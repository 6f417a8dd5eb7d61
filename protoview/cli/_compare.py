"""``protoview compare``: the methods x shifts accuracy (or error) table, as TTA papers
print it, over one seed or several (mean ± std), with its protocol.

Registered onto the main parser by :mod:`protoview.cli._main`; light to import like it.
"""

from __future__ import annotations

import argparse
import sys

from protoview.cli._common import (
    STREAM_HELP,
    Handler,
    add_open_options,
    add_order_args,
    order_choice,
    say,
)


def register(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    from protoview.core.adapt.registry import compare_method_names

    default_methods = ",".join(compare_method_names())
    p = sub.add_parser(
        "compare",
        help="methods x shifts accuracy table (online accuracy over one pass, as papers report it)",
        description=(
            "Run each method over each shift from the source checkpoint (one pass, seeded) and "
            "print the online accuracy table with its mean column; --full adds the full-set "
            "accuracy after the pass; --seeds 1-5 runs each method once per seed and reports "
            "mean ± std; --metric error reports 100 - accuracy. The CSV and Markdown files "
            "carry the table's protocol above it. E.g. protoview compare demo:cosine demo --shifts "
            "noise,blur,contrast,rotation,mix --methods none,bn,tent,tsd,tsd:corrected"
        ),
    )
    p.add_argument("checkpoint", help="checkpoint file or 'demo'/'demo:linear'/'demo:cosine'")
    p.add_argument("data", help="dataset with a shift or domain: demo[:SHIFT[:SEVERITY]], "
                                "cifar10c:ROOT:CORRUPTION:SEVERITY, pacs:ROOT:DOMAIN, ... "
                                "(a comma-separated list of shifts gives the columns)")
    add_open_options(p)
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--methods", default=default_methods,
                   help=f"comma-separated methods, NAME or NAME:VARIANT (tsd:corrected); "
                        f"default {default_methods} (protoview methods lists them all)")
    p.add_argument("--shifts", help="comma-separated shifts, corruptions or domains put in place "
                                    "of DATA's own (the columns), e.g. noise,blur,contrast")
    p.add_argument("--batch-size", type=int, default=64, help="adaptation batch size (default 64)")
    p.add_argument("--seed", type=int, help="seed of the batch order and of torch, numpy and "
                                            "python's random before each run (default 0)")
    p.add_argument("--seeds", metavar="LIST",
                   help="run each method once per seed, e.g. 1,2,3,4,5 or 1-5 (the toolkit's "
                        "benchmark seeds): cells are the mean ± sample std (ddof=1) over the "
                        "seeds, the CSV has every seed's row")
    p.add_argument("--metric", default="accuracy", metavar="accuracy|error",
                   help="what the cells show: accuracy (%%, default) or error = 100 - accuracy "
                        "(%%, as the toolkit's tables)")
    add_order_args(p)
    p.add_argument("--stream", default="online", help=STREAM_HELP + ". continual or mixed run "
                   "each method once over all shifts together; a column is then its shift's "
                   "samples in that run")
    p.add_argument("--param", action="append", default=[], metavar="[METHOD.]NAME=VALUE",
                   help="a method parameter: tent.lr=1e-3 for one method, filter_K=20 for every "
                        "method that takes it (repeatable)")
    p.add_argument("--full", action="store_true",
                   help="also the full-set accuracy after the pass (cells 'online / full')")
    p.add_argument("--source-data", default="", metavar="DATA",
                   help="labelled source data for the methods that need them (rmt), e.g. "
                        "cifar10:ROOT:train; prepared as the test data")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV, its protocol "
                                                 "(setting, seeds, preprocessing, parameters, "
                                                 "...) as '# key: value' lines above it")
    p.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown, its "
                                                      "protocol as a list above it")
    handlers["compare"] = cmd_compare


def _params(items: list[str]) -> dict[str, dict[str, object]]:
    from protoview.core.adapt.params import parse_value
    from protoview.errors import ParameterError

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError("--param", f"expected [METHOD.]NAME=VALUE, got {item!r}")
        method, dot, name = key.strip().rpartition(".")
        target = method if dot else "*"
        if name in out.get(target, {}):
            raise ParameterError("--param", f"{key.strip()} is given twice")
        out.setdefault(target, {})[name] = parse_value(text)
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from protoview.core.adapt.stream import names_domain_order, parse_stream
    from protoview.core.compare import check_metric, compare_methods, parse_methods, parse_seeds
    from protoview.core.data import shift_specs, spec_names
    from protoview.errors import ParameterError

    if args.batch_size < 1:
        raise ParameterError("--batch-size", f"must be >= 1, got {args.batch_size}")
    if args.seed is not None and args.seeds is not None:
        raise ParameterError("--seeds", "give --seed N or --seeds LIST, not both")
    if args.seeds is not None:
        seeds = parse_seeds(args.seeds, "--seeds")
    else:
        seeds = parse_seeds([0 if args.seed is None else args.seed], "--seed")
    metric = check_metric(args.metric, "--metric")
    methods = parse_methods(args.methods)
    from protoview.core.adapt.registry import check_source_data

    for entry in methods:
        check_source_data(entry.partition(":")[0], args.source_data)
    stream = parse_stream(args.stream)
    together = names_domain_order(args.stream)
    shifts = [s.strip() for s in args.shifts.split(",")] if args.shifts else None
    specs = shift_specs(args.data, shifts)
    names = spec_names(specs)
    for path in (args.csv, args.markdown):
        if path and not Path(path).expanduser().absolute().parent.is_dir():
            raise ParameterError(path, "the folder to write into does not exist")
    options = dict(arch=args.arch, trust=args.trust_checkpoint, nb_proxy=args.nb_proxy,
                   split=args.split, preprocess=args.preprocess, class_order=args.class_order,
                   features=args.features or "backbone", dino_weights=args.dino_weights)

    def progress(message: str) -> None:
        sys.stderr.write(f"protoview: compare {message}\n")
        sys.stderr.flush()

    table = compare_methods(
        args.checkpoint, specs, methods, params=_params(args.param), batch_size=args.batch_size,
        seeds=seeds, metric=metric, stream=stream.text(), together=together, full_set=args.full,
        open_options=options, names=names, device=args.device, progress=progress,
        shuffle=order_choice(args), source_data=args.source_data,
    )
    if args.source_data:
        table.protocol["source_data"] = args.source_data
    table.settings = f"{args.checkpoint} on {args.data}; {table.settings}"
    items = list(table.protocol.items())  # DATA as given, before each shift's dataset
    at = next((k for k, (key, _) in enumerate(items) if key.startswith("dataset ")), len(items))
    table.protocol = dict([*items[:at], ("data", args.data), *items[at:]])
    say(table.text())
    for note in table.notes:
        say(f"note: {note}")
    from protoview.core.atomic import atomic_path

    for path, text in ((args.csv, table.csv()), (args.markdown, table.markdown())):
        if path:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(text, encoding="utf-8")
            say(f"wrote {path}")
    return 0
