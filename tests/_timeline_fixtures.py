"""Checkpoints of a training run for the timeline tests, in real layouts, from the demo CNN.

- :func:`write_epochs`: a plain training loop's ``torch.save({"epoch", "model_state_dict",
  "optimizer_state_dict"}, "epoch_{e}.pt")`` per epoch (load with ``--arch
  protoview-demo-cnn``); each epoch a few SGD steps on the demo digits from the one before.
- :func:`write_pycil_tasks`: PyCIL's ``save_checkpoint`` layout (``{"tasks",
  "model_state_dict": {convnet.*, fc.*}}``, ``{name}_{task}.pkl``) with a growing
  ``SimpleLinear`` head (its ``fc.weight`` / ``fc.bias``), the old classes' rows first,
  trained as PyCIL trains: in its seeded class order (head class ``k`` is the digit
  ``order[k]``, ``DataManager._map_new_class_index``), task ``t`` on the classes seen.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

ARCH = "protoview-demo-cnn"


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from protoview.core.demo import demo_arrays, demo_inputs

    images, labels = demo_arrays("source")
    return demo_inputs(images), torch.as_tensor(labels, dtype=torch.long)


def _train(model: nn.Module, steps: int, seed: int, classes: int | None = None,
           order: list[int] | None = None) -> None:
    x, y = _digits()
    if order is not None:  # PyCIL's targets: the label's place in the order
        y = torch.as_tensor([order.index(int(v)) for v in y], dtype=torch.long)
    if classes is not None:
        keep = y < classes
        x, y = x[keep], y[keep]
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=generator)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()


def write_epochs(folder: Path, epochs: int = 3, steps: int = 3, seed: int = 0,
                 name: str = "epoch_{}.pt") -> list[Path]:
    """``epochs`` checkpoints of one run (epoch 1 = a briefly trained model)."""
    from protoview.core.demo import build_demo_model

    torch.manual_seed(seed)
    model = build_demo_model(head="linear", num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    paths = []
    for epoch in range(1, epochs + 1):
        _train(model, steps, seed + epoch)
        path = folder / name.format(epoch)
        torch.save({"epoch": epoch, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": opt.state_dict(), "val_acc": 0.5}, path)
        paths.append(path)
    return paths


def write_pycil_tasks(folder: Path, increments: tuple[int, ...] = (4, 3, 3), steps: int = 3,
                      seed: int = 0, name: str = "finetune_{}.pkl",
                      order: list[int] | None = None) -> list[Path]:
    """One PyCIL checkpoint per task, the head growing by ``increments`` classes, in
    ``order`` (default PyCIL's, seed 1993, of the 10 digits)."""
    from protoview.core.demo import build_demo_model
    from protoview.core.opening import pycil_class_order

    order = list(pycil_class_order(10)) if order is None else order
    torch.manual_seed(seed)
    seen, fc, paths = 0, None, []
    featurizer = None
    for task, increment in enumerate(increments):
        seen += increment
        model = build_demo_model(head="linear", num_classes=seen)
        if featurizer is not None:
            model.featurizer.load_state_dict(featurizer)
            with torch.no_grad():  # PyCIL's SimpleLinear update: the old rows are kept
                model.classifier.weight[: fc["weight"].shape[0]] = fc["weight"]
                model.classifier.bias[: fc["bias"].shape[0]] = fc["bias"]
        _train(model, steps, seed + task, classes=seen, order=order)
        featurizer = model.featurizer.state_dict()
        fc = {k: v.clone() for k, v in model.classifier.state_dict().items()}
        state = {f"convnet.{k}": v for k, v in featurizer.items()}
        state |= {f"fc.{k}": v for k, v in fc.items()}
        path = folder / name.format(task)
        torch.save({"tasks": task, "model_state_dict": state}, path)
        paths.append(path)
    return paths


def write_demo_format(path: Path, feature_dim: int = 64, classes: int = 10, seed: int = 0) -> Path:
    """A protoview-format checkpoint of an untrained demo CNN (its architecture stored in
    the file, no ``--arch`` needed) with ``feature_dim`` features."""
    from protoview.core.demo import build_demo_model

    torch.manual_seed(seed)
    kwargs = {"head": "linear", "num_classes": classes, "feature_dim": feature_dim}
    model = build_demo_model(**kwargs)
    meta = {"format": "protoview-checkpoint", "version": 1, "arch": ARCH, "arch_kwargs": kwargs}
    torch.save({"protoview": meta, "state_dict": model.state_dict()}, path)
    return path


def with_new_head(src: Path, dst: Path, seed: int = 1) -> Path:
    """``src`` (a plain training loop's file) with only its classifier changed: the same
    features, other predictions (as an epoch that trained the head alone)."""
    payload = torch.load(src, weights_only=True)
    state = dict(payload["model_state_dict"])
    generator = torch.Generator().manual_seed(seed)
    state["classifier.weight"] = torch.randn(state["classifier.weight"].shape, generator=generator)
    torch.save({**payload, "model_state_dict": state}, dst)
    return dst
