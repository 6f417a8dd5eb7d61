"""Batches of one sample: which adapters cannot adapt on them, and the one error that says so.

An adapter that normalises BatchNorm with the batch's own statistics
(``Adapter.batch_statistics``, on a model that has BatchNorm layers) refuses
``batch_size=1`` (a single sample has no batch statistics: one value per channel after
pooling, the spread of a single image otherwise), and a segment's last batch of a single
sample is merged into the batch before it (noted, :func:`~protoview.core.adapt._cut.cut_batches`).
Other adapters (none, t3a, lame) take batches of one, and a last batch of one stays one, as
the toolkit's loaders keep it (``drop_last=False``).
"""

from __future__ import annotations

from protoview.core.adapt.base import Adapter, batchnorm_layers
from protoview.errors import ParameterError


def one_sample_problem(adapter: Adapter) -> str | None:
    """Why ``adapter`` cannot adapt on a batch of one sample (its
    :meth:`~protoview.core.adapt.base.Adapter.one_sample_problem`; by default: it
    normalises BatchNorm with batch statistics on a model with BatchNorm layers), or None."""
    ask = getattr(adapter, "one_sample_problem", None)
    if callable(ask):
        return ask()
    model = getattr(adapter, "model", None)
    if getattr(adapter, "batch_statistics", True) and model is not None and batchnorm_layers(model):
        return "it normalises BatchNorm with the statistics of each batch"
    return None


def one_sample_methods() -> list[str]:
    """The registered methods that adapt on batches of one sample (``batch_statistics``
    False), for messages."""
    from protoview.core.adapt.registry import method_class, method_names

    names = []
    for name in method_names():
        try:
            if not getattr(method_class(name), "batch_statistics", True):
                names.append(name)
        except Exception:  # noqa: BLE001 - a method that cannot be imported is not offered
            continue
    return names


def check_batch_size(adapter: Adapter, batch_size: int) -> None:
    """Raise :class:`ParameterError` naming ``--batch-size`` when ``adapter`` cannot adapt
    on batches of ``batch_size`` (of one sample, see :func:`one_sample_problem`)."""
    if batch_size != 1:
        return
    problem = one_sample_problem(adapter)
    if problem is not None:
        raise ParameterError(
            "--batch-size", f"{problem}; use a batch size of 2 or more, or a method that "
                            f"adapts on one sample ({', '.join(one_sample_methods())})")
