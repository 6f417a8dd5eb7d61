"""Does the checkpoint's class ``k`` mean the dataset's class ``k``? (``protoview info CKPT DATA``)

A classifier's head knows its classes only by position. The dataset gives them names in an
order (a benchmark layout fixes it: DomainBed's sorted class folders, CIFAR's label order,
ImageNet's sorted WordNet ids). They can be matched when the checkpoint names its classes
and the names agree in order, or, without names, when the counts agree; a DomainBed / TSD
checkpoint that records its ``args.dataset`` must also be about the same dataset. Anything
else is reported as "cannot be matched", with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview.core.model import ModelInfo


@dataclass
class ClassMatch:
    """The verdict: ``matched`` (None for unlabelled data without class names), the lines
    ``protoview info`` prints, and remarks that are not about the classes (a training domain
    used as test data)."""

    matched: bool | None
    lines: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _names(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f", ... ({len(names)})" if len(names) > shown else "")


def match_classes(info: ModelInfo, dataset: Any) -> ClassMatch:
    """Compare ``info`` (a loaded checkpoint's) with ``dataset`` (anything with
    ``class_names``, ``labels`` and optionally ``benchmark``).

    Returns
    -------
    ClassMatch; ``matched`` False says why in ``lines[0]``.
    """
    head = info.head.num_classes
    names = [str(n) for n in getattr(dataset, "class_names", []) or []]
    benchmark = getattr(dataset, "benchmark", None) or {}
    result = ClassMatch(matched=True)
    trained = info.trained_on.get("dataset")
    if trained and benchmark.get("dataset") and _norm(str(trained)) != _norm(str(benchmark["dataset"])):
        result.matched = False
        result.lines.append(
            f"cannot be matched: the checkpoint was trained on {trained} (its args.dataset) "
            f"but the data are {benchmark['dataset']}"
        )
        return result
    envs = info.trained_on.get("test_envs")
    if trained and envs is not None and "environment" in benchmark and benchmark["environment"] not in envs:
        result.remarks.append(
            f"domain {benchmark.get('domain')} (environment {benchmark['environment']}) was a training domain "
            f"of this checkpoint (its test_envs are {envs}): not a test-time shift"
        )
    labels = np.asarray(getattr(dataset, "labels", np.zeros(0)))
    if not names or not np.any(labels >= 0):
        result.matched = None
        result.lines.append(f"the data are unlabelled: nothing to match; predictions are the head's {head} classes")
        return result
    mapping = getattr(dataset, "prediction_map", None)
    if mapping is not None:
        name = benchmark.get("dataset") or mapping.name or "the data"
        if head != len(mapping.classes):
            result.matched = False
            result.lines.append(
                f"cannot be matched: {name} scores the predictions of a "
                f"{len(mapping.classes)}-class ImageNet head, this head has {head} classes")
            return result
        result.lines.append(
            f"{head}-way predictions mapped to {len(names)} classes as the authors' evaluation "
            f"scores {name} (the toolkit's IMAGENET_D_MAPPING: head class -> {name} class, "
            f"{len(mapping.classes) - mapping.unmapped} of the {head} map to one, several to "
            f"a class; the other {mapping.unmapped} are never right); adapting uses the "
            f"{head}-way logits, accuracy, predictions and per-class numbers the mapped class"
        )
        return result
    subset = getattr(dataset, "head_classes", None)
    if subset is not None and head == 1000 and len(subset) == len(names) != head:
        name = benchmark.get("dataset") or "the data"
        result.lines.append(
            f"matched through ImageNet's class index: {name}'s class k is the head's "
            f"ImageNet class (0 -> {subset[0]}, 1 -> {subset[1]}, ...); adapting, extracting "
            f"and comparing restrict the head to these {len(names)} classes "
            f"(logits[:, classes]), as {name}'s evaluation does"
        )
        return result
    stored = info.class_names
    if stored:
        if stored == names:
            result.lines.append(f"matched by name: head class k = dataset class k ({_names(names)})")
            return result
        result.matched = False
        if sorted(stored) == sorted(names):
            k = next(i for i, (a, b) in enumerate(zip(stored, names, strict=True)) if a != b)
            result.lines.append(
                f"cannot be matched: same {len(names)} class names in another order "
                f"(head class {k} is {stored[k]!r}, dataset class {k} is {names[k]!r})"
            )
        else:
            only_ckpt = [n for n in stored if n not in names]
            only_data = [n for n in names if n not in stored]
            result.lines.append(
                f"cannot be matched: the class names differ (checkpoint only: {_names(only_ckpt) or '-'}; "
                f"dataset only: {_names(only_data) or '-'})"
            )
        return result
    order = getattr(info, "class_order", "")
    if order == "pycil" and head == len(names):  # PyCIL's own order, not applied
        result.matched = False
        result.lines.append(
            f"cannot be matched by position: the head's {head} classes follow PyCIL's seeded "
            "order; --class-order pycil applies it (pycil:SEED for another seed, "
            "--class-order data if the run kept the data's order)")
        return result
    if order and order != "pycil" and head < len(names):  # a task checkpoint, order applied
        result.lines.append(
            f"matched through the class order {order}: a task checkpoint, its head holds "
            f"{head} of the data's {len(names)} classes (the data classes order[:{head}]); "
            "the others are absent (never predicted)")
        return result
    if head != len(names):
        result.matched = False
        result.lines.append(
            f"cannot be matched: the head has {head} classes, the dataset {len(names)} ({_names(names)})"
        )
        return result
    how = f" ({benchmark['dataset']}'s order)" if benchmark.get("dataset") else ""
    if order and order != "pycil":  # an order was applied (--class-order)
        result.lines.append(
            f"matched through the class order {order}: the logits are in the data's class "
            f"order{how}, {head} classes ({_names(names)})")
        return result
    result.lines.append(
        f"matched by position: head class k = dataset class k{how}, {head} classes ({_names(names)}); "
        "the checkpoint names none, so check it was trained with this class order"
    )
    return result
