"""MEMO's AugMix: the authors' ``utils/third_party.py`` on PIL images of any size.

From github.com/zhangmarvin/memo (commit 228b2908d271c954ef8bf19cf143ede3b2fa8e3e),
``imagenet-exps/utils/third_party.py`` and ``cifar-10-exps/utils/third_party.py`` (the same
code but for the image size: 224 and 32), themselves from google-research/augmix. The
operations, their order in the list, and every random draw (numpy's global generator for
the mixing weights, the chains and the levels; torch's for the crop and the flip, through
torchvision) are the authors'; the two files' fixed size (the output size of the affine
transforms, a third of it for the translations) is the image's own here, so a 224 x 224
(32 x 32) image is augmented exactly as the ImageNet (CIFAR) script does.

``fill``: the authors fill what rotations, shears and translations uncover with
``fillcolor=128``, which PIL reads, for an RGB image, as the packed colour (128, 0, 0): dark
red, not the grey meant (``reference``); ``corrected`` fills grey (128 in every band). On a
one-channel image both are grey.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torchvision.transforms as transforms
from PIL import Image, ImageOps

#: The preaugmentations of the two scripts: ``resized`` (ImageNet: RandomResizedCrop) and
#: ``padded`` (CIFAR-10: RandomCrop with 4 pixels of padding), each then a horizontal flip.
CROPS = ("resized", "padded")


def int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10.0


def rand_lvl(n: float) -> float:
    return np.random.uniform(low=0.1, high=n)


def autocontrast(pil_img: Image.Image, fill: Any) -> Image.Image:
    return ImageOps.autocontrast(pil_img)


def equalize(pil_img: Image.Image, fill: Any) -> Image.Image:
    return ImageOps.equalize(pil_img)


def rotate(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    degrees = int_parameter(rand_lvl(level), 30)
    if np.random.uniform() > 0.5:
        degrees = -degrees
    return pil_img.rotate(degrees, resample=Image.BILINEAR, fillcolor=fill)


def solarize(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    level = int_parameter(rand_lvl(level), 256)
    return ImageOps.solarize(pil_img, 256 - level)


def _affine(pil_img: Image.Image, data: tuple, fill: Any) -> Image.Image:
    return pil_img.transform(
        pil_img.size, Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=fill
    )


def shear_x(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    level = float_parameter(rand_lvl(level), 0.3)
    if np.random.uniform() > 0.5:
        level = -level
    return _affine(pil_img, (1, level, 0, 0, 1, 0), fill)


def shear_y(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    level = float_parameter(rand_lvl(level), 0.3)
    if np.random.uniform() > 0.5:
        level = -level
    return _affine(pil_img, (1, 0, 0, level, 1, 0), fill)


def translate_x(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    level = int_parameter(rand_lvl(level), pil_img.size[0] / 3)
    if np.random.random() > 0.5:
        level = -level
    return _affine(pil_img, (1, 0, level, 0, 1, 0), fill)


def translate_y(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    level = int_parameter(rand_lvl(level), pil_img.size[1] / 3)
    if np.random.random() > 0.5:
        level = -level
    return _affine(pil_img, (1, 0, 0, 0, 1, level), fill)


def posterize(pil_img: Image.Image, fill: Any, level: float = 1) -> Image.Image:
    level = int_parameter(rand_lvl(level), 4)
    return ImageOps.posterize(pil_img, 4 - level)


#: In the authors' order (``np.random.choice`` draws an index into this list).
AUGMENTATIONS: tuple[Callable[[Image.Image, Any], Image.Image], ...] = (
    autocontrast, equalize, rotate, solarize, shear_x, shear_y, translate_x, translate_y,
    posterize,
)  # fmt: skip


def preaugment(crop: str, size: tuple[int, int]) -> transforms.Compose:
    """The script's crop (``CROPS``) to ``size`` (height, width), then a horizontal flip."""
    first = (
        transforms.RandomResizedCrop(size)
        if crop == "resized"
        else transforms.RandomCrop(size, padding=4)
    )
    return transforms.Compose([first, transforms.RandomHorizontalFlip()])


def augmix(
    x_orig: Image.Image,
    preaugment: Callable[[Image.Image], Image.Image],
    preprocess: Callable[[Image.Image], torch.Tensor],
    fill: Any,
) -> torch.Tensor:
    """The authors' ``_augmix_aug``: one AugMix view of a PIL image, as the model's input."""
    x_orig = preaugment(x_orig)
    x_processed = preprocess(x_orig)
    w = np.float32(np.random.dirichlet([1.0, 1.0, 1.0]))
    m = np.float32(np.random.beta(1.0, 1.0))

    mix = torch.zeros_like(x_processed)
    for i in range(3):
        x_aug = x_orig.copy()
        for _ in range(np.random.randint(1, 4)):
            x_aug = np.random.choice(AUGMENTATIONS)(x_aug, fill)
        mix += w[i] * preprocess(x_aug)
    mix = m * x_processed + (1 - m) * mix
    return mix


def fill_colour(mode: str, corrected: bool) -> Any:
    """What uncovered pixels get: the authors' ``128``; grey in every band when corrected."""
    if corrected and mode == "RGB":
        return (128, 128, 128)
    return 128


def to_pil(pixels: torch.Tensor) -> Image.Image:
    """One image (C, H, W), C 1 or 3, pixels in [0, 1] -> a uint8 PIL image.

    Each value is rounded to the nearest of the 256 levels (ties to even) after clamping to
    [0, 1]: for pixels that ``ToTensor`` made from a uint8 image (``k / 255``, normalised
    and back, float rounding included), this gives back exactly the image's bytes.
    """
    levels = (pixels.detach().float().cpu().clamp(0.0, 1.0) * 255).round().to(torch.uint8)
    array = np.ascontiguousarray(levels.permute(1, 2, 0).numpy())
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
