"""``protoview timeline CKPT... DATA``: a timeline of checkpoints over one dataset, and
``protoview CKPT... DATA`` (several checkpoints): the same, opened in the window's replay."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from protoview.cli._common import Handler, add_open_options, progress_printer, say, score_text

_USAGE_DATA = "the dataset every checkpoint is seen on (the last positional argument)"


def split_paths(paths: list[str], where: str = "CHECKPOINT... DATA") -> tuple[list[str], str]:
    """(checkpoints, data) of the positional ``CHECKPOINT... DATA``."""
    from protoview.errors import ParameterError

    if len(paths) < 2:
        raise ParameterError(where, "give one or more checkpoints (files or a quoted glob such "
                                    "as 'runs/epoch_*.pt') and then the dataset")
    return paths[:-1], paths[-1]


def build_from_args(args: argparse.Namespace, *, with_map: bool):
    """The :class:`~protoview.core.timeline.Timeline` of the parsed arguments, with a
    progress line per checkpoint on stderr."""
    from protoview.core.timeline import OpenOptions, TimelineBuilder

    checkpoints, data = split_paths(args.paths)
    options = OpenOptions(arch=args.arch, trust=getattr(args, "trust_checkpoint", False),
                          nb_proxy=args.nb_proxy, split=args.split, preprocess=args.preprocess)
    builder = TimelineBuilder(
        checkpoints, data, options, k=getattr(args, "k", 10), seed=getattr(args, "seed", 0),
        with_map=with_map, keep_order=getattr(args, "keep_order", False),
        device=getattr(args, "device", None), batch_size=getattr(args, "batch_size", 256),
        use_cache=not getattr(args, "no_cache", False),
        class_order=getattr(args, "class_order", "auto"), tasks=getattr(args, "tasks", None),
        geometry=not getattr(args, "no_geometry", False))
    names = [os.path.basename(p) for p in builder.paths]
    printers = [progress_printer(f"checkpoint {i + 1}/{len(names)} {name}")
                for i, name in enumerate(names)]
    current = [0]

    def progress(done: int, total: int) -> None:
        printers[current[0]](done, total)

    for i, step in enumerate(builder.steps(progress)):
        current[0] = min(i + 1, len(names) - 1)
        for note in step.notes:
            if not note.startswith(("loaded from cache", "saved to cache")):
                say(f"note: {names[i]}: {note}")
    return builder.timeline()


def accuracy_table(timeline) -> list[str]:
    """The lines of the per-checkpoint table: step, file, head classes, accuracy, mean k-NN
    change from the step before, share of samples held in place on the map."""
    labelled = any(s.evaluated for s in timeline.steps)
    width = max(10, *(len(s.name) for s in timeline.steps))
    lines = [f"{'step':>4}  {'checkpoint':<{width}}  {'classes':>7}  {'accuracy':>9}  "
             f"{'k-NN change':>11}  {'map held':>8}"]
    for s in timeline.steps:
        change = "-" if s.knn_change != s.knn_change else f"{s.knn_change:.3f}"
        held = "-" if s.map_held != s.map_held else f"{s.map_held:.1%}"
        headless = s.head_classes == 0  # a self-supervised encoder: nothing to score
        accuracy = "no head" if headless else score_text(s.accuracy, labelled)
        classes = "-" if headless else str(s.head_classes)
        lines.append(f"{s.step:>4}  {s.name:<{width}}  {classes:>7}  "
                     f"{accuracy:>9}  {change:>11}  {held:>8}")
    return lines


def _cells(values, fmt: str, labelled: bool = True) -> list[str]:
    return [score_text(float(v), labelled, fmt) if v == v else "-" for v in values]


#: The geometry columns of the timeline's table and CSV: (column, header, format).
GEOMETRY_CELLS = (("nc1", "NC1", ".4g"), ("nc2_equinorm", "equinorm", ".3f"),
                  ("nc2_equiangularity", "equiangle", ".3f"), ("nc3", "NC3", ".3f"),
                  ("nc4_ncc_agreement", "NC4", ".1%"), ("knn_accuracy", "k-NN acc", ".1%"),
                  ("linear_cka", "CKA 1st", ".3f"))


def geometry_lines(timeline) -> list[str]:
    """Each checkpoint's geometry (NC1, NC2 equinorm / equiangularity, NC3, NC4, weighted
    k-NN accuracy, linear CKA to the first checkpoint); empty when none was measured."""
    rows = [(s, s.geometry) for s in timeline.steps]
    if not any(g is not None for _, g in rows):
        return []
    labelled = any(s.evaluated for s in timeline.steps) or any(
        g is not None and g["labelled"] for _, g in rows)
    width = max(10, *(len(s.name) for s in timeline.steps))
    lines = ["geometry (neural collapse NC1-NC4, Papyan et al. 2020; weighted k-NN accuracy, "
             "DINO's; linear CKA to the first checkpoint, Kornblith et al. 2019; "
             "NC3 n/a while the head lacks classes):",
             f"{'step':>4}  {'checkpoint':<{width}}  "
             + "  ".join(f"{h:>9}" for _, h, _ in GEOMETRY_CELLS)]
    for s, g in rows:
        cells = []
        for key, _, fmt in GEOMETRY_CELLS:
            value = float("nan") if g is None else g[key]
            if key == "knn_accuracy" and not labelled:
                cells.append("no labels")
            else:
                cells.append("-" if value != value else format(value, fmt))
        lines.append(f"{s.step:>4}  {s.name:<{width}}  " + "  ".join(f"{c:>9}" for c in cells))
    return lines


def task_lines(timeline) -> list[str]:
    """A class-incremental run's numbers: the accuracy per task (checkpoints x tasks) with
    old / new, the forgetting per task, PyCIL's average incremental accuracy and
    forgetting, the weight norms per task and WA's gamma. Empty without tasks."""
    tasks = timeline.tasks
    if tasks is None:
        return []
    labelled = any(s.evaluated for s in timeline.steps)
    width = max(10, *(len(s.name) for s in timeline.steps))
    heads = [tasks.label(j) for j in range(tasks.count)]
    cols = max(9, *(len(h) for h in heads))
    head = f"{'step':>4}  {'checkpoint':<{width}}  " + "  ".join(f"{h:>{cols}}" for h in heads)
    order = f"; {timeline.class_order} class order" if timeline.class_order else ""
    lines = [f"tasks: {', '.join(str(v) for v in tasks.sizes)} classes (from {tasks.source}"
             f"{order}: task columns name head classes, head class k = data class order[k])",
             "accuracy per task (over each task's labelled samples; old = the earlier tasks, "
             "new = the newest task of the head):",
             head + f"  {'old':>7}  {'new':>7}"]
    for s in timeline.steps:
        n = s.tasks
        cells = "  ".join(f"{c:>{cols}}" for c in _cells(n.accuracy, ".1%", labelled))
        old, new = _cells([n.old, n.new], ".1%", labelled)
        lines.append(f"{s.step:>4}  {s.name:<{width}}  {cells}  {old:>7}  {new:>7}")
    lines.append("forgetting per task (the drop from its best accuracy so far, in points):")
    lines.append(head)
    for s, row in zip(timeline.steps, timeline.forgetting_matrix(), strict=True):
        cells = "  ".join(f"{c:>{cols}}" for c in _cells(row * 100, ".2f", labelled))
        lines.append(f"{s.step:>4}  {s.name:<{width}}  {cells}")
    aia = score_text(timeline.average_incremental_accuracy(), labelled, ".2%")
    fgt = timeline.mean_forgetting()
    lines.append(f"average incremental accuracy (PyCIL's: the mean accuracy at the end of each "
                 f"task): {aia}; forgetting (PyCIL's: the mean over the tasks before the "
                 f"newest, at the last checkpoint): "
                 f"{score_text(fgt * 100, labelled, '.2f')} points")
    p = timeline.state.proxies.shape[0] // max(timeline.steps[-1].head_classes, 1)
    what = "its row" if p == 1 else f"the mean of its {p} proxy rows"
    lines.append(f"weight norms per task (each class's L2 norm, {what}, averaged over the "
                 "task's classes) and WA's gamma (mean norm of the old classes' rows / the "
                 "newest task's: < 1, the new classes' rows are longer, the bias WA and BiC "
                 "correct):")
    lines.append(head + f"  {'gamma':>7}")
    for s in timeline.steps:
        n = s.tasks
        cells = "  ".join(f"{c:>{cols}}" for c in _cells(n.task_norm, ".4g"))
        gamma = _cells([n.wa_gamma], ".4f")[0]
        lines.append(f"{s.step:>4}  {s.name:<{width}}  {cells}  {gamma:>7}")
    return lines


def write_csv(path: str, timeline) -> None:
    """One row per checkpoint: its table's numbers and, for a class-incremental run, the
    old / new accuracy, WA's gamma and per task its accuracy, forgetting and weight norm
    (fractions; empty where there is none)."""
    import csv
    import io
    from pathlib import Path

    from protoview.core.atomic import atomic_path

    tasks = timeline.tasks
    header = ["step", "checkpoint", "head_classes", "evaluated", "accuracy", "knn_change",
              "map_held"]
    if tasks is not None:
        header += ["old_accuracy", "new_accuracy", "wa_gamma"]
        for j in range(tasks.count):
            header += [f"task{j + 1}_accuracy", f"task{j + 1}_forgetting", f"task{j + 1}_norm"]
    forgetting = timeline.forgetting_matrix()
    measured = any(s.geometry is not None for s in timeline.steps)
    if measured:
        header += [key for key, _, _ in GEOMETRY_CELLS]

    def cell(v: float) -> str:
        return "" if v != v else repr(float(v))

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i, s in enumerate(timeline.steps):
        row = [s.step, s.path, s.head_classes, s.evaluated, cell(s.accuracy),
               cell(s.knn_change), cell(s.map_held)]
        if tasks is not None:
            n = s.tasks
            row += [cell(n.old), cell(n.new), cell(n.wa_gamma)]
            for j in range(tasks.count):
                row += [cell(n.accuracy[j]), cell(forgetting[i, j]), cell(n.task_norm[j])]
        if measured:
            row += [cell(float("nan") if s.geometry is None else s.geometry[key])
                    for key, _, _ in GEOMETRY_CELLS]
        writer.writerow(row)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buffer.getvalue(), encoding="utf-8")
    say(f"wrote {path}")


def movers_lines(timeline, a: str, b: str, top: int) -> list[str]:
    """The movers from checkpoint ``a`` to ``b``: rank, sample, label, both predictions,
    Jaccard distance."""
    movers = timeline.movers(a, b, top)
    sa, sb = timeline.find(a), timeline.find(b)
    labels = timeline.state.labels
    pa, pb = sa.frame["predictions"], sb.frame["predictions"]
    lines = [f"movers from {sa.step} ({sa.name}) to {sb.step} ({sb.name}): the {len(movers.indices)} "
             f"samples whose {movers.k} nearest neighbours in feature space changed most "
             "(Jaccard distance of the lists, 0 = same neighbours, 1 = none shared)",
             f"{'rank':>4}  {'sample':>7}  {'label':>5}  {'pred ' + str(sa.step):>7}  "
             f"{'pred ' + str(sb.step):>7}  {'distance':>8}"]
    for rank, i in enumerate(movers.indices, 1):
        label = "-" if labels[i] < 0 else str(int(labels[i]))
        one, two = ("-" if p[i] < 0 else str(int(p[i])) for p in (pa, pb))
        lines.append(f"{rank:>4}  {int(i):>7}  {label:>5}  {one:>7}  {two:>7}  "
                     f"{movers.distance[i]:>8.3f}")
    mean = float(movers.distance.mean())
    lines.append(f"mean distance over all {len(movers.distance)} samples: {mean:.3f}")
    return lines


def cmd_timeline(args: argparse.Namespace) -> int:
    from protoview.errors import ParameterError

    if args.top < 1:
        raise ParameterError("--top", f"must be a whole number >= 1, got {args.top}")
    if args.k < 1:
        raise ParameterError("--k", f"must be a whole number >= 1, got {args.k}")
    if args.tasks is not None:
        from protoview.core.timeline import parse_tasks

        parse_tasks(args.tasks)
    for path in (args.csv, args.out):
        if path and not Path(path).expanduser().absolute().parent.is_dir():
            raise ParameterError(path, "the folder to write into does not exist")
    timeline = build_from_args(args, with_map=bool(args.out))
    if args.movers:  # checked before anything is written
        timeline.find(args.movers[0]), timeline.find(args.movers[1])
    for line in accuracy_table(timeline) + task_lines(timeline):
        say(line)
    if args.movers:
        for line in movers_lines(timeline, *args.movers, args.top):
            say(line)
    for line in geometry_lines(timeline):
        say(line)
    if args.csv:
        write_csv(args.csv, timeline)
    if args.out:
        from protoview.core.snapshot import write_snapshot
        from protoview.core.timeline import timeline_to_snapshot

        write_snapshot(args.out, timeline_to_snapshot(timeline))
        say(f"wrote {args.out}: a timeline of {len(timeline.steps)} checkpoints, "
            f"{timeline.state.summary()}")
    return 0


def open_in_window(args: argparse.Namespace, files: list[str]) -> int:
    """``protoview CKPT... DATA``: build the timeline (maps included), write it to a
    snapshot in the temporary folder, and open the window on it (its replay)."""
    import tempfile

    from protoview.core.snapshot import write_snapshot
    from protoview.core.timeline import timeline_to_snapshot

    ns = argparse.Namespace(**{**vars(args), "paths": files, "trust_checkpoint": False})
    timeline = build_from_args(ns, with_map=True)
    for line in accuracy_table(timeline) + task_lines(timeline):
        say(line)
    handle, path = tempfile.mkstemp(prefix="protoview-timeline-", suffix=".h5")
    os.close(handle)
    write_snapshot(path, timeline_to_snapshot(timeline))
    say(f"timeline written to {path} (File → Export snapshot keeps a copy)")
    from protoview.gui.window import run_app

    return run_app(snapshot=path)


def register(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    """Add ``timeline`` to the main parser's subcommands."""
    p = sub.add_parser(
        "timeline", help="checkpoints of one run over one dataset: accuracy per checkpoint, "
                         "movers between two, aligned maps in a snapshot (replay)")
    p.add_argument("paths", nargs="+", metavar="CHECKPOINT... DATA",
                   help="checkpoint files or quoted globs ('runs/epoch_*.pt'), put in natural "
                        "order (epoch_2 before epoch_10), then " + _USAGE_DATA)
    add_open_options(p)
    p.add_argument("--out", help="write the timeline as a snapshot (.h5): every checkpoint a "
                                 "frame of the replay, its map aligned from the one before; "
                                 "without it no map is drawn (table and movers only)")
    p.add_argument("--movers", nargs=2, metavar=("A", "B"),
                   help="print the samples whose neighbourhood changed most from checkpoint A "
                        "to B (their numbers, 1 = first, or file names)")
    p.add_argument("--tasks", metavar="SIZES",
                   help="a class-incremental run's classes per task, in the head's class order "
                        "(e.g. 10,10,10; they add up to the largest head); default: read from "
                        "the checkpoints' head sizes (each head that grows adds a task)")
    p.add_argument("--csv", metavar="PATH",
                   help="also write one row per checkpoint as CSV (with tasks: old / new "
                        "accuracy, WA's gamma, per task its accuracy, forgetting, weight norm)")
    p.add_argument("--no-geometry", action="store_true",
                   help="do not measure each checkpoint's geometry (NC1-NC4, weighted k-NN "
                        "accuracy, linear CKA to the first: 1-3 s per checkpoint at 10,000 x "
                        "512 on two CPU cores, most of it the k-NN)")
    p.add_argument("--top", type=int, default=20, help="movers to print (default 20)")
    p.add_argument("--k", type=int, default=10, help="neighbours per sample for the movers "
                                                     "(default 10)")
    p.add_argument("--keep-order", action="store_true",
                   help="keep the checkpoints in the order given (globs still in natural order)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first map (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--batch-size", type=int, default=256, help="extraction batch size (default 256)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    handlers.update(timeline=cmd_timeline)
