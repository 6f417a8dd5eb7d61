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


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth/.pkl/.safetensors/TorchScript) or 'demo'/'demo:cosine'")
    p.add_argument("data", help="dataset: image folder, .npz, features .h5/.npz, demo[:SHIFT[:SEVERITY]], cifar10:ROOT ...")
    p.add_argument("--arch", help="architecture for a plain state_dict: torchvision name (resnet18), timm name, or FILE.py:build_fn")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow a checkpoint that contains pickled Python code to run it (only for files you trust)")
    p.add_argument("--split", help="head attribute path to split at (e.g. 'fc' or 'head.fc') when auto-detection fails")
    p.add_argument("--nb-proxy", type=int, help="proxies per class of a cosine head (PyCIL checkpoints do not store it)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--batch-size", type=int, default=256, help="extraction batch size (default 256)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")


def progress_printer(label: str) -> Callable[[int, int], None]:
    """A progress callback that draws one updating line on stderr (only on a terminal)."""
    interactive = sys.stderr.isatty()
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not interactive:
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


def load_model(args: argparse.Namespace, num_classes: int | None = None):
    from protoview.core.checkpoint import load_checkpoint

    if args.checkpoint in ("demo", "demo:linear", "demo:cosine"):
        from protoview.core.demo import demo_checkpoint_path

        head = args.checkpoint.partition(":")[2] or "cosine"
        path = demo_checkpoint_path(head)
    else:
        path = args.checkpoint
    return load_checkpoint(
        path,
        getattr(args, "arch", None),
        trust=getattr(args, "trust_checkpoint", False),
        num_classes=num_classes,
        nb_proxy=getattr(args, "nb_proxy", None),
        split=getattr(args, "split", None),
    )


def model_features(args: argparse.Namespace):
    """Load the model and the dataset named by ``args`` and return (model, dataset, result)."""
    from protoview.core.data import open_dataset
    from protoview.core.features import cached_features, extract_features

    model = load_model(args)
    dataset = open_dataset(args.data, model.info.transform if model.info else None, num_classes=model.info.head.num_classes if model.info else None)
    kwargs = dict(batch_size=args.batch_size, device=args.device, progress=progress_printer("extract"))
    result = extract_features(model, dataset, **kwargs) if args.no_cache else cached_features(model, dataset, **kwargs)
    for note in result.notes:
        say(f"note: {note}")
    return model, dataset, result
