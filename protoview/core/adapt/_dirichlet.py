"""RoTTA's Dirichlet label-shift sampler (github.com/BIT-DA/RoTTA,
``core/data/ttasampler.py`` ``LabelDirichletDomainSequence``), on positions; equal to it
number for number (``tests/oracles/rotta_sampler.py``). See
:mod:`protoview.core.adapt.stream` for how a stream uses it."""

from __future__ import annotations

import numpy as np


def dirichlet_positions(
    labels: np.ndarray, domains: np.ndarray, concentration: float, rng: np.random.RandomState,
    *, num_class: int | None = None,
) -> np.ndarray:
    """RoTTA's Dirichlet label-shift sequence over positions ``0..n-1`` (see the module
    docstring): labels (n,) int64 >= 0, domains (n,) int64; returns (n,) int64 positions.
    ``rng`` plays NumPy's global generator of the released code; ``num_class``: the classes
    of the whole data (default: the largest label here + 1)."""
    labels = np.asarray(labels, np.int64)
    if num_class is None:
        num_class = int(labels.max()) + 1 if labels.size else 0
    num_slots = num_class if num_class <= 100 else 100
    final: list[np.ndarray] = []
    for domain in np.unique(domains):
        indices = np.flatnonzero(domains == domain)
        domain_labels = labels[indices]
        class_indices = [np.argwhere(domain_labels == y).flatten() for y in range(num_class)]
        slot_indices: list[list[np.ndarray]] = [[] for _ in range(num_slots)]
        distribution = rng.dirichlet([concentration] * num_slots, num_class)
        for c_ids, partition in zip(class_indices, distribution, strict=True):
            cuts = (np.cumsum(partition)[:-1] * len(c_ids)).astype(int)
            for s, ids in enumerate(np.split(c_ids, cuts)):
                slot_indices[s].append(ids)
        for s_ids in slot_indices:
            permutation = rng.permutation(range(len(s_ids)))
            chunks = [s_ids[i] for i in permutation]
            ids = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
            final.append(indices[ids.astype(np.int64)])
    return np.concatenate(final).astype(np.int64) if final else np.zeros(0, np.int64)
