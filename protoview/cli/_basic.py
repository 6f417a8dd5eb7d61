"""``protoview demo`` / ``info`` / ``extract`` / ``export`` / ``gui``: files in, files out."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from protoview.cli._common import (
    Handler,
    add_model_args,
    add_open_options,
    model_features,
    open_model_and_data,
    progress_printer,
    say,
)


def cmd_info(args: argparse.Namespace) -> int:
    from protoview.core.opening import checkpoint_path
    from protoview.core.snapshot import hdf5_format

    path = checkpoint_path(args.path)  # demo, demo:linear, demo:cosine: the demo's file

    if path.lower().endswith((".h5", ".hdf5")) and hdf5_format(path) == "protoview-features":
        from protoview.core.data import open_dataset

        features = open_dataset(path)
        acc = ""
        if features.predictions is not None and (features.labels >= 0).any():
            known = features.labels >= 0
            acc = f"; accuracy {(features.predictions[known] == features.labels[known]).mean():.1%}"
        say(f"{features.description}{acc}")
        for key in ("checkpoint", "checkpoint_sha256", "dataset", "preprocess", "preprocess_source", "device"):
            if features.attrs.get(key):
                say(f"  {key}: {features.attrs[key]}")
        return 0
    if path.lower().endswith((".h5", ".hdf5")):
        from protoview.core.snapshot import snapshot_summary

        say(snapshot_summary(path))
        return 0
    import warnings

    from protoview.core.checkpoint import inspect_checkpoint
    from protoview.core.preprocess import default_warning
    from protoview.core.warnings import ProtoviewWarning

    options = dict(trust=args.trust_checkpoint, nb_proxy=args.nb_proxy, split=args.split,
                   preprocess=args.preprocess, features=args.features or "backbone",
                   dino_weights=args.dino_weights)
    info = inspect_checkpoint(path, args.arch, num_classes=args.num_classes, **options)
    dataset = None
    if getattr(args, "data", None):
        from protoview.core.data import open_dataset
        from protoview.core.opening import (
            class_order_for,
            classes_for_proxies,
            follow_data,
            note_class_order,
        )

        follow_data(info, args.data)
        dataset = open_dataset(args.data, info.transform)
        classes = classes_for_proxies(info, dataset, path)
        if classes is not None:  # the proxies per class adapt and export would infer
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = inspect_checkpoint(path, args.arch, num_classes=classes, **options)
            follow_data(info, args.data)
        names = getattr(dataset, "class_names", None) or []
        note_class_order(info, class_order_for(args.class_order, info, len(names)))
    say(info.describe())
    if info.transform_source == "default":
        warnings.warn(ProtoviewWarning(default_warning(info.arch)), stacklevel=1)
    if dataset is not None:
        _describe_match(info, dataset)
    return 0


def _describe_match(info, dataset) -> None:
    """``info CKPT DATA``: the dataset, and whether the head's class k is its class k."""
    from protoview.core.data import imagenet_c_convention, match_classes

    say(f"data:        {dataset.description}")
    if info.head.kind == "none":
        say("match:       the encoder has no classifier head: no classes to match")
        return
    match = match_classes(info, dataset)
    convention = imagenet_c_convention(dataset)
    if convention:
        say(f"note:        {convention}")
    if hasattr(dataset, "transform"):  # images: what an adaptation run's batches follow
        from protoview.core.adapt.stream import fixed_order, run_order

        shuffled, order = run_order(dataset, None, 0)
        say("run order:   " + ("shuffled with --seed (adapt / compare: --order file keeps "
                                 "the file order)" if shuffled else
                                 order if fixed_order(dataset)
                                 else f"{order} (adapt / compare: --order shuffled to "
                                      "shuffle)"))
    for line in match.lines:
        say(f"match:       {line}")
    for note in match.remarks:
        say(f"note:        {note}")


def _extract_distributed(args: argparse.Namespace, env) -> int:
    """``protoview extract`` under torchrun: a shard per rank, merged by rank 0."""
    from protoview.core.distributed import distributed_extract, shard_folder

    def load():
        return open_model_and_data(args, warn=env.rank == 0)

    summary = distributed_extract(
        env, args.out, load, batch_size=args.batch_size, device=args.device,
        progress=progress_printer("extract"), say=say,
    )
    if env.rank == 0:
        say(
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

    model, dataset, result = model_features(args)
    from protoview.core.features import feature_file_attrs

    write_feature_file(args.out, result, attrs=feature_file_attrs(model, dataset))
    say(
        f"wrote {args.out}: {result.features.shape[0]} samples x {result.features.shape[1]} features "
        f"({result.images_per_second:.0f} images/s on {result.device})"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from protoview.core.snapshot import write_snapshot
    from protoview.core.state import build_state, state_to_snapshot

    model, dataset, result = model_features(args)
    state = build_state(model, dataset, result, seed=args.seed, with_map=not args.no_map)
    write_snapshot(args.out, state_to_snapshot(state))
    say(f"wrote {args.out}: {state.summary()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.action == "train":
        from protoview.core.demo import train_demo_models

        kwargs = {"seed": args.seed}
        if args.epochs:
            kwargs["epochs"] = args.epochs
        out = args.out or os.path.join(os.getcwd(), "resources", "demo")
        report = train_demo_models(out, **kwargs)
        say(f"trained demo checkpoints into {out}: {report}")
        return 0
    return run_headless_demo(head=args.head, shift=args.shift, severity=args.severity, seed=args.seed, out=args.out, say=say)


def run_headless_demo(
    *,
    head: str = "cosine",
    shift: str = "noise",
    severity: int = 3,
    seed: int = 0,
    out: str | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run the demo end to end without a window; returns the exit code (0).

    Loads the committed demo checkpoint, extracts features of the clean and the shifted
    test part, prints both accuracies, computes centers / proxies and the joint map, and
    writes a snapshot to ``out`` when given.
    """
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from protoview.core.features import extract_features
    from protoview.core.state import build_state, state_to_snapshot

    t0 = time.perf_counter()
    model = load_checkpoint(demo_checkpoint_path(head))
    say(f"demo checkpoint: {model.info.head.describe()}")
    clean = extract_features(model, open_dataset("demo:none", model.info.transform))
    data = open_dataset(f"demo:{shift}:{severity}", model.info.transform)
    result = extract_features(model, data)
    acc_clean = float((clean.logits.argmax(1) == clean.labels).mean())
    acc_shift = float((result.logits.argmax(1) == result.labels).mean())
    say(f"accuracy on the clean test part:      {acc_clean:.1%} ({len(clean.labels)} images)")
    say(f"accuracy on '{shift}' (severity {severity}): {acc_shift:.1%}")
    state = build_state(model, data, result, seed=seed)
    say(f"map: {state.summary()} in {state.metrics['map_seconds']:.1f} s")
    if out:
        from protoview.core.snapshot import write_snapshot

        state.attrs["method"] = "none"
        write_snapshot(out, state_to_snapshot(state))
        say(f"wrote snapshot {out}")
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def _window_files(args: argparse.Namespace) -> list[str] | None:
    """The positional files of ``gui`` as (checkpoint, data) on ``args``; the list of them
    when they name several checkpoints (a timeline: more than two files, or a glob before
    the data), else None. A third positional file is an error without it."""
    import re

    files = list(getattr(args, "files", None) or [])
    several = len(files) > 2 or (len(files) == 2 and re.search(r"[*?\[]", files[0])
                                 and not os.path.exists(files[0]))
    args.checkpoint = files[0] if files else None
    args.data = files[1] if len(files) > 1 else None
    return files if several else None


def cmd_gui(args: argparse.Namespace) -> int:
    timeline = _window_files(args)
    if timeline is not None:
        from protoview.cli._timeline import open_in_window

        return open_in_window(args, timeline)
    options = {key: getattr(args, key, None)
               for key in ("arch", "split", "nb_proxy", "preprocess", "device", "features", "dino_weights")}
    if any(value is not None for value in options.values()) and not getattr(args, "checkpoint", None):
        from protoview.errors import ParameterError

        given = next(k for k, v in options.items() if v is not None)
        raise ParameterError(f"--{given.replace('_', '-')}", "applies to a checkpoint: give CHECKPOINT and DATA too")
    if options["preprocess"] is not None:
        from protoview.core.preprocess import parse_preprocess

        parse_preprocess(options["preprocess"])  # a bad option is one line here, not a dialog
    if options["nb_proxy"] is not None and options["nb_proxy"] < 1:
        from protoview.errors import ParameterError

        raise ParameterError("--nb-proxy", f"must be a positive integer, got {options['nb_proxy']}")
    from protoview.gui.window import run_app

    return run_app(getattr(args, "checkpoint", None), getattr(args, "data", None), **options)


def register(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    """Add demo / info / extract / export / gui to the main parser's subcommands."""
    p = sub.add_parser("demo", help="the built-in demo: run it headless, or retrain its checkpoints")
    p.add_argument("action", nargs="?", default="run", choices=("run", "train"))
    p.add_argument("--shift", default="noise", help="noise, blur, contrast, rotation, mix or none (default noise)")
    p.add_argument("--severity", type=int, default=3, help="1..5 (default 3)")
    p.add_argument("--head", default="cosine", choices=("linear", "cosine"))
    p.add_argument("--out", help="run: also write a snapshot here; train: output folder (default: resources/demo)")
    p.add_argument("--epochs", type=int, help="train: epochs")
    p.add_argument("--seed", type=int, default=0, help="seed of the run's batch order / training")

    p = sub.add_parser("info", help="describe a checkpoint (and the preprocessing it gets), a snapshot or a features file")
    p.add_argument("path")
    p.add_argument("data", nargs="?", help="a dataset: also say whether the checkpoint's class k is its class k")
    add_open_options(p)
    p.add_argument("--num-classes", type=int, help="class count, used to infer proxies per class of PyCIL checkpoints")

    p = sub.add_parser("extract", help="extract features of a dataset into an HDF5 file")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output features file (.h5)")

    p = sub.add_parser("export", help="compute the map, centers and proxies and write an HDF5 snapshot")
    add_model_args(p)
    p.add_argument("--out", required=True, help="output snapshot file (.h5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the UMAP map (default 0)")
    p.add_argument("--no-map", action="store_true", help="skip the UMAP map (embeddings are NaN)")

    p = sub.add_parser("gui", help="open the window (the default when no command is given): protoview CHECKPOINT DATA [options]; "
                                   "several checkpoints (CHECKPOINT... DATA, or a quoted glob) open their timeline")
    p.add_argument("files", nargs="*", metavar="CHECKPOINT [DATA]",
                   help="a checkpoint and a dataset; several checkpoints then the dataset: their timeline")
    add_open_options(p, trust=False)  # the window asks before running a checkpoint's code
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    handlers.update(demo=cmd_demo, info=cmd_info, extract=cmd_extract, export=cmd_export, gui=cmd_gui)
