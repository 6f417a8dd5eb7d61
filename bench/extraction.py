"""Feature extraction against a bare ``inference_mode`` loop (the demo CNN, resnet18 at 224 px)."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench._common import Context, Row


def extraction(ctx: Context) -> list[Row]:
    import torch

    from bench.extract_throughput import bare_loop, demo_model, ours, resnet18_model
    from protoview.core.data import open_dataset
    from protoview.core.device import pick_device
    from protoview.core.model import TransformSpec

    device = pick_device(ctx.device)
    rows = []

    def compare(bare, mine) -> tuple[float, float]:
        bare(), mine()
        runs = [(bare(), mine()) for _ in range(ctx.repeats)]  # alternate: fair on a busy machine
        return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))

    model = demo_model()
    dataset = open_dataset("demo")
    inputs, _ = dataset.get_batch(np.arange(len(dataset)))
    b, o = compare(bare_loop(model, inputs, 256, device), ours(model, dataset, 256, str(device)))
    rows.append(Row(f"extraction, demo CNN, {len(dataset)} images ({device})", o, "img/s", b,
                    "bare inference_mode loop", o / b, ">= 0.9 x throughput", o / b >= 0.9))
    images, batch = (16, 16) if ctx.quick else (256, 64)
    pixels = np.random.default_rng(0).integers(0, 256, (images, 3, 224, 224), dtype=np.uint8)
    net = resnet18_model()
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "images.npz", x=pixels, y=np.arange(images) % 4)
        data = open_dataset(Path(tmp) / "images.npz", TransformSpec())
        inputs, _ = data.get_batch(np.arange(images))
        b, o = compare(bare_loop(net, inputs, batch, device), ours(net, data, batch, str(device)))
    rows.append(Row(f"extraction, resnet18 @ 224 px, {images} images, batch {batch} ({device})", o, "img/s", b,
                    "bare inference_mode loop", o / b, ">= 0.9 x throughput", o / b >= 0.9,
                    note=f"torch {torch.__version__}, {torch.get_num_threads()} threads"))
    return rows
