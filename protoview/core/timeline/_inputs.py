"""The checkpoints of a timeline and the one dataset they are seen on, checked to fit.

:func:`expand_checkpoints` turns files and globs into paths in natural order (``epoch_2``
before ``epoch_10``); :func:`open_timeline_inputs` checks, before any feature is
extracted, that the checkpoints share one architecture and preprocessing and that their
largest head holds every class of the data (smaller heads are the earlier tasks of a
class-incremental run), and opens the data once.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from protoview.errors import CheckpointError, DatasetError, ParameterError

_GLOB_CHARS = re.compile(r"[*?\[]")


def natural_key(path: str) -> tuple:
    """Sort key of ``path`` with its digit runs compared as numbers (``epoch_2`` <
    ``epoch_10``); ties by the text itself."""
    parts = re.split(r"(\d+)", path)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts), path


def expand_checkpoints(specs: Sequence[str], *, keep_order: bool = False) -> list[str]:
    """The checkpoint files named by ``specs``: each a file (or ``demo`` / ``demo:linear``)
    or a glob (``runs/epoch_*.pt``), expanded. All of them are put in natural order unless
    ``keep_order`` (then each glob's matches are in natural order, in the order given).

    Raises ParameterError naming a glob that matches no file, or when nothing is given.
    """
    if not specs:
        raise ParameterError("checkpoints", "give at least one checkpoint file or glob")
    out: list[str] = []
    for spec in specs:
        if _GLOB_CHARS.search(spec) and not os.path.exists(spec):
            found = sorted((p for p in glob.glob(spec) if not os.path.isdir(p)), key=natural_key)
            if not found:
                raise ParameterError(spec, "matches no file (a glob of checkpoints, e.g. "
                                           "'runs/epoch_*.pt'; quote it so the shell keeps it)")
            out += found
        else:
            out.append(spec)
    return out if keep_order else sorted(out, key=natural_key)


@dataclass(frozen=True)
class CheckpointInfo:
    """What the timeline needs to know of one checkpoint before extracting: its path (as
    given), info (:class:`~protoview.core.model.ModelInfo`) and featurizer signature."""

    path: str
    info: Any
    signature: tuple


@dataclass(frozen=True)
class OpenOptions:
    """The options every checkpoint of a timeline is loaded with (the CLI's)."""

    arch: str | None = None
    trust: bool = False
    nb_proxy: int | None = None
    split: str | None = None
    preprocess: str | None = None


def _signature(model: Any) -> tuple:
    """(name, shape) of every featurizer tensor: two checkpoints of one architecture agree."""
    return tuple((k, tuple(v.shape)) for k, v in model.featurizer.state_dict().items())


def _load(path: str, options: OpenOptions, nb_proxy: int | None = None, **extra: Any) -> Any:
    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.opening import checkpoint_path

    return load_checkpoint(
        checkpoint_path(path), options.arch, trust=options.trust,
        nb_proxy=nb_proxy if nb_proxy is not None else options.nb_proxy, split=options.split,
        preprocess=options.preprocess, **extra)


def inspect_checkpoints(paths: Sequence[str], options: OpenOptions) -> list[CheckpointInfo]:
    """Load each checkpoint once (then let it go) and check that they share the first one's
    architecture (its name and the name and shape of every featurizer tensor) and its
    preprocessing. CheckpointError naming the first file that differs."""
    infos: list[CheckpointInfo] = []
    for path in paths:
        with warnings.catch_warnings():  # said once, when the data are opened
            warnings.simplefilter("ignore")
            model = _load(path, options)
        found = CheckpointInfo(path, model.info, _signature(model))
        del model
        if infos:
            _check_same_architecture(infos[0], found)
        infos.append(found)
    return infos


def _check_same_architecture(first: CheckpointInfo, other: CheckpointInfo) -> None:
    a, b = first.info, other.info
    where = f"{os.path.basename(first.path)}"
    if a.arch != b.arch or first.signature != other.signature:
        what = (f"the architecture {b.arch}, not {where}'s {a.arch}" if a.arch != b.arch else
                f"a featurizer of other layers or shapes than {where}'s "
                f"({_first_difference(first, other)})")
        raise CheckpointError(
            other.path, f"has {what}: a timeline compares checkpoints of one architecture")
    ta, tb = a.transform, b.transform
    if ta is not None and tb is not None and ta.key() != tb.key():
        raise CheckpointError(
            other.path, f"preprocesses its inputs as {tb.describe()}, not as {where} does "
                        f"({ta.describe()}); pass --preprocess to give every checkpoint one")


def _first_difference(first: CheckpointInfo, other: CheckpointInfo) -> str:
    ours = dict(first.signature)
    for name, shape in other.signature:
        if name not in ours:
            return f"{name} is not in it"
        if ours[name] != shape:
            return f"{name} is {shape}, not {ours[name]}"
    return f"{len(first.signature)} tensors against {len(other.signature)}"


def largest_head(infos: Sequence[CheckpointInfo]) -> int:
    """Index of the checkpoint with the most head rows (the last such, in timeline order)."""
    sizes = [c.info.head.num_proxies for c in infos]
    best = max(sizes)
    return max(i for i, s in enumerate(sizes) if s == best)


def open_reference(ref: CheckpointInfo, data: str, options: OpenOptions, *,
                   warn: bool = True) -> tuple[Any, Any]:
    """The reference checkpoint (the largest head) and the data, fitted to each other as
    :func:`~protoview.core.opening.open_model_and_data` fits them; a head with fewer
    classes than the data's labels is a CheckpointError naming the checkpoint."""
    from protoview.core.data import FeatureSet, fit_classes, open_dataset
    from protoview.core.opening import classes_for_proxies, follow_data, restrict_to_subset
    from protoview.core.preprocess import default_warning
    from protoview.core.warnings import ProtoviewWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _load(ref.path, options)
    info = model.info
    follow_data(info, data)
    demo_data = data.strip() == "demo" or data.strip().startswith("demo:")
    own = None if demo_data and info.transform_source == "default" else info.transform
    dataset = open_dataset(data, own)
    if isinstance(dataset, FeatureSet):
        raise DatasetError(
            dataset.source, "holds the features of one model; a timeline extracts each "
                            "checkpoint's features from the images (open the image data)")
    dataset.transform_source = ("built-in (demo data)" if own is None else info.transform_source)
    classes = classes_for_proxies(info, dataset, ref.path)
    if classes is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _load(ref.path, options, num_classes=classes)
        info = model.info
        follow_data(info, data)
    model = restrict_to_subset(model, dataset)
    head = model.info.head.num_classes
    top = _largest_label(getattr(dataset, "labels", None))
    if not getattr(model, "has_head", True):  # self-supervised encoders: no head to fit
        return model, dataset
    if top is not None and top >= head:
        raise CheckpointError(
            ref.path, f"has the largest head of the timeline, {head} classes, but the labels of "
                      f"{dataset.source} go up to {top}: every class of the data must be in "
                      "the largest head (give the data of the classes seen)")
    fit_classes(dataset, head)
    if warn and info.transform_source == "default" and own is not None:
        warnings.warn(ProtoviewWarning(default_warning(info.arch)), stacklevel=2)
    return model, dataset


def _largest_label(labels: Any) -> int | None:
    """The largest label of numeric ``labels`` (None: none, or not numbers: the data's own
    check names the problem)."""
    import numpy as np

    array = np.asarray(labels) if labels is not None else np.zeros(0)
    if array.size == 0 or array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        return None
    return int(array.max())


def load_on(path: str, reference: Any, data: str, dataset: Any, options: OpenOptions) -> Any:
    """Checkpoint ``path`` loaded as the reference model was (its proxies per class when
    they were inferred from the data), with its head restricted to the data's subset
    classes when the reference's was."""
    from protoview.core.opening import follow_data, restrict_to_subset

    ref = reference.info.head
    nb_proxy = ref.nb_proxy if ref.kind == "cosine" and options.nb_proxy is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _load(path, options, nb_proxy=nb_proxy)
    follow_data(model.info, data)
    return restrict_to_subset(model, dataset)
