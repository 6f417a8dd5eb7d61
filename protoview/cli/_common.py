"""Helpers every command uses: the model/data arguments, loading, progress, output, warnings.

Light to import (argparse, sys, time); heavy modules are imported inside the functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

#: A command: parsed arguments in, exit code out.
Handler = Callable[[argparse.Namespace], int]


PREPROCESS_HELP = (
    "how images become the model's input: none (the data are model inputs), a preset "
    "(imagenet, domainbed, cifar10, cifar100) and/or fields: size=N|HxW, resize=exact|short-side, "
    "crop=N|HxW, channels=1|3, mean=M[,M,M], std=S[,S,S], interpolation=bilinear|bicubic|nearest, "
    "scale=S (float pixels in [0, S]). Default: the checkpoint's own, timm's or torchvision's "
    "config for the architecture, else 224x224 with ImageNet mean/std (with a warning)"
)


STREAM_HELP = (
    "the test stream, a comma-separated list: online (default), episodic (reset before every "
    "batch) or reset_each_shift (reset at each new corruption or domain); mixed, continual or "
    "gradual (data of several shifts: all shuffled together; one after another without reset; "
    "each corruption through severities 1,2,3,4,5,4,3,2,1, data opened as "
    "cifar10c:ROOT:fog,snow:1-5); iid, sorted (class by class) or dirichlet=ALPHA (label "
    "shift, RoTTA's; ALPHA > 0, smaller = longer runs of one class); samples=N (at most N "
    "samples of each domain, the toolkit's NUM_EX). The toolkit's settings are accepted: "
    "correlated = continual,sorted; mixed_domains_correlated = mixed,sorted; "
    "gradual_correlated = gradual,sorted; reset_each_shift_correlated = "
    "reset_each_shift,continual,sorted. E.g. continual,dirichlet=0.1"
)


def add_order_args(p: argparse.ArgumentParser) -> None:
    """``--order`` (and ``--no-shuffle``, its older spelling of ``--order file``)."""
    p.add_argument("--order", choices=("auto", "shuffled", "file"), default="auto",
                   help="the batch order: shuffled with --seed, or the data's file order; auto "
                        "(default) is the benchmark's own: file order for CIFAR-10-C and "
                        "CIFAR-100-C (as RobustBench's and tent's scripts) and CCC, shuffled "
                        "otherwise (as TSD's and the toolkit's scripts); printed with the run")
    p.add_argument("--no-shuffle", action="store_true",
                   help="the data's file order (the same as --order file)")


def order_choice(args: argparse.Namespace) -> bool | None:
    """``shuffle`` for a run from ``--order`` / ``--no-shuffle``: None is the data's own."""
    if args.no_shuffle:
        if args.order == "shuffled":
            from protoview.errors import ParameterError

            raise ParameterError("--no-shuffle", "contradicts --order shuffled; give one")
        return False
    return {"auto": None, "shuffled": True, "file": False}[args.order]


def add_open_options(p: argparse.ArgumentParser, *, trust: bool = True) -> None:
    """--arch, --split, --nb-proxy, --preprocess (and --trust-checkpoint): every command's."""
    p.add_argument("--arch", help="architecture for a plain state_dict: torchvision name (resnet18), timm name, or FILE.py:build_fn")
    if trust:
        p.add_argument("--trust-checkpoint", action="store_true", help="allow a checkpoint that contains pickled Python code to run it (only for files you trust)")
    p.add_argument("--split", help="head attribute path to split at (e.g. 'fc' or 'head.fc') when auto-detection fails")
    p.add_argument("--nb-proxy", type=int, help="proxies per class of a cosine head (default: stored, else inferred from the data's class count)")
    p.add_argument("--preprocess", metavar="SPEC", help=PREPROCESS_HELP)
    p.add_argument("--class-order", metavar="ORDER", default="auto",
                   help="the head's class order when it is not the data's: pycil (PyCIL's "
                        "seeded order, seed 1993; pycil:SEED for another), a file of class "
                        "indices (head class k = data class order[k]), data (the data's own); "
                        "auto (default): pycil for a PyCIL checkpoint whose head holds every "
                        "class of the data, else the data's")
    p.add_argument("--features", choices=("backbone", "projection"),
                   help="a self-supervised encoder's features: backbone (default, what its paper "
                        "evaluates) or projection (the projection head's output, where SwAV's and "
                        "DINO's prototypes live)")
    p.add_argument("--dino-weights", choices=("teacher", "student"),
                   help="which network of a DINO checkpoint (default: the teacher)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth/.pkl/.safetensors/TorchScript) or 'demo'/'demo:cosine'")
    p.add_argument("data", help="dataset: image folder, .npz, features .h5/.npz, demo[:SHIFT[:SEVERITY]], cifar10:ROOT ...")
    add_open_options(p)
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--batch-size", type=int, default=256, help="extraction batch size (default 256)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")


def progress_printer(label: str, *, interactive: bool | None = None, every_s: float = 10.0) -> Callable[[int, int], None]:
    """A progress callback on stderr: one updating bar on a terminal; elsewhere (a log file,
    nohup, a pipe) plain lines, ``protoview: LABEL 40% (400/1000) 12.3 s``, at most one
    per ``every_s`` seconds besides the last."""
    if interactive is None:
        interactive = sys.stderr.isatty() and sys.stdout.isatty()
    start = time.perf_counter()
    last = [start]

    def progress(done: int, total: int) -> None:
        if not interactive:
            now = time.perf_counter()
            finished = total > 0 and done >= total
            if finished or now - last[0] >= every_s:
                last[0] = now
                pct = f"{100 * done / total:.0f}% " if total else ""
                sys.stderr.write(f"protoview: {label} {pct}({done}/{total}) {now - start:.1f} s\n")
                sys.stderr.flush()
            return
        frac = done / total if total else 1.0
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{label} [{bar:<30}] {done}/{total} {time.perf_counter() - start:5.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return progress


NO_LABELS = "no labels"


def score_text(value: float | None, labelled: bool, fmt: str = ".1%") -> str:
    """An accuracy-type number as the user reads it: ``"no labels"`` for unlabelled data
    (never 0% or NaN), ``"n/a"`` when it was not computed, else ``format(value, fmt)``."""
    if not labelled:
        return NO_LABELS
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return "n/a"
    return format(value, fmt)


def say(msg: str) -> None:
    try:
        print(msg, flush=True)
    except UnicodeEncodeError:  # a file name that is not UTF-8, on a stdout that is strict
        encoding = sys.stdout.encoding or "utf-8"
        print(msg.encode(encoding, "backslashreplace").decode(encoding), flush=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, like errors (not Python's two lines of source)."""
    from protoview.core.warnings import ProtoviewWarning

    text = " ".join(str(message).split())
    kind = "" if issubclass(category, ProtoviewWarning) else f"{category.__name__}: "
    print(f"protoview: warning: {kind}{text}", file=sys.stderr if file is None else file, flush=True)


def open_request(args: argparse.Namespace, *, adapt: bool = False):
    """The session's OpenRequest for the parsed arguments of any command."""
    from protoview.core.session import OpenRequest

    return OpenRequest(
        checkpoint=args.checkpoint, data=args.data, arch=getattr(args, "arch", None),
        trust=getattr(args, "trust_checkpoint", False), nb_proxy=getattr(args, "nb_proxy", None),
        split=getattr(args, "split", None), device=getattr(args, "device", None),
        seed=getattr(args, "seed", 0), adapt=adapt, preprocess=getattr(args, "preprocess", None),
        decoded=getattr(args, "decoded", "auto"),
        class_order=getattr(args, "class_order", "auto"),
        features=getattr(args, "features", None) or "backbone",
        dino_weights=getattr(args, "dino_weights", None),
    )


def open_model_and_data(args: argparse.Namespace, *, warn: bool = True):
    """(model, dataset) as every command opens them (see ``core.opening.open_model_and_data``),
    saying how proxies per class were found when they were inferred from the data (and
    warning about a default preprocessing) when ``warn``."""
    from protoview.core.opening import open_request as opener

    model, dataset = opener(open_request(args), warn=warn)
    if warn:  # under torchrun only rank 0 speaks
        say_inferred_proxies(model, dataset)
    return model, dataset


def say_inferred_proxies(model, dataset) -> None:
    info = model.info
    if info is not None and info.nb_proxy_from == "inferred":
        head = info.head
        say(
            f"note: {head.nb_proxy} proxies per class inferred from the {head.num_proxies} rows of the "
            f"cosine head and the {head.num_classes} classes of {dataset.source} "
            "(pass --nb-proxy to change it)"
        )


def model_features(args: argparse.Namespace):
    """Load the model and the dataset named by ``args`` and return (model, dataset, result)."""
    from protoview.core.features import cached_features, extract_features

    model, dataset = open_model_and_data(args)
    kwargs = dict(batch_size=args.batch_size, device=args.device, progress=progress_printer("extract"))
    result = extract_features(model, dataset, **kwargs) if args.no_cache else cached_features(model, dataset, **kwargs)
    for note in result.notes:
        say(f"note: {note}")
    return model, dataset, result
