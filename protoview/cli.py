"""protoview's command line: the window, and headless commands over ``protoview.core``.

Kept light on purpose: this module imports nothing heavy at the top, so that
``protoview --help`` and ``protoview --version`` answer at once. Every command imports
what it needs inside its own function.

Exit codes: 0 success, 1 cancelled (Ctrl+C), 2 a problem with the user's input (one line
on stderr naming the file and the problem), 3 an internal error (one line; ``--debug``
shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from protoview import __version__

COMMANDS = ("demo", "info", "extract", "export", "adapt", "cluster", "assign", "gui")


# ---------------------------------------------------------------------------- parsing
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth/.pkl/.safetensors/TorchScript) or 'demo'/'demo:cosine'")
    p.add_argument("data", help="dataset: image folder, .npz, features .h5/.npz, demo[:SHIFT[:SEVERITY]], cifar10:ROOT ...")
    p.add_argument("--arch", help="architecture for a plain state_dict: torchvision name (resnet18), timm name, or FILE.py:build_fn")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow a checkpoint that contains pickled Python code to run it (only for files you trust)")
    p.add_argument("--split", help="head attribute path to split at (e.g. 'fc' or 'head.fc') when auto-detection fails")
    p.add_argument("--nb-proxy", type=int, help="proxies per class of a cosine head (PyCIL checkpoints do not store it)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--batch-size", type=int, default=256, help="extraction batch size (default 256)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protoview",
        description=(
            "Watch a classifier's representation move: one UMAP map of samples, class centers, "
            "proxies and k-means prototypes, with live test-time adaptation. With no command, "
            "opens the window on the built-in demo."
        ),
        epilog="Run 'protoview COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"protoview {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="the built-in demo: run it headless, or retrain its checkpoints")
    p.add_argument("action", nargs="?", default="run", choices=("run", "train"))
    p.add_argument("--shift", default="noise", help="noise, blur, contrast, rotation, mix or none (default noise)")
    p.add_argument("--severity", type=int, default=3, help="1..5 (default 3)")
    p.add_argument("--head", default="cosine", choices=("linear", "cosine"))
    p.add_argument("--out", help="run: also write a snapshot here; train: output folder (default: resources/demo)")
    p.add_argument("--epochs", type=int, help="train: epochs")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("info", help="describe a checkpoint, a snapshot or a features file")
    p.add_argument("path")
    p.add_argument("--arch")
    p.add_argument("--trust-checkpoint", action="store_true")
    p.add_argument("--split")
    p.add_argument("--nb-proxy", type=int)
    p.add_argument("--num-classes", type=int, help="class count, used to infer proxies per class of PyCIL checkpoints")

    p = sub.add_parser("extract", help="extract features of a dataset into an HDF5 file")
    _add_model_args(p)
    p.add_argument("--out", required=True, help="output features file (.h5)")

    p = sub.add_parser("export", help="compute the map, centers and proxies and write an HDF5 snapshot")
    _add_model_args(p)
    p.add_argument("--out", required=True, help="output snapshot file (.h5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-map", action="store_true", help="skip the UMAP map (embeddings are NaN)")

    p = sub.add_parser("gui", help="open the window (the default when no command is given)")
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("data", nargs="?")
    return parser


# ---------------------------------------------------------------------------- helpers
def _progress_printer(label: str) -> Callable[[int, int], None]:
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


def _say(msg: str) -> None:
    try:
        print(msg, flush=True)
    except UnicodeEncodeError:  # a file name that is not UTF-8, on a stdout that is strict
        encoding = sys.stdout.encoding or "utf-8"
        print(msg.encode(encoding, "backslashreplace").decode(encoding), flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, like errors (not Python's two lines of source)."""
    from protoview.core.warnings import ProtoviewWarning

    text = " ".join(str(message).split())
    kind = "" if issubclass(category, ProtoviewWarning) else f"{category.__name__}: "
    print(f"protoview: warning: {kind}{text}", file=sys.stderr if file is None else file, flush=True)


def _load_model(args: argparse.Namespace, num_classes: int | None = None):
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


def _features(args: argparse.Namespace):
    """Load the model and the dataset named by ``args`` and return (model, dataset, result)."""
    from protoview.core.data import open_dataset
    from protoview.core.features import cached_features, extract_features

    model = _load_model(args)
    dataset = open_dataset(args.data, model.info.transform if model.info else None, num_classes=model.info.head.num_classes if model.info else None)
    kwargs = dict(batch_size=args.batch_size, device=args.device, progress=_progress_printer("extract"))
    result = extract_features(model, dataset, **kwargs) if args.no_cache else cached_features(model, dataset, **kwargs)
    for note in result.notes:
        _say(f"note: {note}")
    return model, dataset, result


# ---------------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace) -> int:
    path = args.path
    from protoview.core.snapshot import hdf5_format

    if path.lower().endswith((".h5", ".hdf5")) and hdf5_format(path) == "protoview-features":
        from protoview.core.data import open_dataset

        features = open_dataset(path)
        acc = ""
        if features.predictions is not None and (features.labels >= 0).any():
            known = features.labels >= 0
            acc = f"; accuracy {(features.predictions[known] == features.labels[known]).mean():.1%}"
        _say(f"{features.description}{acc}")
        for key in ("checkpoint", "checkpoint_sha256", "dataset", "device"):
            if features.attrs.get(key):
                _say(f"  {key}: {features.attrs[key]}")
        return 0
    if path.lower().endswith((".h5", ".hdf5")):
        from protoview.core.snapshot import snapshot_summary

        _say(snapshot_summary(path))
        return 0
    from protoview.core.checkpoint import inspect_checkpoint

    info = inspect_checkpoint(
        path, args.arch, trust=args.trust_checkpoint, num_classes=args.num_classes,
        nb_proxy=args.nb_proxy, split=args.split,
    )
    _say(info.describe())
    return 0


def _extract_distributed(args: argparse.Namespace, env) -> int:
    """``protoview extract`` under torchrun: a shard per rank, merged by rank 0."""
    from protoview.core.data import open_dataset
    from protoview.core.distributed import distributed_extract, shard_folder

    def load():
        model = _load_model(args)
        info = model.info
        dataset = open_dataset(args.data, info.transform if info else None, num_classes=info.head.num_classes if info else None)
        return model, dataset

    summary = distributed_extract(
        env, args.out, load, batch_size=args.batch_size, device=args.device,
        progress=_progress_printer("extract"), say=_say,
    )
    if env.rank == 0:
        _say(
            f"wrote {args.out}: {summary['total']} samples from {env.world_size} ranks "
            f"(shards in {shard_folder(args.out)}, on {','.join(summary['devices']) or '-'})"
        )
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from protoview.core.distributed import torchrun_env

    env = torchrun_env()
    if env is not None:
        return _extract_distributed(args, env)
    from protoview.core.features import write_feature_file

    model, dataset, result = _features(args)
    from protoview.core.features import feature_file_attrs

    write_feature_file(args.out, result, attrs=feature_file_attrs(model, dataset))
    _say(
        f"wrote {args.out}: {result.features.shape[0]} samples x {result.features.shape[1]} features "
        f"({result.images_per_second:.0f} images/s on {result.device})"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from protoview.core.state import build_state, state_to_snapshot
    from protoview.core.snapshot import write_snapshot

    model, dataset, result = _features(args)
    state = build_state(model, dataset, result, seed=args.seed, with_map=not args.no_map)
    write_snapshot(args.out, state_to_snapshot(state))
    _say(f"wrote {args.out}: {state.summary()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.action == "train":
        from protoview.core.demo import train_demo_models

        kwargs = {"seed": args.seed}
        if args.epochs:
            kwargs["epochs"] = args.epochs
        out = args.out or os.path.join(os.getcwd(), "resources", "demo")
        report = train_demo_models(out, **kwargs)
        _say(f"trained demo checkpoints into {out}: {report}")
        return 0
    from protoview.core.demo_run import run_headless_demo

    return run_headless_demo(head=args.head, shift=args.shift, severity=args.severity, seed=args.seed, out=args.out, say=_say)


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from protoview.gui.app import run_app
    except ImportError as exc:  # the window is not built yet in this version
        if exc.name and exc.name.startswith("protoview.gui"):
            _say("the window is not part of this version yet; running the headless demo instead")
            return cmd_demo(build_parser().parse_args(["demo"]))
        raise
    return run_app(getattr(args, "checkpoint", None), getattr(args, "data", None))


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "info": cmd_info,
    "extract": cmd_extract,
    "export": cmd_export,
    "gui": cmd_gui,
}


def _register_science_commands(parser: argparse.ArgumentParser) -> None:
    """adapt / cluster / assign are added by protoview.cli_science (kept apart for size)."""
    from protoview import cli_science

    cli_science.register(parser, HANDLERS, _add_model_args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `protoview CHECKPOINT DATA` (no command) opens the window on those files.
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv = ["gui", *argv]
    parser = build_parser()
    _register_science_commands(parser)
    args = parser.parse_args(argv)
    command = args.command or "gui"
    from protoview.errors import CancelledError, ProtoviewError

    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            code = HANDLERS[command](args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
            return code
    except ProtoviewError as exc:
        print(f"protoview: error: {exc.message}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, CancelledError):
        print("protoview: cancelled", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`protoview info x | head -1`): stop quietly, as cat does;
        # point stdout at devnull so that the interpreter's final flush does not complain
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if args.debug:
            raise
        print(
            f"protoview: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback; please report it)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
