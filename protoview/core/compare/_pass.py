"""One run of ``protoview compare``: the model and every shift's data opened, the seeds set
as the toolkit sets them, one pass of one method over one dataset scored per domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from protoview.core.runs import online_accuracy_by_domain
from protoview.errors import ParameterError


def seed_everything(seed: int) -> None:
    """Seed torch (every device), numpy's and python's global generators with ``seed``,
    as the toolkit (mariodoebler/test-time-adaptation ``conf.py``) does before a run."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_all(checkpoint: str, shifts: Sequence[str], options: dict[str, Any]):
    """The model (opened with the first shift) and every shift's dataset, fitted to it."""
    from protoview.core.data import fit_classes, open_dataset
    from protoview.core.opening import check_has_head, open_model_and_data

    model, first = open_model_and_data(checkpoint, shifts[0], **options)
    check_has_head(model)
    transform = getattr(first, "transform", None)
    if transform is None:
        raise ParameterError("data", f"{shifts[0]} holds precomputed features: adaptation "
                                     "needs the images")
    datasets = [first]
    for spec in shifts[1:]:  # the same preprocessing as the first (chosen once, as there)
        dataset = open_dataset(spec, transform)
        dataset.transform_source = first.transform_source
        fit_classes(dataset, model.info.head.num_classes)
        datasets.append(dataset)
    return model, datasets


def one_pass(model, entry: str, params: dict, dataset, batch_size: int, seed: int,
             shuffle: bool, spec, full_set: bool, n_domains: int,
             source: Any = None) -> tuple[list[float], list[float]]:
    """One pass of ``entry`` over ``dataset``: online accuracy per domain (one value when
    ``n_domains`` is 1) and, with ``full_set``, the full-set accuracy per domain after it."""
    from protoview.core.adapt.registry import make_adapter
    from protoview.core.adapt.run import AdaptRun
    from protoview.core.heads import predicted_classes

    seed_everything(seed)
    run = AdaptRun(make_adapter(entry.partition(":")[0], model, **params), dataset,
                   batch_size=batch_size, seed=seed, shuffle=shuffle, stream=spec, source=source)
    run.accelerate()
    records = run.run_pass()
    labels = run.labels if run.labels is not None else np.full(run.num_samples, -1)
    domains = run.domains if run.domains is not None and n_domains > 1 else np.zeros(run.num_samples, np.int64)
    cells = list(online_accuracy_by_domain(records, labels, domains, n_domains))
    if not full_set:
        return cells, [np.nan] * n_domains
    if n_domains == 1:
        return cells, [run.evaluate()]
    _feats, logits, full_labels = run.features_all()
    predictions = predicted_classes(logits, run.prediction_map)
    after = []
    for d in range(n_domains):
        mask = (domains == d) & (full_labels >= 0)
        after.append(float((predictions[mask] == full_labels[mask]).mean()) if mask.any() else np.nan)
    return cells, after
