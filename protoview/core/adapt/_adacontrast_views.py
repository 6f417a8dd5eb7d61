"""AdaContrast's three views of each image (a weak and two strong ones), made on pixels.

The authors' ``moco/loader.py`` and ``utils.py`` ``get_augmentation`` (DianCh/AdaContrast
c3c8b88) and the toolkit's ``transforms_adacontrast.py`` (8b2ed63) build them with PIL in the
data loader; here the same torchvision transforms run on float pixel tensors, per image,
drawing the same random numbers in the same order (see :mod:`~protoview.core.adapt.adacontrast`
for the differences from PIL). Used by :class:`~protoview.core.adapt.adacontrast.AdaContrast`.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
import torchvision.transforms as transforms
import torchvision.transforms.functional as TF

AUGMENTATIONS = ("light", "moco-v2")


# ---- the views (moco/loader.py, utils.py get_augmentation, on tensors) ---------------------
class GaussianBlur:
    """``moco/loader.py``'s ``GaussianBlur`` on a float image (C, H, W).

    sigma ~ U(sigma[0], sigma[1]) from python's ``random`` (as the original); PIL's
    ``ImageFilter.GaussianBlur(radius=sigma)`` becomes a Gaussian kernel of
    ``2 ceil(3 sigma) + 1`` taps, at most ``2 min(H, W) - 1`` (reflect padding needs it).
    """

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.blur(img, random.uniform(self.sigma[0], self.sigma[1]))

    @staticmethod
    def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
        size = min(2 * math.ceil(3 * sigma) + 1, 2 * min(img.shape[-2:]) - 1)
        return TF.gaussian_blur(img, [size, size], [sigma, sigma])


def strong_view(size: tuple[int, int], augmentation: str = "light") -> transforms.Compose:
    """The strong view of one image (C, H, W) in pixels: MoCo v2's (``"moco-v2"``) or the
    toolkit's ``moco-v2-light`` (no crop; its ``Resize`` to the image's own size draws
    nothing and is left out)."""
    chosen: list[Any] = []
    if augmentation == "moco-v2":
        chosen.append(transforms.RandomResizedCrop(size, scale=(0.2, 1.0)))
    chosen += [
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([GaussianBlur((0.1, 2.0))], p=0.5),
        transforms.RandomHorizontalFlip(),
    ]
    return transforms.Compose(chosen)


def weak_view() -> transforms.Compose:
    """The weak view ("plain"): ``Resize`` and ``RandomCrop`` to the image's own size draw
    nothing and change nothing, so what remains is the flip."""
    return transforms.Compose([transforms.RandomHorizontalFlip()])


class Views:
    """A batch's weak, query and key views, as :func:`weak_view` and :func:`strong_view`
    make them image after image, with the operations run on the whole batch.

    The random numbers are drawn image by image in the transforms' own order (weak, strong,
    strong; within a view: crop, jitter's ``p``, its order and factors, grayscale's ``p``,
    blur's ``p`` and sigma, flip), through torchvision's own ``get_params``; then each
    operation runs once on the images it applies to, with each image's factor (torchvision's
    arithmetic, per image factors as tensors). The blur and the resized crop run per image.
    """

    def __init__(self, augmentation: str = "light") -> None:
        self.augmentation = augmentation
        self.jitter = transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)

    def _draw(self, image: torch.Tensor) -> dict[str, Any]:
        drawn: dict[str, Any] = {"crop": None, "jitter": None, "sigma": None}
        if self.augmentation == "moco-v2":
            drawn["crop"] = transforms.RandomResizedCrop.get_params(
                image, (0.2, 1.0), (3.0 / 4.0, 4.0 / 3.0)
            )
        if not 0.8 < torch.rand(1):
            j = self.jitter
            drawn["jitter"] = transforms.ColorJitter.get_params(
                j.brightness, j.contrast, j.saturation, j.hue
            )
        drawn["gray"] = bool(torch.rand(1) < 0.2)
        if not 0.5 < torch.rand(1):
            drawn["sigma"] = random.uniform(0.1, 2.0)
        drawn["flip"] = bool(torch.rand(1) < 0.5)
        return drawn

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """pixels (N, C, H, W) -> the weak, query and key views (each (N, C, H, W))."""
        weak_flips, strong = [], []
        for image in pixels:
            weak_flips.append(bool(torch.rand(1) < 0.5))
            strong.append(self._draw(image))
            strong.append(self._draw(image))
        w = _flip(pixels, weak_flips)
        both = self._strong(pixels.repeat_interleave(2, dim=0), strong)
        return w, both[0::2], both[1::2]

    def _strong(self, x: torch.Tensor, drawn: list[dict[str, Any]]) -> torch.Tensor:
        size = [int(x.shape[2]), int(x.shape[3])]
        if self.augmentation == "moco-v2":
            x = torch.stack([
                TF.resized_crop(image, *d["crop"], size, TF.InterpolationMode.BILINEAR,
                                antialias=True)
                for image, d in zip(x, drawn, strict=True)
            ])  # fmt: skip
        else:
            x = x.clone()
        if any(d["jitter"] is not None for d in drawn):
            x = _jitter(x, [d["jitter"] for d in drawn])
        gray = [i for i, d in enumerate(drawn) if d["gray"]]
        if gray:
            x[gray] = TF.rgb_to_grayscale(x[gray], num_output_channels=x.shape[1])
        for i, d in enumerate(drawn):
            if d["sigma"] is not None:
                x[i] = GaussianBlur.blur(x[i], d["sigma"])
        return _flip(x, [d["flip"] for d in drawn])


def _flip(x: torch.Tensor, flips: list[bool]) -> torch.Tensor:
    chosen = [i for i, f in enumerate(flips) if f]
    if not chosen:
        return x
    x = x.clone()
    x[chosen] = x[chosen].flip(-1)
    return x


def _factor(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1, 1)


def _blend(img1: torch.Tensor, img2: torch.Tensor, ratios: list[float]) -> torch.Tensor:
    """torchvision's ``_blend`` with one ratio per image (``1 - ratio`` in double, as there)."""
    ratio, rest = _factor(ratios, img1), _factor([1.0 - r for r in ratios], img1)
    return (ratio * img1 + rest * img2).clamp(0, 1.0).to(img1.dtype)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return TF.rgb_to_grayscale(x) if x.shape[1] == 3 else x


def _jitter(x: torch.Tensor, drawn: list[Any]) -> torch.Tensor:
    """``ColorJitter`` with each image's order and factors: four rounds, in each the images
    whose ``fn_idx`` names brightness, contrast, saturation or hue at that place."""
    from torchvision.transforms._functional_tensor import _hsv2rgb, _rgb2hsv

    orders = [None if d is None else [int(f) for f in d[0]] for d in drawn]
    for place in range(4):
        for fn in range(4):
            rows = [i for i, o in enumerate(orders) if o is not None and o[place] == fn]
            if not rows:
                continue
            factors = [float(drawn[i][1 + fn]) for i in rows]
            img = x[rows]
            if fn == 0:
                img = _blend(img, torch.zeros_like(img), factors)
            elif fn == 1:
                mean = torch.mean(_gray(img), dim=(-3, -2, -1), keepdim=True)
                img = _blend(img, mean, factors)
            elif fn == 2:
                if img.shape[1] == 1:
                    continue
                img = _blend(img, TF.rgb_to_grayscale(img), factors)
            else:
                if img.shape[1] == 1:
                    continue
                h, s, v = _rgb2hsv(img).unbind(dim=-3)
                h = (h + _factor(factors, h).view(-1, 1, 1)) % 1.0
                img = _hsv2rgb(torch.stack((h, s, v), dim=-3))
            x[rows] = img
    return x


# ---- the adapter --------------------------------------------------------------------------
