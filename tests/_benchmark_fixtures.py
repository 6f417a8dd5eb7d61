"""Small copies of the TTA benchmarks in their exact on-disk layouts, generated in a tmp dir.

- CIFAR-10-C / CIFAR-100-C: ``ROOT/<corruption>.npy`` (5n, 32, 32, 3) uint8 and
  ``ROOT/labels.npy`` (5n,), severity s = the s-th fifth of the rows (as released);
- ImageNet-C: ``ROOT/<corruption>/<severity>/<wnid>/*.JPEG``;
- DomainBed: ``ROOT/PACS/<domain>/<class>/*.jpg`` (and the other DomainBed datasets).

The pixels encode where they came from, so tests can check that the right rows / files were
read: a CIFAR-C image's first pixel is (severity * 10 + corruption index, row % 256, label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_cifar_c(
    root: Path,
    corruptions: tuple[str, ...] = ("gaussian_noise", "fog"),
    n: int = 6,
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """A CIFAR-C folder with ``5 * n`` rows per corruption; returns (folder, labels (5n,))."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, num_classes, n)
    labels = np.tile(base, 5).astype(np.int64)  # the real labels.npy repeats the test labels
    np.save(root / "labels.npy", labels)
    for c, name in enumerate(corruptions):
        images = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
        for row in range(5 * n):
            images[row, 0, 0] = (10 * (row // n + 1) + c, row % 256, labels[row])
        np.save(root / f"{name}.npy", images)
    return root, labels


def _jpeg(path: Path, rng: np.random.Generator, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, "JPEG")


def make_imagenet_c(
    root: Path,
    wnids: tuple[str, ...] = ("n01440764", "n01443537", "n15075141"),
    corruptions: tuple[str, ...] = ("gaussian_noise",),
    severities: tuple[int, ...] = (1, 5),
    per_class: int = 2,
    seed: int = 0,
) -> Path:
    """``root/<corruption>/<severity>/<wnid>/<k>.JPEG`` (ImageNet-C's file extension)."""
    rng = np.random.default_rng(seed)
    for corruption in corruptions:
        for severity in severities:
            for wnid in wnids:
                for k in range(per_class):
                    _jpeg(root / corruption / str(severity) / wnid / f"ILSVRC2012_val_{k:08d}.JPEG", rng)
    return root


def make_domainbed(
    root: Path,
    folder: str = "PACS",
    domains: tuple[str, ...] = ("art_painting", "cartoon", "photo", "sketch"),
    classes: tuple[str, ...] = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person"),
    per_class: int = 2,
    skip: dict[str, tuple[str, ...]] | None = None,
    seed: int = 0,
) -> Path:
    """DomainBed's layout ``root/<folder>/<domain>/<class>/<k>.jpg``; ``skip``: domain -> classes left out."""
    rng = np.random.default_rng(seed)
    for domain in domains:
        for name in classes:
            if name in (skip or {}).get(domain, ()):
                continue
            for k in range(per_class):
                _jpeg(root / folder / domain / name / f"pic_{k:03d}.jpg", rng)
    return root / folder
