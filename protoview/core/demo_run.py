"""``protoview demo``: the built-in demo, headless — load, extract, map, report."""

from __future__ import annotations

import time
from collections.abc import Callable


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
