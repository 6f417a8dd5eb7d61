"""Batched feature extraction, the on-disk feature cache, and feature files.

:func:`extract_features` runs ``featurizer`` then ``classifier`` over a dataset in order and
returns float32 numpy arrays; :func:`cached_features` does the same through a cache of
protoview feature files keyed by :func:`feature_cache_key`; :func:`write_feature_file` /
:func:`read_feature_file` are the ``protoview extract --out`` format (see
``protoview.core.data._featurefile`` for the layout).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protoview.core.data._featurefile import (
    FORMAT_NAME,
    FeatureSet,
    read_feature_arrays,
    write_feature_arrays,
)
from protoview.core.data._loading import BatchRunner, default_num_workers, iterate_batches
from protoview.core.device import pick_device
from protoview.core.heads import prediction_map
from protoview.core.model import SplitModel
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import (
    CancelledError,
    DatasetError,
    ParameterError,
    ProtoviewError,
    SnapshotError,
)

__all__ = [
    "FeatureResult",
    "cache_folder",
    "cached_features",
    "default_num_workers",
    "extract_features",
    "feature_cache_key",
    "feature_file_attrs",
    "read_feature_file",
    "write_feature_file",
]

CACHE_ENV = "PROTOVIEW_CACHE_DIR"
_CACHE_VERSION = "protoview-feature-cache/1"


@dataclass
class FeatureResult:
    """Features and logits of every sample, in dataset order.

    features: (N, D) float32; logits: (N, C) float32; labels: (N,) int64 (-1 unknown);
    device: where it ran; seconds: wall time; images_per_second: N / seconds;
    notes: what a user should know (cache hits, OOM fallbacks, ...); attrs: file attributes
    when read from a feature file; fell_back: the GPU failed half-way and the CPU finished;
    prediction_map: the head's :class:`~protoview.core.heads.PredictionMap` (ImageNet-D), or
    None.
    """

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    device: str = "cpu"
    seconds: float = 0.0
    images_per_second: float = 0.0
    notes: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    fell_back: bool = False
    prediction_map: Any = None

    @property
    def predictions(self) -> np.ndarray:
        """(N,) int64 predicted classes (:func:`~protoview.core.heads.predicted_classes`:
        the argmax of the logits, mapped by ``prediction_map``; -1 each for an encoder's 0
        columns)."""
        from protoview.core.heads import predicted_classes

        return predicted_classes(self.logits, self.prediction_map)


def extract_features(
    model: SplitModel,
    dataset: Any,
    *,
    batch_size: int | None = 256,
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    amp: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FeatureResult:
    """Run the model over ``dataset`` in order and collect features and logits.

    Parameters
    ----------
    model: featurizer + classifier; moved to the device and run in eval mode (its train /
        eval flag is restored afterwards).
    dataset: yields ``(x (C,H,W) float32, y int)``; in-memory datasets with ``get_batch``
        are sliced directly (no DataLoader).
    batch_size: images per forward pass (>= 1); halved on CUDA out-of-memory. None: 256 on
        the CPU; on CUDA the largest batch a memory probe says fits
        (:func:`~protoview.core.accel.probe_batch_size`).
    device: ``"cpu"``, ``"cuda"``, ... or None for :func:`pick_device`.
    num_workers: DataLoader workers; None: :func:`default_num_workers`.
    amp: on CUDA, bfloat16 or float16 autocast when its predictions agree with float32's
        on the first batch (:func:`~protoview.core.accel.choose_precision`; the choice is
        in ``notes``); never on the CPU. Outputs are float32 either way.
    progress: called as ``progress(samples_done, total)`` after each batch.
    cancel: checked before each batch; returning True raises CancelledError.

    Returns
    -------
    FeatureResult with features (N, D) float32, logits (N, C) float32, labels (N,) int64.
    """
    # Long on purpose: the checks, the device set-up (channels-last, the probed batch size)
    # and the batch loop share the runner and the preallocated arrays, and the model's
    # training mode must be restored around the loop (try/finally).
    if isinstance(dataset, FeatureSet):
        raise ParameterError(
            "dataset", f"{dataset.source} already holds features; there is nothing to extract"
        )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ParameterError("batch_size", f"must be a whole number >= 1, got {batch_size!r}")
    if num_workers is not None and num_workers < 0:
        raise ParameterError("num_workers", f"must be >= 0, got {num_workers}")
    total = len(dataset)
    if total == 0:
        raise DatasetError(getattr(dataset, "source", "dataset"), "holds no samples")
    dev = pick_device(str(device) if device is not None else None)
    started = time.perf_counter()
    was_training = model.training
    model.to(dev).eval()
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    runner = BatchRunner(model, dev, amp, batch_size or 256)
    if batch_size is None and dev.type == "cuda":
        batch_size = runner.probe_batch_size(dataset[0][0])
    batch_size = batch_size or 256
    features = logits = None
    labels = np.empty(total, dtype=np.int64)
    problems: list[str] = []
    done = 0
    try:
        with torch.inference_mode():
            for x, y, bad in iterate_batches(dataset, batch_size, num_workers, dev):
                if cancel is not None and cancel():
                    raise CancelledError(
                        f"feature extraction cancelled after {done} of {total} samples"
                    )
                batch_features, batch_logits = runner.run(x)
                if features is None:
                    features = np.empty((total, batch_features.shape[1]), dtype=np.float32)
                    logits = np.empty((total, batch_logits.shape[1]), dtype=np.float32)
                stop = done + batch_features.shape[0]
                features[done:stop], logits[done:stop], labels[done:stop] = (
                    batch_features,
                    batch_logits,
                    y.numpy(),
                )
                problems += bad
                done = stop
                if progress is not None:
                    progress(done, total)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - started
    notes = list(dict.fromkeys(runner.notes))
    if runner.fell_back:
        warnings.warn(ProtoviewWarning(runner.fell_back), stacklevel=2)
    if problems:
        message = f"{len(problems)} image(s) could not be decoded and were read as blank images (first: {problems[0]})"
        notes.append(message)
        warnings.warn(ProtoviewWarning(message), stacklevel=2)
    return FeatureResult(
        features,
        logits,
        labels,
        device=str(runner.device),  # "cpu" when the GPU failed half-way
        seconds=seconds,
        images_per_second=total / max(seconds, 1e-9),
        notes=notes,
        fell_back=bool(runner.fell_back),
        prediction_map=prediction_map(model),
    )


def _state_dict_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1).contiguous().cpu()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def feature_cache_key(model: SplitModel, dataset: Any) -> str:
    """sha256 hex of the model (checkpoint sha256 + arch + head + class order, or the state_dict bytes
    when ``model.info`` is None), ``dataset.identity()`` and ``dataset.transform.key()``.

    The checkpoint hash names the weights *as loaded*: for a model changed in memory
    (e.g. adapted), call :func:`extract_features` directly instead of the cache.
    """
    if isinstance(dataset, FeatureSet) or not callable(getattr(dataset, "identity", None)):
        raise ParameterError("dataset", "has no identity(); its features cannot be cached")
    info = getattr(model, "info", None)
    if info is not None and info.sha256:
        model_part = (
            f"checkpoint:{info.sha256};arch={info.arch};format={info.format};head={info.head!r}"
        )
        if getattr(info, "class_order", ""):  # the same weights, logits in another order
            model_part += f";class_order={info.class_order}"
        if getattr(info, "encoder", None) is not None:  # DINO's teacher / student, the space
            model_part += f";encoder={info.encoder!r}"
        if getattr(info.head, "partial", False):  # a task checkpoint in the data's classes
            model_part += f";held={info.head.held}"
    else:
        model_part = f"state_dict:{_state_dict_digest(model)}"
    transform = getattr(dataset, "transform", None)
    transform_part = transform.key() if transform is not None else "transform=unknown"
    digest = hashlib.sha256()
    for part in (_CACHE_VERSION, model_part, dataset.identity(), transform_part):
        digest.update(part.encode("utf-8", "surrogateescape"))  # paths need not be UTF-8
        digest.update(b"\0")
    return digest.hexdigest()


def feature_file_attrs(model: SplitModel, dataset: Any) -> dict[str, Any]:
    """The provenance attributes of a feature file for ``model`` on ``dataset`` (with the
    preprocessing as ``preprocess`` / ``preprocess_source``, see ``data.preprocess_attrs``)."""
    from protoview.core.data import preprocess_attrs

    info = getattr(model, "info", None)
    transform = getattr(dataset, "transform", None)
    return {
        **preprocess_attrs(dataset),
        "checkpoint": info.path if info is not None else "",
        "checkpoint_sha256": info.sha256 if info is not None else "",
        "dataset": getattr(dataset, "description", ""),
        "dataset_identity": dataset.identity()
        if callable(getattr(dataset, "identity", None))
        else "",
        "transform": transform.key() if transform is not None else "",
        "class_names": list(getattr(dataset, "class_names", []) or []),
    }


def write_feature_file(
    path: str | os.PathLike[str], result: FeatureResult, *, attrs: dict[str, Any]
) -> None:
    """Write ``result`` as a protoview feature file, atomically (SnapshotError on failure)."""
    arrays = {"features": result.features, "labels": result.labels, "logits": result.logits}
    if result.logits.ndim == 2 and result.logits.shape[1] > 0:
        arrays["predictions"] = result.predictions
    defaults = {
        key: ""
        for key in ("checkpoint", "checkpoint_sha256", "dataset", "dataset_identity", "transform")
    }
    write_feature_arrays(
        path,
        arrays,
        {**defaults, "device": result.device, "seconds": float(result.seconds), **attrs},
    )


def read_feature_file(path: str | os.PathLike[str]) -> FeatureResult:
    """Read a feature file written by :func:`write_feature_file` (SnapshotError on problems).

    ``result.attrs`` holds the file's attributes.
    """
    started = time.perf_counter()
    arrays, attrs = read_feature_arrays(path, SnapshotError)
    if "logits" not in arrays:
        raise SnapshotError(
            str(path), "has no 'logits' array; open it with open_dataset() as a feature set instead"
        )
    seconds = time.perf_counter() - started
    return FeatureResult(
        arrays["features"],
        arrays["logits"],
        arrays["labels"],
        device=str(attrs.get("device", "")),
        seconds=seconds,
        images_per_second=len(arrays["labels"]) / max(seconds, 1e-9),
        notes=[f"read from {path}"],
        attrs=attrs,
    )


def cache_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$PROTOVIEW_CACHE_DIR``, else ``~/.cache/protoview/features``."""
    chosen = (
        cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "protoview" / "features"
    )
    return Path(chosen).expanduser().absolute()


def _load_cached(path: Path, key: str, dataset: Any) -> tuple[FeatureResult | None, str]:
    try:
        result = read_feature_file(path)
    except Exception as exc:  # a cache file is never trusted: any failure is a miss
        return None, str(exc)
    if result.attrs.get("format") != FORMAT_NAME or result.attrs.get("cache_key") != key:
        return None, "its key does not match"
    if result.features.shape[0] != len(dataset):
        return None, f"it holds {result.features.shape[0]} rows for {len(dataset)} samples"
    labels = getattr(dataset, "labels", None)
    if labels is not None and not np.array_equal(np.asarray(labels), result.labels):
        return None, "its labels differ from the dataset's"
    return result, ""


def cached_features(
    model: SplitModel,
    dataset: Any,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    **extract_kwargs: Any,
) -> FeatureResult:
    """:func:`extract_features` through the on-disk cache (``<cache>/<key>.h5``).

    A cache file that cannot be read, has another key, wrong shapes or no ``complete``
    attribute is deleted and rebuilt. ``refresh=True`` always rebuilds. Failing to write
    the cache is not an error (a note says why). Datasets without ``identity()`` are
    extracted without the cache.
    """
    try:
        key = feature_cache_key(model, dataset)
    except ParameterError:
        if isinstance(dataset, FeatureSet):
            raise
        result = extract_features(model, dataset, **extract_kwargs)
        result.notes.append("not cached: the dataset has no identity()")
        return result
    path = cache_folder(cache_dir) / f"{key}.h5"
    notes: list[str] = []
    if path.exists() and not refresh:
        started = time.perf_counter()
        hit, problem = _load_cached(path, key, dataset)
        if hit is not None:
            hit.seconds = time.perf_counter() - started
            hit.images_per_second = len(hit.labels) / max(hit.seconds, 1e-9)
            hit.notes = [f"loaded from cache {path}"]
            hit.prediction_map = prediction_map(model)
            progress = extract_kwargs.get("progress")
            if progress is not None:
                progress(len(hit.labels), len(hit.labels))
            return hit
        notes.append(f"cache file {path} was unusable ({problem}); rebuilt it")
    if path.exists():
        with contextlib.suppress(OSError):
            path.unlink()
    result = extract_features(model, dataset, **extract_kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_feature_file(
            path, result, attrs={**feature_file_attrs(model, dataset), "cache_key": key}
        )
        notes.append(f"saved to cache {path}")
    except (ProtoviewError, OSError) as exc:
        notes.append(f"could not write the feature cache ({exc})")
    result.notes += notes
    return result


def precomputed_features(feature_set: Any, model: SplitModel) -> FeatureResult:
    """A features file's features as a FeatureResult: its logits, or the head's on its
    features (which must have the head's dimension: one line naming the file otherwise)."""
    from protoview.errors import DatasetError

    feats = np.asarray(feature_set.features, np.float32)
    head_dim = model.info.head.feature_dim if model.info else feats.shape[1]
    if feats.shape[1] != head_dim:
        raise DatasetError(
            feature_set.source,
            f"features have {feats.shape[1]} dimensions but the checkpoint's head expects "
            f"{head_dim}: were they extracted with another model?",
        )
    if feature_set.logits is not None:
        logits = np.asarray(feature_set.logits, np.float32)
    else:
        with torch.inference_mode():
            head = model.classifier.float().cpu()
            logits = head(torch.from_numpy(feats)).float().numpy()
    return FeatureResult(
        feats, logits, np.asarray(feature_set.labels, np.int64), device="file",
        notes=[f"features read from {feature_set.source}"], prediction_map=prediction_map(model),
    )

