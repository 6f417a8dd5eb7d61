"""Online and full-set accuracy of each test-time adaptation method on the demo shifts.

The table itself is ``protoview compare`` (:func:`protoview.core.compare.compare_methods`):
for each shift of the demo test part (severity 3 by default) and each method, one pass
(batch 64, seed 0) from the source checkpoint; a cell is the online accuracy pooled over
that pass (as TTA papers report it) / the full-set accuracy of the adapted model right
after it (``AdaptRun.evaluate``, the adapter's prediction mode), one number when both
agree. This script prints it for both demo heads as Markdown (the README's table)::

    python bench/demo_adaptation_table.py [--head linear|cosine] [--checkpoint-dir DIR]
    python bench/demo_adaptation_table.py --grid      # the lr / filter_K sweep behind DEFAULTS

The same table for one head from the command line::

    protoview compare demo:linear demo --shifts noise,blur,contrast,rotation,mix \
        --methods none,bn,tent,pl,plc,shot_im,t3a,tsd,tsd:corrected,eata,sar,lame --full

Without ``--checkpoint-dir`` the packaged demo checkpoints are used.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from protoview.core.adapt import AdaptRun, make_adapter
from protoview.core.compare import compare_methods
from protoview.core.demo import (
    SHIFTS,
    build_demo_model,
    demo_arrays,
    demo_checkpoint_path,
    demo_inputs,
)

#: The rows of the README's table (every method, TSD in both variants), as compare takes them.
TABLE_METHODS = ("none", "bn", "tent", "pl", "plc", "shot_im", "t3a", "tsd", "tsd:corrected",
                 "eata", "sar", "lame")

# Defaults for the demo CNN, chosen with --grid (mean accuracy over the five shifts, both
# heads): TSD keeps the authors' lr 1e-4 / filter_K 100 (lr 1e-3 loses ~1 point on the
# linear head, 3e-3 ~5 points); Tent hardly depends on lr over 9 steps; T3A filter_K 20.
DEFAULTS: dict[str, dict] = {
    "none": {},
    "bn": {},
    "tent": {"lr": 1e-3},
    "t3a": {"filter_K": 20},
    "tsd-reference": {"lr": 1e-4, "filter_K": 100, "variant": "reference"},
    "tsd-corrected": {"lr": 1e-4, "filter_K": 100, "variant": "corrected"},
}


class DemoShiftDataset:
    """The shifted demo test part as an AdaptRun dataset: (1, 8, 8) normalised inputs."""

    def __init__(self, shift: str, severity: int, seed: int = 0) -> None:
        images, labels = demo_arrays("test", shift, severity, seed)
        self.inputs = demo_inputs(images)
        self.labels = labels.astype(np.int64)
        self.name = f"demo:{shift}:{severity}"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.inputs[i], int(self.labels[i])


def load_demo(head: str, checkpoint_dir: Path | None) -> torch.nn.Module:
    path = checkpoint_dir / f"demo_{head}.pt" if checkpoint_dir else demo_checkpoint_path(head)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = build_demo_model(**payload["protoview"]["arch_kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def one_pass(
    method: str, params: dict, model: torch.nn.Module, data: DemoShiftDataset, batch: int, seed: int
):
    name = "tsd" if method.startswith("tsd") else method
    run = AdaptRun(make_adapter(name, model, **params), data, batch_size=batch, seed=seed)
    started = time.perf_counter()
    records = run.run_pass()
    seconds = time.perf_counter() - started
    return records[-1].cumulative_accuracy, run.evaluate(), seconds


def table(args: argparse.Namespace) -> None:
    """``protoview compare`` for each head: every method's default parameters."""
    shifts = [s for s in SHIFTS if s != "none"] if args.shift == "all" else [args.shift]
    for head in args.heads:
        checkpoint = (str(args.checkpoint_dir / f"demo_{head}.pt") if args.checkpoint_dir
                      else f"demo:{head}")
        result = compare_methods(
            checkpoint, [f"demo:{s}:{args.severity}" for s in shifts], TABLE_METHODS,
            names=shifts, batch_size=args.batch_size, seed=args.seed, full_set=True,
            device="cpu",
        )
        print(f"\n{head} head, severity {args.severity}, {result.settings}, one pass")
        print(result.markdown())
        for note in result.notes:
            print(f"note: {note}")


def grid(args: argparse.Namespace) -> None:
    shifts = [s for s in SHIFTS if s != "none"]
    datasets = {s: DemoShiftDataset(s, args.severity) for s in shifts}
    sweeps = {
        "tent": [{"lr": lr} for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)],
        "t3a": [{"filter_K": k} for k in (1, 5, 20, 50, 100, -1)],
        "tsd-reference": [
            {"lr": lr, "filter_K": k, "variant": "reference"}
            for lr, k in itertools.product((1e-4, 1e-3, 3e-3), (5, 20, 100))
        ],
        "tsd-corrected": [
            {"lr": lr, "filter_K": k, "variant": "corrected"}
            for lr, k in itertools.product((1e-4, 1e-3, 3e-3), (5, 20, 100))
        ],
    }
    for head in args.heads:
        print(f"\n{head} head: mean over {', '.join(shifts)} (online / full-set after one pass)")
        for method, options in sweeps.items():
            for params in options:
                results = [
                    one_pass(
                        method,
                        params,
                        load_demo(head, args.checkpoint_dir),
                        datasets[s],
                        args.batch_size,
                        args.seed,
                    )
                    for s in shifts
                ]
                online = np.mean([r[0] for r in results])
                full = np.mean([r[1] for r in results])
                print(f"  {method:<14} {str(params):<55} {online:6.1%} / {full:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--head", dest="heads", action="append", choices=["linear", "cosine"])
    parser.add_argument("--shift", default="all", choices=["all", *SHIFTS])
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=None)
    parser.add_argument("--grid", action="store_true", help="sweep lr / filter_K instead")
    args = parser.parse_args()
    args.heads = args.heads or ["linear", "cosine"]
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    (grid if args.grid else table)(args)


if __name__ == "__main__":
    main()
