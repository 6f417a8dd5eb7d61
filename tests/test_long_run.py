"""Long runs: 1000 TSD steps on the demo keep memory flat and every number finite."""

from __future__ import annotations

import gc
import math
import os

import pytest


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_a_thousand_tsd_steps_keep_memory_flat_and_numbers_finite():
    import torch

    from protoview.core.adapt import AdaptRun, make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path

    model = load_checkpoint(demo_checkpoint_path("cosine"))
    adapter = make_adapter("tsd", model, filter_K=20)
    run = AdaptRun(adapter, open_dataset("demo:noise:3"), batch_size=64, seed=0)
    classes = 10
    rss10 = None
    for i in range(1, 1001):
        rec = run.step()
        assert rec.loss is None or math.isfinite(rec.loss), (i, rec.loss)
        assert math.isfinite(rec.online_accuracy)
        # the support memory stays bounded by filter_K per class (+ the head's warm-up rows)
        assert adapter.memory.supports.shape[0] <= 20 * classes + 3 * classes
        if i == 10:
            gc.collect()
            rss10 = _rss()
    gc.collect()
    growth = (_rss() - rss10) / rss10
    assert growth <= 0.05, f"RSS grew {growth:.1%} from step 10 to step 1000"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(run.history) == 1000 and 0.5 < run.evaluate() <= 1.0
