"""Training the demo checkpoints (``protoview demo train``) and their report card.

Both heads are trained on the clean source part of the digits with the same recipe; the
checkpoint files, and a ``card.json`` with their accuracies, are written atomically.
"""

from __future__ import annotations

import copy
import json
import numbers
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protoview.core.atomic import atomic_path
from protoview.core.demo._data import (
    BLUR_SIGMA,
    CONTRAST_KEEP,
    DEMO_CLASS_NAMES,
    DEMO_EPOCHS,
    DEMO_HEADS,
    DEMO_TRANSFORM,
    NOISE_STD,
    ROTATION_DEGREES,
    SHIFTS,
    demo_arrays,
)
from protoview.core.demo._model import DEMO_ARCH, build_demo_model, check_count, demo_inputs
from protoview.core.model import SplitModel
from protoview.errors import ParameterError, SnapshotError


@torch.no_grad()
def demo_accuracy(
    model: nn.Module, part: str = "test", shift: str = "none", severity: int = 3, seed: int = 0
) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on a demo part, shifted.

    The model is put in eval mode for the pass and its mode restored afterwards; inputs go
    to the device of its parameters. Returns a float in [0, 1].
    """
    images, labels = demo_arrays(part, shift, severity, seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = torch.cat([model(batch) for batch in demo_inputs(images, device).split(1024)])
    finally:
        model.train(was_training)
    return float((logits.argmax(1).cpu() == torch.from_numpy(labels)).float().mean())


@torch.no_grad()
def _batch_norm_adapted_accuracy(
    model: nn.Module, shift: str, severity: int, seed: int = 0
) -> float:
    """Accuracy with BatchNorm using the shifted test part's own statistics (one batch)."""
    images, labels = demo_arrays("test", shift, severity, seed)
    adapted = copy.deepcopy(model).train()
    logits = adapted(demo_inputs(images))
    return float((logits.argmax(1) == torch.from_numpy(labels)).float().mean())


# --- training -------------------------------------------------------------------------

_ARCH_KWARGS: dict[str, dict[str, Any]] = {
    "linear": {
        "head": "linear",
        "num_classes": 10,
        "nb_proxy": 1,
        "feature_dim": 64,
        "sigma": False,
    },
    "cosine": {
        "head": "cosine",
        "num_classes": 10,
        "nb_proxy": 3,
        "feature_dim": 64,
        "sigma": True,
    },
}
_REPORT_SEVERITY = 3


def train_demo_models(
    out_dir: str | os.PathLike[str],
    epochs: int = DEMO_EPOCHS,
    seed: int = 0,
    *,
    heads: Sequence[str] = DEMO_HEADS,
    train_limit: int | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the demo CNN on the clean source part and save ``demo_{head}.pt`` + ``card.json``.

    Heads: ``linear`` (``nn.Linear``) and ``cosine`` (``CosineLinear``, 3 proxies per class).
    Adam with a cosine learning-rate decay, batches of 64, random 1-pixel translations;
    fully seeded, on the CPU with one torch thread (so the result does not depend on the
    core count, and tiny convolutions do not thrash busy cores; the previous thread count
    is restored): about 10 s per head with the default epochs.

    Parameters
    ----------
    out_dir:
        Folder for the checkpoints and ``card.json`` (created if missing).
    epochs:
        Passes over the source part (>= 1).
    seed:
        Seed (>= 0) of the initialisation, the batch order and the augmentation.
    heads:
        Which checkpoints to train (a subset of ``("linear", "cosine")``).
    train_limit:
        Train on the first ``train_limit`` source images only (a quick check); ``None`` = all.
    say:
        Receives one progress line per model (accuracy clean and per shift).

    Returns
    -------
    dict: per head ``{"path", "clean_accuracy", "shift_accuracy", "bn_adapted_accuracy",
    "seconds"}``, plus ``"card"`` (path of ``card.json``).
    """
    check_count("epochs", epochs)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ParameterError("seed", f"must be an integer >= 0, got {seed!r}")
    if train_limit is not None:
        check_count("train_limit", train_limit)
    unknown = [h for h in heads if h not in DEMO_HEADS]
    if unknown or not heads:
        raise ParameterError("heads", f"choose among {', '.join(DEMO_HEADS)}, got {list(heads)!r}")
    folder = _make_folder(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_and_save(folder, heads, int(epochs), int(seed), train_limit, say)
    finally:
        torch.set_num_threads(threads)


def _train_and_save(
    folder: Path, heads: Sequence[str], epochs: int, seed: int, train_limit: int | None, say: Callable[[str], None]
) -> dict[str, Any]:
    images, labels = demo_arrays("source")
    images, labels = images[:train_limit], labels[:train_limit]
    report: dict[str, Any] = {}
    card_models = {}
    for head in heads:
        started = time.perf_counter()
        model = _train_model(_ARCH_KWARGS[head], images, labels, epochs, seed)
        seconds = time.perf_counter() - started
        metrics = _metrics(model)
        trained_on = (
            f"sklearn digits, source part ({len(labels)} images), seed {seed}, {epochs} epochs"
        )
        path = folder / f"demo_{head}.pt"
        payload = checkpoint_payload(model, _ARCH_KWARGS[head], metrics, trained_on)
        _write_atomically(path, lambda tmp, obj=payload: torch.save(obj, tmp))
        adapted = {
            s: round(_batch_norm_adapted_accuracy(model, s, _REPORT_SEVERITY), 4)
            for s in SHIFTS[1:]
        }
        report[head] = {
            "path": str(path),
            **metrics,
            "bn_adapted_accuracy": adapted,
            "seconds": round(seconds, 1),
        }
        card_models[head] = {
            **report[head],
            "path": path.name,
            "trained_on": trained_on,
            "bytes": path.stat().st_size,
        }
        say(_describe(head, report[head]))
    report["card"] = str(_write_card(folder, card_models))
    return report


def checkpoint_payload(
    model: nn.Module, arch_kwargs: dict[str, Any], metrics: dict[str, Any], trained_on: str
) -> dict[str, Any]:
    """The object saved as a demo checkpoint (loads with ``torch.load(..., weights_only=True)``).

    Returns ``{"protoview": {format, version, arch, arch_kwargs, transform, class_names,
    trained_on, metrics}, "state_dict": {name: contiguous CPU tensor}}``.
    """
    t = DEMO_TRANSFORM
    header = {
        "format": "protoview-checkpoint",
        "version": 1,
        "arch": DEMO_ARCH,
        "arch_kwargs": dict(arch_kwargs),
        "transform": {
            "size": list(t.size),
            "channels": t.channels,
            "mean": list(t.mean),
            "std": list(t.std),
        },
        "class_names": list(DEMO_CLASS_NAMES),
        "trained_on": trained_on,
        "metrics": metrics,
    }
    state = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    return {"protoview": header, "state_dict": state}


def _train_model(
    arch_kwargs: dict[str, Any], images: np.ndarray, labels: np.ndarray, epochs: int, seed: int
) -> SplitModel:
    with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left as it was
        torch.manual_seed(seed)
        model = build_demo_model(**arch_kwargs)
    generator = torch.Generator().manual_seed(seed)
    pixels, targets = torch.from_numpy(images), torch.from_numpy(labels)
    batches_per_epoch = -(-len(targets) // _BATCH_SIZE)
    optimizer = torch.optim.Adam(_parameter_groups(model), lr=_LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * batches_per_epoch
    )
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        for rows in order.split(_BATCH_SIZE):
            batch = _random_translate(pixels[rows], generator)
            inputs = (batch - DEMO_TRANSFORM.mean[0]) / DEMO_TRANSFORM.std[0]
            loss = F.cross_entropy(model(inputs), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


_BATCH_SIZE = 64
_LEARNING_RATE = 3e-3
_SIGMA_LEARNING_RATE = 0.1


def _parameter_groups(model: nn.Module) -> list[dict[str, Any]]:
    """All parameters at the base rate, except a cosine head's ``sigma`` at a fast one.

    ``sigma`` starts at 1 (PyCIL); at the base rate it would end near 2, leaving softmax
    outputs almost flat. The fast rate lets it reach a realistic scale (about 9 here).
    """
    sigma = getattr(model.classifier, "sigma", None)
    if not isinstance(sigma, nn.Parameter):
        return [{"params": list(model.parameters())}]
    rest = [p for p in model.parameters() if p is not sigma]
    return [{"params": rest}, {"params": [sigma], "lr": _SIGMA_LEARNING_RATE}]


def _random_translate(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each (N, 1, H, W) image by -1..1 pixels per axis, filling with 0 (background)."""
    n, _, height, width = batch.shape
    padded = F.pad(batch, (1, 1, 1, 1))
    offsets = torch.randint(0, 3, (n, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(height))[:, :, None]
    cols = (offsets[:, 1, None] + torch.arange(width))[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


def _metrics(model: nn.Module) -> dict[str, Any]:
    shifted = {s: round(demo_accuracy(model, "test", s, _REPORT_SEVERITY), 4) for s in SHIFTS[1:]}
    return {"clean_accuracy": round(demo_accuracy(model, "test"), 4), "shift_accuracy": shifted}


def _describe(head: str, result: dict[str, Any]) -> str:
    shifts = ", ".join(f"{s} {a:.1%}" for s, a in result["shift_accuracy"].items())
    adapted = ", ".join(f"{s} {a:.1%}" for s, a in result["bn_adapted_accuracy"].items())
    return (
        f"{head}: clean {result['clean_accuracy']:.1%} | severity {_REPORT_SEVERITY}: {shifts} | "
        f"with test-batch BN statistics: {adapted} | {result['seconds']:.1f} s"
    )


def _make_folder(out_dir: str | os.PathLike[str]) -> Path:
    folder = Path(out_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(
            folder, f"cannot create the output folder ({exc.strerror or exc})"
        ) from None
    return folder


def _write_card(folder: Path, models: dict[str, Any]) -> Path:
    card = {
        "data": "scikit-learn digits (8x8, 0..16 scaled to [0, 1]), stratified 70/30 split, seed 0",
        "report_severity": _REPORT_SEVERITY,
        "severities": {
            "noise_std": NOISE_STD,
            "blur_sigma": BLUR_SIGMA,
            "contrast_keep": CONTRAST_KEEP,
            "rotation_degrees": ROTATION_DEGREES,
        },
        "transform": {"mean": DEMO_TRANSFORM.mean, "std": DEMO_TRANSFORM.std},
        "torch": torch.__version__,
        "models": models,
    }
    path = folder / "card.json"
    text = json.dumps(card, indent=2) + "\n"
    _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through :func:`atomic_path`, then make the file world-readable (0644).

    ``atomic_path``'s temporary file is created private (0600); shipped checkpoints and
    cards are meant to be read by every user.
    """
    with atomic_path(path) as tmp:
        write(tmp)
    try:
        path.chmod(0o644)
    except OSError as exc:
        raise SnapshotError(path, f"cannot set the file's permissions ({exc.strerror or exc})") from None
