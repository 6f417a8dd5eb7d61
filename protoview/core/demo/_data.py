"""The built-in demo data: scikit-learn's 8x8 digits, a fixed split and named shifts.

The 1797 digit images (pixel values 0..16, shipped with scikit-learn, no download) are
scaled to [0, 1] and split once, stratified and with a fixed seed, into a ``source`` part
(70 %, the model is trained on it) and a ``test`` part (30 %). Distribution shifts are
applied on request, each with a severity 1..5:

========== ==========================================================================
none       the images as they are
noise      additive Gaussian noise (std ``NOISE_STD[severity - 1]``), clipped to [0, 1]
blur       Gaussian blur (sigma ``BLUR_SIGMA[severity - 1]`` pixels)
contrast   each image pulled toward its own mean (keeps ``CONTRAST_KEEP`` of the contrast)
rotation   rotation by ``ROTATION_DEGREES[severity - 1]`` degrees, random direction
mix        per image, one of noise / blur / contrast / rotation (seeded choice)
========== ==========================================================================

Every shift is a deterministic function of ``(images, severity, seed)``; the random
numbers do not depend on the severity, so a higher severity is a larger change of the
same images. The model input is ``(image - mean) / std`` with :data:`DEMO_TRANSFORM`.
"""

from __future__ import annotations

import functools
import importlib.resources
import numbers
from collections.abc import Callable
from pathlib import Path

import numpy as np

from protoview.core.model import TransformSpec
from protoview.errors import CheckpointError, DatasetError, ParameterError

SHIFTS: tuple[str, ...] = ("none", "noise", "blur", "contrast", "rotation", "mix")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
PARTS: tuple[str, ...] = ("source", "test")
DEMO_HEADS: tuple[str, ...] = ("linear", "cosine")
DEMO_CLASS_NAMES: list[str] = [str(i) for i in range(10)]
DEMO_EPOCHS = 20

SPLIT_SEED = 0
SOURCE_FRACTION = 0.7

# Shift strengths, index = severity - 1.
NOISE_STD: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
BLUR_SIGMA: tuple[float, ...] = (0.5, 0.6, 0.7, 0.85, 1.0)
CONTRAST_KEEP: tuple[float, ...] = (0.8, 0.7, 0.6, 0.5, 0.4)
ROTATION_DEGREES: tuple[float, ...] = (6.0, 12.0, 18.0, 24.0, 30.0)

# Pixel mean / std (population) of the source part, checked against the data by the tests.
DEMO_TRANSFORM = TransformSpec(size=(8, 8), channels=1, mean=(0.305593,), std=(0.376598,))


def demo_arrays(
    part: str = "test", shift: str = "none", severity: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The demo images of one part, shifted.

    Parameters
    ----------
    part:
        ``"source"`` (training part, 70 %) or ``"test"`` (30 %).
    shift:
        One of :data:`SHIFTS`.
    severity:
        1..5 (ignored by ``"none"`` but still checked).
    seed:
        Seed (>= 0) of the shift's random numbers; the split itself never changes.

    Returns
    -------
    images: (N, 1, 8, 8) float32 in [0, 1].
    labels: (N,) int64 in 0..9.

    Raises
    ------
    ParameterError
        For an unknown part / shift or a bad severity / seed.
    """
    if part not in PARTS:
        raise ParameterError("part", f"unknown demo part {part!r}; valid parts: {', '.join(PARTS)}")
    _check_shift_args(shift, severity, seed)
    images, labels, source, test = _digits_split()
    rows = source if part == "source" else test
    return apply_shift(images[rows], shift, severity, seed), labels[rows].copy()


def apply_shift(
    images: np.ndarray, shift: str = "none", severity: int = 3, seed: int = 0
) -> np.ndarray:
    """Apply a named shift to images in [0, 1].

    Parameters
    ----------
    images:
        (N, C, H, W) float array in [0, 1] (N may be 0); not modified.
    shift, severity, seed:
        As in :func:`demo_arrays`.

    Returns
    -------
    (N, C, H, W) float32 in [0, 1], a new array.
    """
    _check_shift_args(shift, severity, seed)
    array = _check_images(images)
    return _SHIFT_FUNCTIONS[shift](array, int(severity), int(seed))


def demo_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``sklearn.datasets.load_digits()`` in each part.

    Returns
    -------
    source: (N_source,) int64, sorted; test: (N_test,) int64, sorted; disjoint, together all rows.
    """
    _, _, source, test = _digits_split()
    return source.copy(), test.copy()


def demo_checkpoint_path(head: str = "linear") -> Path:
    """Path of the committed demo checkpoint ``demo_{head}.pt`` (head ``linear`` or ``cosine``).

    Raises
    ------
    ParameterError
        For an unknown head.
    CheckpointError
        When the file is missing (retrain it with ``protoview demo train``).
    """
    if head not in DEMO_HEADS:
        raise ParameterError(
            "head", f"unknown demo head {head!r}; valid heads: {', '.join(DEMO_HEADS)}"
        )
    resource = importlib.resources.files("protoview.resources") / "demo" / f"demo_{head}.pt"
    path = Path(str(resource))
    if not path.is_file():
        raise CheckpointError(
            path, "the demo checkpoint is missing; recreate it with 'protoview demo train'"
        )
    return path


# --- the split ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
    except (OSError, ValueError) as exc:
        raise DatasetError(
            "sklearn digits", f"cannot load scikit-learn's digits data ({exc})"
        ) from exc
    images = (np.asarray(digits.images, dtype=np.float32) / np.float32(16.0))[:, None]
    labels = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    source_rows = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        source_rows.append(rows[: int(round(SOURCE_FRACTION * len(rows)))])
    source = np.sort(np.concatenate(source_rows)).astype(np.int64)
    test = np.setdiff1d(np.arange(len(labels), dtype=np.int64), source)
    for array in (images, labels, source, test):
        array.setflags(write=False)
    return images, labels, source, test


# --- the shifts -----------------------------------------------------------------------


def _rng(seed: int, shift: str) -> np.random.Generator:
    return np.random.default_rng([seed, SHIFTS.index(shift)])


def _none(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    return images.copy()


def _noise(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    noise = _rng(seed, "noise").standard_normal(images.shape, dtype=np.float32)
    return _clip(images + np.float32(NOISE_STD[severity - 1]) * noise)


def _blur(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = BLUR_SIGMA[severity - 1]
    return _clip(gaussian_filter(images, sigma=(0, 0, sigma, sigma), mode="constant", cval=0.0))


def _contrast(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    return _clip(mean + np.float32(CONTRAST_KEEP[severity - 1]) * (images - mean))


def _rotation(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    from scipy.ndimage import rotate

    clockwise = _rng(seed, "rotation").random(len(images)) < 0.5
    out = images.copy()
    for rows, sign in ((clockwise, -1.0), (~clockwise, 1.0)):
        if rows.any():
            angle = sign * ROTATION_DEGREES[severity - 1]
            out[rows] = rotate(
                images[rows], angle, axes=(2, 3), reshape=False, order=1, mode="constant"
            )
    return _clip(out)


def _mix(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    parts = ("noise", "blur", "contrast", "rotation")
    choice = _rng(seed, "mix").integers(0, len(parts), len(images))
    out = np.empty_like(images)
    for index, name in enumerate(parts):
        rows = choice == index
        out[rows] = _SHIFT_FUNCTIONS[name](images, severity, seed)[rows]
    return out


def _clip(images: np.ndarray) -> np.ndarray:
    return np.clip(images, 0.0, 1.0).astype(np.float32, copy=False)


_SHIFT_FUNCTIONS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "none": _none,
    "noise": _noise,
    "blur": _blur,
    "contrast": _contrast,
    "rotation": _rotation,
    "mix": _mix,
}


# --- checks ---------------------------------------------------------------------------


def _check_shift_args(shift: object, severity: object, seed: object) -> None:
    if shift not in SHIFTS:
        raise ParameterError("shift", f"unknown shift {shift!r}; valid shifts: {', '.join(SHIFTS)}")
    if (
        isinstance(severity, bool)
        or not isinstance(severity, numbers.Integral)
        or severity not in SEVERITIES
    ):
        valid = ", ".join(map(str, SEVERITIES))
        raise ParameterError("severity", f"must be one of {valid}, got {severity!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ParameterError("seed", f"must be an integer >= 0, got {seed!r}")


def _check_images(images: np.ndarray) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4:
        raise ParameterError("images", f"expected an (N, C, H, W) array, got shape {array.shape}")
    if array.size and not np.isfinite(array).all():
        raise ParameterError("images", "contains NaN or infinite values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ParameterError("images", "pixel values must lie in [0, 1]")
    return array
