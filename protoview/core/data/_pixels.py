"""Pixels to model inputs: channels, resize and crop (as torchvision's ``Resize`` /
``CenterCrop`` compute them, for tensors and for PIL images), normalisation, and a model
input made visible again. The transform itself is :mod:`protoview.core.preprocess`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from protoview.core.model import TransformSpec

# ITU-R 601-2 luma, the weights PIL uses for RGB -> "L".
_LUMA = (0.299, 0.587, 0.114)


def convert_channels(batch: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert a ``(B, C, H, W)`` float batch to ``channels`` (1 or 3).

    ``C = 4`` (RGBA) drops alpha, ``C = 2`` (LA) keeps luminance, 3 -> 1 uses PIL's luma
    weights, 1 -> 3 repeats the grey channel.
    """
    if batch.shape[1] == 4:
        batch = batch[:, :3]
    elif batch.shape[1] == 2:
        batch = batch[:, :1]
    if batch.shape[1] == channels:
        return batch
    if batch.shape[1] == 1:
        return batch.expand(-1, channels, -1, -1)
    weights = torch.tensor(_LUMA, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch * weights).sum(dim=1, keepdim=True)


def normalise(batch: torch.Tensor, transform: TransformSpec, scale: float = 1.0) -> torch.Tensor:
    """``(batch * scale - mean) / std`` per channel, on ``batch``'s device.

    ``batch``: (B, C, H, W) pixels, in [0, 1] once multiplied by ``scale``.
    """
    mean = torch.tensor(transform.mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    std = torch.tensor(transform.std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    return torch.addcmul(-mean / std, batch.to(torch.float32), scale / std)


def resized_size(height: int, width: int, transform: TransformSpec) -> tuple[int, int]:
    """(H, W) after the resize step, computed as torchvision's ``Resize`` does."""
    assert transform.size is not None
    if transform.resize == "exact":
        return transform.size
    side = transform.size[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = side, int(side * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def crop_box(height: int, width: int, crop: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of a center crop, as torchvision's ``center_crop`` computes it."""
    return int(round((height - crop[0]) / 2.0)), int(round((width - crop[1]) / 2.0))


def resize_batch(batch: torch.Tensor, transform: TransformSpec) -> torch.Tensor:
    """Resize then center-crop a float ``(B, C, H, W)`` batch (torchvision's tensor path)."""
    height, width = batch.shape[-2:]
    target = resized_size(height, width, transform)
    if tuple(target) != (height, width):
        mode = transform.interpolation
        smooth = mode in ("bilinear", "bicubic")
        batch = F.interpolate(
            batch, size=target, mode=mode, align_corners=False if smooth else None, antialias=smooth
        )
    if transform.crop is not None:
        top, left = crop_box(batch.shape[-2], batch.shape[-1], transform.crop)
        if top < 0 or left < 0:
            raise ValueError(
                f"a {batch.shape[-2]}x{batch.shape[-1]} image is smaller than the crop "
                f"{transform.crop[0]}x{transform.crop[1]}"
            )
        batch = batch[..., top : top + transform.crop[0], left : left + transform.crop[1]]
    return batch


_PIL_FILTERS = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling values


def resize_image(img, transform: TransformSpec):  # noqa: ANN001, ANN201 - PIL images
    """Resize then center-crop a PIL image, exactly as torchvision's ``Resize`` and
    ``CenterCrop`` do on PIL images (PIL's own filters, antialiased)."""
    width, height = img.size
    new_h, new_w = resized_size(height, width, transform)
    if (new_h, new_w) != (height, width):
        img = img.resize((new_w, new_h), _PIL_FILTERS[transform.interpolation])
    if transform.crop is not None:
        top, left = crop_box(new_h, new_w, transform.crop)
        if top < 0 or left < 0:
            raise ValueError(
                f"a {new_h}x{new_w} image is smaller than the crop "
                f"{transform.crop[0]}x{transform.crop[1]}"
            )
        img = img.crop((left, top, left + transform.crop[1], top + transform.crop[0]))
    return img


def to_model_input(
    batch: torch.Tensor, transform: TransformSpec, scale: float = 1.0
) -> torch.Tensor:
    """Turn ``(B, C, H, W)`` pixels (in [0, 1] once multiplied by ``scale``) into model input.

    Channels are converted first, then the batch is resized and cropped
    (:func:`resize_batch`), then normalised; all on ``batch``'s device. Returns float32
    (B, transform.channels, H, W). With ``transform.none()`` the batch goes in as it is
    (float32, nothing else changed).
    """
    if transform.is_none:
        return batch.to(torch.float32)
    assert transform.channels is not None
    if (
        batch.shape[1] == transform.channels
        and transform.resize == "exact"
        and transform.crop is None
        and tuple(batch.shape[-2:]) == tuple(transform.size or ())
    ):
        return normalise(batch, transform, scale)  # one fused pass, the common case
    batch = convert_channels(batch.to(torch.float32) * scale, transform.channels)
    return normalise(resize_batch(batch, transform), transform).contiguous()


def display_pixels(x: torch.Tensor, transform: TransformSpec) -> np.ndarray:
    """A model input ``(C, H, W)`` as uint8 pixels ``(H, W)`` or ``(H, W, 3)`` to look at.

    The normalisation is undone (``x * std + mean``) and the result clipped to [0, 1]; for
    ``none`` (or an input of other than 1 or 3 channels) each channel is stretched from
    its own minimum to its maximum instead.
    """
    x = x.detach().to(torch.float32).cpu()
    if x.ndim == 2:
        x = x[None]
    if not transform.is_none and x.shape[0] == len(transform.mean):
        mean = torch.tensor(transform.mean).view(-1, 1, 1)
        std = torch.tensor(transform.std).view(-1, 1, 1)
        x = x * std + mean
    else:
        x = x[:3] if x.shape[0] >= 3 else x[:1]
        low = x.amin(dim=(1, 2), keepdim=True)
        span = (x.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1e-12)
        x = (x - low) / span
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
