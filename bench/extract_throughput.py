"""Feature-extraction throughput: protoview's ``extract_features`` vs a bare inference loop.

Usage::

    python bench/extract_throughput.py [--device cpu|cuda] [--images 256] [--batch-size 64]

Rows (images/s, higher is better; ratio = ours / bare, 1.0 = no overhead):

* demo model on the demo data (8x8 digits);
* resnet18 (random weights) at 224 px on random in-memory images;
* resnet18 on the same images stored as JPEG files in an image folder, with 0 and 1+
  DataLoader workers (the bare loop there still uses the pre-loaded tensors, so the
  ratio shows what decoding costs).

The bare loop is ``with torch.inference_mode(): model(x)`` over batches already normalised
and on the device. Both are warmed up, then run alternately; the best pass of each is\nshown (the machine may be shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from protoview.core.data import open_dataset
from protoview.core.device import pick_device
from protoview.core.features import default_num_workers, extract_features
from protoview.core.model import SplitModel, TransformSpec


def demo_model() -> SplitModel | None:
    try:
        from protoview.core.demo import demo_checkpoint_path

        path = demo_checkpoint_path("linear")
        if path.is_file():
            from protoview.core.checkpoint import load_checkpoint

            return load_checkpoint(path)
    except Exception:  # the loader or the checkpoint may not exist yet: use random weights
        pass
    try:
        from protoview.core.demo import build_demo_model
    except ImportError:
        return None
    return build_demo_model()


def resnet18_model() -> SplitModel:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    head, net.fc = net.fc, torch.nn.Identity()
    return SplitModel(net, head)


def bare_loop(
    model: SplitModel, inputs: torch.Tensor, batch_size: int, device: torch.device
) -> Callable[[], float]:
    """A timed pass of the reference loop over pre-loaded, normalised tensors (img/s)."""
    model.to(device).eval()
    batches = [inputs[i : i + batch_size].to(device) for i in range(0, len(inputs), batch_size)]

    def one_pass() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            for x in batches:
                model(x).cpu()
        return len(inputs) / (time.perf_counter() - started)

    return one_pass


def ours(
    model: SplitModel, dataset, batch_size: int, device: str, num_workers: int | None = None
) -> Callable[[], float]:
    """A timed pass of extract_features (img/s, its own wall-clock figure)."""

    def one_pass() -> float:
        result = extract_features(
            model, dataset, batch_size=batch_size, device=device, num_workers=num_workers, amp=False
        )
        return result.images_per_second

    return one_pass


def compare(
    bare: Callable[[], float], mine: Callable[[], float], repeats: int
) -> tuple[float, float]:
    """Warm both up, then alternate them ``repeats`` times; best of each (machines are shared)."""
    bare(), mine()
    runs = [(bare(), mine()) for _ in range(repeats)]
    return max(r[0] for r in runs), max(r[1] for r in runs)


def write_jpeg_folder(root: Path, images: np.ndarray) -> None:
    for i, image in enumerate(images):
        folder = root / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:05d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = pick_device(args.device)
    rows = []

    model = demo_model()
    if model is None:
        print("demo model not available: skipping the demo row")
    else:
        dataset = open_dataset("demo")
        inputs, _ = dataset.get_batch(np.arange(len(dataset)))
        name = f"demo CNN, demo data ({len(dataset)} x 1x8x8), batch 256"
        rows.append(
            (
                name,
                *compare(
                    bare_loop(model, inputs, 256, device),
                    ours(model, dataset, 256, str(device)),
                    args.repeats,
                ),
            )
        )

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (args.images, 3, 224, 224), dtype=np.uint8)
    net = resnet18_model()
    label = f"resnet18 224px, {args.images} images, batch {args.batch_size}"
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "images.npz", x=pixels, y=np.arange(args.images) % 4)
        in_memory = open_dataset(Path(tmp) / "images.npz", TransformSpec())
        inputs, _ = in_memory.get_batch(np.arange(args.images))
        bare = bare_loop(net, inputs, args.batch_size, device)
        mine = ours(net, in_memory, args.batch_size, str(device))
        rows.append((f"{label}, in memory", *compare(bare, mine, args.repeats)))
        write_jpeg_folder(Path(tmp) / "folder", pixels)
        started = time.perf_counter()
        folder = open_dataset(Path(tmp) / "folder", TransformSpec())
        print(
            f"opening (and verifying) {len(folder)} JPEG files took {time.perf_counter() - started:.3f} s"
        )
        for workers in sorted({0, 1, default_num_workers(folder, device)}):
            mine = ours(net, folder, args.batch_size, str(device), num_workers=workers)
            rows.append(
                (f"{label}, JPEG folder, {workers} workers", *compare(bare, mine, args.repeats))
            )

    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'case':<70} {'bare img/s':>11} {'ours img/s':>11} {'ours/bare':>9}")
    for name, bare_rate, our_rate in rows:
        print(f"{name:<70} {bare_rate:>11.1f} {our_rate:>11.1f} {our_rate / bare_rate:>9.2f}")


if __name__ == "__main__":
    main()
