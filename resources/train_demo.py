"""Retrain the demo checkpoints: ``python resources/train_demo.py [--out DIR] [--epochs N] [--seed S]``.

A thin wrapper over :func:`protoview.core.demo.train_demo_models` (also ``protoview demo
train``). Writes ``demo_linear.pt``, ``demo_cosine.pt`` and ``card.json`` into ``--out``
(default: the ``demo`` folder next to this script) and prints each model's accuracy on
the clean test part and on every shift at severity 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from protoview.core.demo import DEMO_EPOCHS, train_demo_models
    from protoview.errors import ProtoviewError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "demo"), help="output folder")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help=f"epochs (default {DEMO_EPOCHS})")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    args = parser.parse_args(argv)
    try:
        report = train_demo_models(args.out, epochs=args.epochs, seed=args.seed)
    except ProtoviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(report[h]['path'] for h in ('linear', 'cosine'))} and {report['card']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
