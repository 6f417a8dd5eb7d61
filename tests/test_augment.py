"""The augmentations of the adapting methods against the toolkit's (8b2ed63), and PixelSpace."""

from __future__ import annotations

import pytest
import torch

from protoview.core.adapt.augment import PixelSpace, tta_transforms
from protoview.core.preprocess import TransformSpec
from tests.oracles import toolkit_transforms_cotta as toolkit


@pytest.mark.parametrize(
    "options",
    [{}, {"soft": True}, {"padding_mode": "reflect", "cotta_augs": False}, {"gaussian_std": 0.1}],
)
def test_tta_transforms_equal_the_toolkits_draw_for_draw(options: dict) -> None:
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(7)
    ours = [tta_transforms(16, **options)(x) for _ in range(3)]
    torch.manual_seed(7)
    theirs = [toolkit.get_tta_transforms(16, **options)(x) for _ in range(3)]
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(ours[0], ours[1])  # random: each call draws anew
    assert 0.0 <= float(ours[0].min()) and float(ours[0].max()) <= 1.0


def test_pixel_space_undoes_the_normalisation() -> None:
    spec = TransformSpec((8, 8), 3, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    pixels = torch.rand(5, 3, 8, 8)
    space = PixelSpace.of(spec)
    x = space.from_pixels(pixels)
    assert not space.is_identity
    assert torch.allclose(x[:, 1], (pixels[:, 1] - 0.4822) / 0.1994)
    assert (space.to_pixels(x) - pixels).abs().max() < 1e-6  # float rounding only
    assert "mean" in space.describe()


@pytest.mark.parametrize("spec", [None, TransformSpec.none(), TransformSpec((8, 8), 1, (0.0,), (1.0,))])
def test_pixel_space_is_the_identity_without_normalisation(spec) -> None:
    space = PixelSpace.of(spec)
    x = torch.randn(2, 3, 4, 4)
    assert space.is_identity
    assert space.to_pixels(x) is x and space.from_pixels(x) is x


def test_one_value_is_every_channels() -> None:
    space = PixelSpace((0.5,), (0.25,))
    x = torch.zeros(1, 3, 2, 2)
    assert torch.equal(space.to_pixels(x), torch.full_like(x, 0.5))
