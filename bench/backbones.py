"""The TTA loop on real backbones: protoview's Tent step against the toolkit's on the same batch.

ViT-S/16 (timm, random init: LayerNorm scale and shift, eval mode) and ResNet-50
(torchvision, random init: BatchNorm scale and shift on batch statistics), 224 x 224,
batch 8. The reference is the toolkit's Tent (mariodoebler/test-time-adaptation 8b2ed63,
ported in tests/oracles/toolkit_tent.py); both update the same parameters and give the same
logits (tests/test_timm_backbones.py), so the ratio is the cost of protoview's adapter
around the same arithmetic.
"""

from __future__ import annotations

from bench._common import Context, Row, alternating


def _split(name: str):
    import copy

    import torch

    from protoview.core.model import SplitModel

    torch.manual_seed(0)
    if name == "vit_small_patch16_224":
        import timm

        whole = timm.create_model(name, num_classes=1000)
        head = copy.deepcopy(whole.get_classifier())
        whole.reset_classifier(0)
        return SplitModel(whole, head).eval()
    import torchvision

    whole = torchvision.models.resnet50(num_classes=1000)
    head = whole.fc
    whole.fc = torch.nn.Identity()
    return SplitModel(whole, head).eval()


def backbone_tent(ctx: Context) -> list[Row]:
    import copy

    import torch

    from protoview.core.adapt import make_adapter
    from tests.oracles.toolkit_tent import Tent as ToolkitTent

    rows = []
    x = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    steps = 1 if ctx.quick else 2
    repeats = max(ctx.repeats, 3)
    for name, label in (("vit_small_patch16_224", "ViT-S/16 (timm)"), ("resnet50", "ResNet-50")):
        base = _split(name)
        ours = make_adapter("tent", copy.deepcopy(base), lr=1e-4)
        theirs = ToolkitTent(copy.deepcopy(base), lr=1e-4)

        def run_ours(adapter=ours) -> None:
            for _ in range(steps):
                adapter.step(x)

        def run_theirs(oracle=theirs) -> None:
            for _ in range(steps):
                oracle(x)

        t_ours, t_ref = alternating(run_ours, run_theirs, repeats=repeats)
        t_ours, t_ref = t_ours / steps, t_ref / steps
        rows.append(Row(
            f"Tent step, {label}, 224 px, batch 8", t_ours, "s", t_ref,
            "the toolkit's Tent (8b2ed63), same batch", t_ours / t_ref, "<= 1.1 x reference",
            t_ours <= 1.1 * t_ref,
            note=f"per step, median of {repeats} x {steps} steps, run alternately",
        ))
    return rows
