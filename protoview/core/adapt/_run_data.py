"""What :class:`~protoview.core.adapt.run.AdaptRun` reads of its dataset, checked (its
length, labels, domains and each domain's shift and severity), and the source data it
hands to a method that needs them.

Each check raises :class:`~protoview.errors.DatasetError` naming ``where`` (the dataset's
name) with one line, or :class:`~protoview.errors.ParameterError` naming
``--source-data``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from protoview.core.adapt.base import Adapter
from protoview.errors import DatasetError, ParameterError


def give_source(adapter: Adapter, source: Any, batch_size: int) -> None:
    """Hand labelled source data to a method that needs them (RMT), as its authors load
    them: shuffled batches of the test batch size from torch's global generator."""
    needs = adapter.needs_source
    if not needs:
        return
    if source is None:
        raise adapter.missing_source_data()
    import torch.utils.data

    labels = np.asarray(getattr(source, "labels", np.zeros(0)))
    if labels.size == 0 or np.any(labels < 0):
        where = getattr(source, "source", None) or "the source data"
        raise ParameterError("--source-data", f"{where}: {adapter.method!r} needs a "
                                            "label for every source sample")
    loader = torch.utils.data.DataLoader(
        source, batch_size=min(batch_size, len(source)), shuffle=True, drop_last=False
    )
    adapter.use_source(loader)


def dataset_length(dataset: Any, where: str) -> int:
    """``len(dataset)``, at least 1."""
    try:
        n = len(dataset)
    except TypeError:
        raise DatasetError(
            where, "the dataset has no length (len(dataset) failed)"
        ) from None
    if n < 1:
        raise DatasetError(where, "the dataset is empty")
    return int(n)


def dataset_labels(dataset: Any, num_samples: int, where: str) -> np.ndarray | None:
    """(N,) int64 ``dataset.labels``, or None when it has none."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return None
    labels = (
        np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        .astype(np.int64)
        .reshape(-1)
    )
    if labels.shape[0] != num_samples:
        raise DatasetError(
            where,
            f"dataset.labels holds {labels.shape[0]} labels for {num_samples} samples",
        )
    return labels


def dataset_domains(
    dataset: Any, num_samples: int, where: str
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """(N,) int64 ``dataset.domains`` and its ``domain_names``, or ``(None, ())``."""
    domains = getattr(dataset, "domains", None)
    if domains is None:
        return None, ()
    domains = np.asarray(domains, np.int64).reshape(-1)
    names = tuple(str(n) for n in getattr(dataset, "domain_names", ()) or ())
    if domains.shape[0] != num_samples:
        raise DatasetError(
            where,
            f"dataset.domains holds {domains.shape[0]} entries for {num_samples} samples",
        )
    if domains.size and (domains.min() < 0 or (names and domains.max() >= len(names))):
        raise DatasetError(where, "dataset.domains holds indices outside its domain_names")
    return domains, names


def domain_shifts(
    dataset: Any, domains: np.ndarray | None
) -> tuple[tuple[str, ...] | None, tuple[int, ...] | None]:
    """The shift (corruption) and severity of each domain, when the dataset says."""
    if domains is None:
        return None, None
    shifts = getattr(dataset, "domain_shifts", None)
    severities = getattr(dataset, "domain_severities", None)
    return (None if shifts is None else tuple(str(s) for s in shifts),
            None if severities is None else tuple(int(s) for s in severities))
