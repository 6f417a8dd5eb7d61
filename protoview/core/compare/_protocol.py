"""How a table of ``protoview compare`` was made, as ``{key: value}`` lines: the setting,
samples per domain, batch size, seeds, preprocessing and its source, order of domains,
protoview version, each method's parameters with their defaults, the checkpoint and its
sha256, the datasets (:attr:`~protoview.core.compare.CompareTable.protocol`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

#: How the spread over seeds is measured (one place, named in every table's protocol).
SPREAD = "sample standard deviation over the seeds (ddof=1)"


def table_protocol(model, datasets, columns: Sequence[str], entries: Sequence[str],
                   chosen: Mapping[str, dict], *, spec, seeds: Sequence[int], batch_size: int,
                   shuffle: bool, order: str, together: bool, checkpoint: str,
                   device: str) -> dict[str, str]:
    """How a table was made, ``{key: value}`` (one line each; see
    :mod:`protoview.core.compare`)."""
    import platform

    import torch

    from protoview import __version__
    from protoview.core.adapt.registry import method_defaults

    if not together:
        runs = "each shift its own run from the source model"
    elif spec.domains == "continual":
        runs = "one run per method over all shifts, one after another in the order given"
    else:
        runs = "one run per method over all shifts together"
    described = f" ({spec.describe()})" if spec.describe() != spec.text() else ""
    info = getattr(model, "info", None)
    first = datasets[0]
    transform = first.transform
    out = {
        "seeds": ", ".join(str(s) for s in seeds),
        "spread": SPREAD if len(seeds) > 1 else "none (one seed)",
        "seeding": ("before each run torch.manual_seed(seed), numpy.random.seed(seed), "
                    "random.seed(seed); the stream's order "
                    + ("from numpy.random.default_rng([seed, 0])" if shuffle
                       else f"the dataset's order ({order})")
                    + (", its Dirichlet draws from numpy.random.RandomState([seed, 0])"
                       if spec.labels == "dirichlet" else "")),
        "setting": f"{spec.text()}{described}; {runs}",
        "order_of_domains": ", ".join(columns),
        "samples_per_domain": ", ".join(f"{c} {len(d)}" for c, d in zip(columns, datasets,
                                                                         strict=True)),
        "batch_size": str(batch_size),
        "preprocess": f"{transform.option()} ({transform.describe()})",
        "preprocess_source": str(getattr(first, "transform_source", "") or "unknown"),
        "checkpoint": checkpoint,
    }
    if info is not None:
        out |= {"checkpoint_path": info.path, "checkpoint_sha256": info.sha256 or "unknown",
                "model": f"{info.arch}; {info.format}; {info.head.describe()}"}
    out |= {f"dataset {c}": f"{d.description} ({getattr(d, 'source', '')})"
            for c, d in zip(columns, datasets, strict=True)}
    for entry in entries:
        values = method_defaults(entry.partition(":")[0]) | chosen[entry]
        out[f"method {entry}"] = json.dumps(values, sort_keys=False, default=str)
    out |= {"device": device, "protoview_version": __version__,
            "software": (f"python {platform.python_version()}, torch {torch.__version__}, "
                         f"numpy {np.__version__}")}
    return out
