"""DeYO's and MEMO's steps against their authors' code (the oracles), same batches."""

from __future__ import annotations

import numpy as np

from bench._common import Context, Row, alternating


def deyo_step(ctx: Context) -> list[Row]:
    """A DeYO step (patch shuffle, PLPD) on the demo model, batch 64, vs the authors' step."""
    import copy

    import torch

    from protoview.core.adapt import make_adapter
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import open_dataset
    from protoview.core.demo import demo_checkpoint_path
    from tests.oracles import deyo_reference as authors

    base = load_checkpoint(demo_checkpoint_path("linear"))
    data = open_dataset("demo:noise:3", base.info.transform)
    x, _ = data.get_batch(np.arange(64))
    classes = int(base(x[:2]).shape[1])
    steps = 20
    ours = make_adapter("deyo", copy.deepcopy(base), lr=1e-3)
    oracle = authors.build(copy.deepcopy(base), classes, lr=1e-3)

    def run_ours() -> None:
        torch.manual_seed(0)
        for _ in range(steps):
            ours.step(x)

    def run_oracle() -> None:
        torch.manual_seed(0)
        for i in range(steps):
            oracle(x, i)

    repeats = max(ctx.repeats, 5)
    t_ours, t_ref = alternating(run_ours, run_oracle, repeats=repeats)
    t_ours, t_ref = t_ours / steps, t_ref / steps
    return [Row("DeYO step, demo model, batch 64", t_ours, "s", t_ref,
                "authors' code (tests/oracles/deyo_reference.py)", t_ours / t_ref,
                "<= 1.1 x reference", t_ours <= 1.1 * t_ref,
                note=f"per step, median of {repeats} x {steps} steps, run alternately")]  # fmt: skip


def memo_step(ctx: Context) -> list[Row]:
    """A MEMO step on a 224 x 224 image (the ImageNet script's size), 8 views, vs the
    authors' loop on the same images (a small BatchNorm CNN: AugMix's PIL work weighs)."""
    import copy
    import random

    import torch
    import torchvision.transforms as T
    from PIL import Image

    from protoview.core.adapt import make_adapter
    from protoview.core.preprocess import TransformSpec
    from tests._tta_models import tiny_model
    from tests.oracles import memo_reference as authors

    stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    images = [Image.fromarray(a) for a in arrays]
    tf = T.Compose([T.ToTensor(), T.Normalize(*stats)])
    x = torch.stack([tf(image) for image in images])
    model = tiny_model(10, sharp=4.0)
    ours = make_adapter("memo", copy.deepcopy(model), n_augmentations=8)
    ours.input_transform = TransformSpec((224, 224), 3, *stats)
    script = authors.Script(copy.deepcopy(model), batch_size=8)

    def seeded() -> None:
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)

    def run_ours() -> None:
        seeded()
        ours.step(x)

    def run_oracle() -> None:
        seeded()
        script.run(images)

    repeats = max(ctx.repeats, 5)
    t_ours, t_ref = alternating(run_ours, run_oracle, repeats=repeats)
    return [Row("MEMO step, 1 image of 224 x 224, 8 views", t_ours, "s", t_ref,
                "authors' loop (tests/oracles/memo_reference.py)", t_ours / t_ref,
                "<= 1.1 x reference", t_ours <= 1.1 * t_ref,
                note=f"per step, median of {repeats}, run alternately")]  # fmt: skip
