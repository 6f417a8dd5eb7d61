"""``protoview adapt`` / ``methods`` / ``cluster`` / ``assign``: the science core, headless.

Registered onto the main parser by :mod:`protoview.cli._main`; light to import like it.
"""

from __future__ import annotations

import argparse

from protoview.cli._common import (
    STREAM_HELP,
    Handler,
    add_model_args,
    add_order_args,
    open_request,
    order_choice,
    progress_printer,
    say,
    say_inferred_proxies,
    score_text,
)
from protoview.cli._method_help import METHODS_EPILOG, MethodsHelpFormatter


def register(sub: argparse._SubParsersAction, handlers: dict[str, Handler]) -> None:
    """Add adapt / methods / cluster / assign to the main parser's subcommands."""
    from protoview.core.adapt.params import UPDATE_CHOICES, VARIANTS
    from protoview.core.adapt.registry import DEFAULT_METHOD, method_names

    p = sub.add_parser("adapt", help="run test-time adaptation (TSD or a baseline) and record the run",
                       epilog=METHODS_EPILOG, formatter_class=MethodsHelpFormatter)
    add_model_args(p)
    # here --batch-size is the adaptation batch (BN statistics and TSD's memory depend on it)
    for action in p._actions:
        if action.dest == "batch_size":
            action.default, action.help = 64, ("adaptation batch size (default 64; 1 for the methods "
                                                  "that allow it: none, t3a, lame)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=method_names(),
                   help=f"the adaptation method (default {DEFAULT_METHOD}; its parameters are listed below)")
    p.add_argument("--steps", type=int, default=0, help="adaptation steps (batches); 0 = one pass (default)")
    p.add_argument("--lr", type=float, help="learning rate (the methods that take gradient steps)")
    p.add_argument("--filter-k", type=int, help="filter_K: supports kept per class (tsd, t3a); -1 keeps all (corrected variant)")
    p.add_argument("--lam", type=float, help="weight of TSD's top-k cluster term (default 0, as released)")
    p.add_argument("--update", choices=UPDATE_CHOICES, help="which parameters TSD updates")
    p.add_argument("--variant", choices=VARIANTS, help="the method as released (reference) or with its flaws fixed, "
                                                        "for a method that has a variant (see below)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any parameter of the method, e.g. beta=0.8, e_margin=0.9, affinity=knn, episodic=true (repeatable)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the batch order (the stream) (default 0)")
    add_order_args(p)
    p.add_argument("--stream", default="online", help=STREAM_HELP)
    p.add_argument("--source-data", default="", metavar="DATA",
                   help="labelled source data for a method that needs them (rmt: its source "
                        "prototypes, warm-up and replay), e.g. cifar10:ROOT:train; prepared as the "
                        "test data")
    p.add_argument("--record-every", type=int, default=0, help="store a map in the snapshot's timeline every K steps")
    p.add_argument("--geometry-every", type=int, default=0, metavar="N",
                   help="measure the geometry (NC1-NC4, weighted k-NN accuracy, linear CKA to "
                        "the source model) at step 0 and every N steps, into the snapshot's "
                        "metrics/geometry (each a full refresh of the features and 1-3 s at "
                        "10,000 x 512 on two CPU cores; default 0: off; sets "
                        "--record-every to N when it is not given)", dest="geometry_every")
    p.add_argument("--probe-size", type=int, default=0, metavar="N",
                   help="estimate the full-set accuracy after every step on a stratified probe of N "
                        "samples (history probe_accuracy, with a 95%% interval); costs N forward "
                        "passes per step (default 0: off; the exact accuracy comes at each pass end)")
    p.add_argument("--decoded", choices=("auto", "memory", "disk", "off"), default="auto",
                   help="image folders: decode each image once into a uint8 cache in memory or on "
                        "disk (auto: memory when it fits in a quarter of RAM, at most 4 GiB)")
    p.add_argument("--out", help="write the run (history + final state) to this snapshot")
    handlers["adapt"] = cmd_adapt

    p = sub.add_parser("methods", help="list the adaptation methods and their parameters")
    p.add_argument("--markdown", action="store_true", help="print the README's method table")
    handlers["methods"] = cmd_methods

    p = sub.add_parser("cluster", help="k-means prototypes (faiss, PCL density) of the features")
    add_model_args(p)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--niter", type=int, default=20)
    p.add_argument("--nredo", type=int, default=5)
    p.add_argument("--init", choices=["auto", "pcl", "kmeans++", "random"], default="auto",
                   help="seeding: auto (by size: greedy k-means++ on a sample, then faiss's Lloyd; "
                        "default), pcl (PCL's run_kmeans: faiss's random sample, --nredo runs; "
                        "old name: random) or kmeans++ (greedy, handed to PCL's settings)")
    p.add_argument("--seed", type=int, default=0, help="faiss's k-means seed (default 0)")
    p.add_argument("--out", help="write a snapshot with the prototypes")
    handlers["cluster"] = cmd_cluster

    p = sub.add_parser("assign", help="Sinkhorn-Knopp balanced assignment to prototypes, proxies or centers")
    add_model_args(p)
    p.add_argument("--target", default="proxies", choices=("prototypes", "proxies", "centers"))
    p.add_argument("--k", type=int, default=10, help="prototypes to cluster first when target=prototypes "
                   "(not for a SwAV / DeepCluster-v2 / DINO model opened with --features projection: "
                   "its own prototypes are the target)")
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--seed", type=int, default=0,
                   help="k-means seed when target=prototypes (default 0)")
    p.add_argument("--out", help="write a snapshot with the plan Q")
    handlers["assign"] = cmd_assign

    p = sub.add_parser("probe", help="train a linear probe on the frozen features (SimSiam's main_lincls.py) "
                                     "and report its held-out accuracy; --out gives an encoder a head")
    add_model_args(p)
    p.add_argument("--train", metavar="DATA", help="labelled data to train the probe on (opened with DATA's "
                                                   "preprocessing); DATA is then all held out")
    p.add_argument("--fraction", type=float, default=0.5,
                   help="without --train: this share of each class of DATA trains, the rest is held out (default 0.5)")
    p.add_argument("--epochs", type=int, default=90, help="epochs (default 90, as main_lincls.py)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate per 256 samples (default 0.1, as main_lincls.py)")
    p.add_argument("--probe-batch-size", type=int, default=256, help="the probe's batch size (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the order")
    p.add_argument("--out", help="write the encoder with the probe as its head, a checkpoint every command opens")
    handlers["probe"] = cmd_probe


def _open(args: argparse.Namespace, *, adapt: bool = False):
    from protoview.core.session import Session

    session = Session.open(open_request(args, adapt=adapt), progress=progress_printer("extract"))
    say_inferred_proxies(session.model, session.dataset)
    return session


def _adapt_params(args: argparse.Namespace) -> tuple[tuple[str, object], ...]:
    """The method's parameters from the shortcut options and ``--param NAME=VALUE``: each
    text is read as its declared parameter reads it (``Param.parse``), a name the method
    does not declare as a plain value (the adapter then refuses it, naming it)."""
    from protoview.core.adapt.params import parse_value
    from protoview.errors import ParameterError

    method = getattr(args, "method", None)
    declared = {}
    if method is not None:
        from protoview.core.adapt.registry import method_params

        declared = {p.name: p for p in method_params(method)}

    names = {"lr": "lr", "filter_k": "filter_K", "lam": "lam", "update": "update", "variant": "variant"}
    params = {key: getattr(args, attr) for attr, key in names.items() if getattr(args, attr) is not None}
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError("--param", f"expected NAME=VALUE, got {item!r}")
        name = name.strip()
        if name in params:
            raise ParameterError("--param", f"{name} is given twice")
        params[name] = declared[name].parse(text) if name in declared else parse_value(text)
    return tuple(params.items())


def cmd_methods(args: argparse.Namespace) -> int:
    from protoview.cli._method_help import methods_markdown, methods_text

    if args.markdown:
        print(methods_markdown(), end="")
    else:
        say("adaptation methods (protoview adapt --method NAME --param NAME=VALUE; "
            "[window]: a control in the window):")
        say(methods_text())
    return 0


def _write_out(args: argparse.Namespace, session, geometry=None) -> None:
    """``--out``: the session (its runs, history and state) as a snapshot; ``geometry``:
    rows measured along the run (``--geometry-every``)."""
    if args.out:
        from protoview.cli._adapt_geometry import add_to_snapshot
        from protoview.core.snapshot import write_snapshot

        write_snapshot(args.out, add_to_snapshot(session.to_snapshot(), geometry or []))
        say(f"wrote {args.out}")


def cmd_adapt(args: argparse.Namespace) -> int:
    from protoview.core.adapt.registry import check_params, check_source_data
    from protoview.core.adapt.stream import parse_stream
    from protoview.core.session import StepRequest
    from protoview.errors import ParameterError

    parse_stream(args.stream)  # a bad --stream or --param fails before anything is opened
    shuffle = order_choice(args)
    params = _adapt_params(args)
    check_params(args.method, **dict(params))
    check_source_data(args.method, args.source_data)
    from protoview.cli._adapt_geometry import check_geometry_every, geometry_lines, run_measured

    every = check_geometry_every(args)
    if args.probe_size < 0:
        raise ParameterError("--probe-size", f"must be 0 (off) or a number of samples, got {args.probe_size}")

    session = _open(args, adapt=True)
    labelled = session.state.labels_known != "none"
    entropy_before = float(session.state.entropy.mean())
    say(
        f"before adaptation: accuracy {score_text(session.source_accuracy, labelled)} on "
        f"{session.state.num_samples} samples" + ("" if labelled else f", mean prediction entropy {entropy_before:.3f}")
    )
    from protoview.core.adapt.stream import run_order

    say(f"order: {run_order(session.dataset, shuffle, args.seed)[1]}")
    req = StepRequest(
        method=args.method, n_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
        params=params, shuffle=shuffle, record_every=args.record_every or every,
        probe_size=args.probe_size, stream=parse_stream(args.stream).text(),
        source_data=args.source_data,
    )
    geometry = []
    if every:
        geometry = run_measured(session, req, every, progress_printer(args.method))
    else:
        session.step(req, progress=progress_printer(args.method))
    last = session.history[-1]
    say(
        f"after {last.step} steps of {args.method} ({req.stream} stream): online accuracy "
        f"{score_text(last.online_accuracy, labelled)}, "
        f"full-set accuracy {score_text(last.full_accuracy, labelled)}"
        + ("" if labelled else f", mean prediction entropy {float(session.state.entropy.mean()):.3f}")
    )
    names = tuple(getattr(session.dataset, "domain_names", ()) or ())
    if labelled and len(names) > 1:
        from protoview.core.runs import online_accuracy_by_domain

        per = online_accuracy_by_domain(session.history, session.state.labels,
                                        session.dataset.domains, len(names))
        say("online accuracy per domain: " + ", ".join(
            f"{name} {score_text(float(v), labelled)}" for name, v in zip(names, per, strict=True)))
    for line in geometry_lines(geometry, labelled):
        say(line)
    _write_out(args, session, geometry)
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    import numpy as np

    from protoview.core.session import KMeansRequest

    session = _open(args)
    state = session.kmeans(KMeansRequest(k=args.k, niter=args.niter, nredo=args.nredo, seed=args.seed, init=args.init))
    m = state.metrics
    labelled = state.labels_known != "none"
    sizes = np.bincount(state.assignment[state.assignment >= 0], minlength=args.k)
    say(
        f"k-means: {args.k} prototypes in {m.get('kmeans_seconds', float('nan')) * 1000:.0f} ms; "
        f"NMI {score_text(m.get('nmi'), labelled, '.3f')}, ARI {score_text(m.get('ari'), labelled, '.3f')}, "
        f"matched accuracy {score_text(m.get('hungarian_accuracy'), labelled)}; cluster sizes {sizes.min()}..{sizes.max()}"
    )
    if state.attrs.get("kmeans"):
        say(f"notes: {state.attrs['kmeans']}")
    _write_out(args, session)
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    import numpy as np

    from protoview.core.session import KMeansRequest, SinkhornRequest
    from protoview.core.state import places_prototypes

    session = _open(args)
    own = places_prototypes(session.model)
    encoder = session.model.info.encoder if session.model.info is not None else None
    if args.target == "prototypes" and not own:
        if encoder is not None and encoder.prototypes:
            say(f"note: the {encoder.method} prototypes live in the projection space; "
                "--features projection assigns to them (here: k-means prototypes)")
        session.kmeans(KMeansRequest(k=args.k, seed=args.seed))
    state = session.sinkhorn(SinkhornRequest(target=args.target, epsilon=args.epsilon, n_iters=args.iters))
    counts = np.bincount(state.assignment[state.assignment >= 0])
    what = args.target
    if args.target == "prototypes" and own:
        what = f"the model's {len(state.prototypes)} {encoder.method} prototypes (SwAV's codes)"
    say(
        f"Sinkhorn ({args.iters} iterations, epsilon {args.epsilon}) to {what}: "
        f"{len(counts)} groups, sizes {counts.min()}..{counts.max()}, "
        f"{state.metrics.get('sinkhorn_seconds', float('nan')) * 1000:.1f} ms"
    )
    _write_out(args, session)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    import numpy as np

    from protoview.cli._common import model_features
    from protoview.core.probe import check_fraction, probe_split, train_linear_probe

    if not args.train:
        check_fraction(args.fraction)  # before anything is opened
    if args.out and (args.features or "backbone") != "backbone":
        from protoview.errors import ParameterError

        raise ParameterError("--out", "a probe checkpoint puts the probe in the architecture's head: "
                                      "train it on --features backbone")
    model, dataset, result = model_features(args)
    feats, labels = result.features, result.labels
    if args.train:
        from protoview.core.data import open_dataset
        from protoview.core.features import cached_features

        train_data = open_dataset(args.train, getattr(dataset, "transform", None))
        extra = cached_features(model, train_data, batch_size=args.batch_size, device=args.device)
        held = np.flatnonzero(labels >= 0)
        train = len(feats) + np.flatnonzero(extra.labels >= 0)
        feats, labels = np.concatenate([feats, extra.features]), np.concatenate([labels, extra.labels])
        if len(train) == 0:
            from protoview.errors import DatasetError

            raise DatasetError(args.train, "has no labelled samples to train a probe on")
    else:
        train, held = probe_split(labels, args.fraction, seed=args.seed)
    names = list(getattr(dataset, "class_names", []) or [])
    classes = max(len(names), int(labels.max()) + 1)
    probe = train_linear_probe(feats, labels, classes, train=train, held_out=held, epochs=args.epochs,
                               batch_size=args.probe_batch_size, lr=args.lr, seed=args.seed)
    say(f"linear probe (SimSiam's main_lincls.py on frozen features: {args.epochs} epochs, lr "
        f"{probe.lr:g}, batch {args.probe_batch_size}): train accuracy "
        f"{score_text(probe.train_accuracy, True)} on {len(train)} samples, held-out accuracy "
        f"{score_text(probe.held_out_accuracy, len(held) > 0)} on {len(held)} samples")
    if args.out:
        from protoview.core.checkpoint import write_probe_checkpoint

        slot = write_probe_checkpoint(args.out, model, probe.head, class_names=names or None,
                                      transform=getattr(dataset, "transform", None))
        say(f"wrote {args.out}: {model.info.arch} with the probe as its {slot} "
            f"({classes} classes); adapt, compare and the window open it as a classifier")
    return 0
