"""Opening a dataset by name: :func:`open_dataset` dispatches on the spelling.

An image dataset is a ``torch.utils.data.Dataset`` yielding ``(x, y)``: ``x`` float32
``(C, H, W)`` resized and normalised by the :class:`~protoview.core.model.TransformSpec`,
``y`` an int (``-1`` unknown). It also has ``labels`` (N,) int64, ``class_names``,
``identity()`` (part of the feature-cache key), ``description``, ``source`` and
``thumbnail(i)``. Precomputed features open as a :class:`FeatureSet` instead.

Spellings accepted by :func:`open_dataset`::

    demo | demo:SHIFT | demo:SHIFT:SEVERITY | demo:source     built-in digits (default demo:noise:3)
    path/to/folder                    ImageFolder (root/<class>/<images>; root/<images>: unlabelled)
    images.npz                                               x (N,C,H,W) | (N,H,W) [+ y (N,)]
    features.h5 | features.hdf5 | features.npz               features (N,D) + labels (N,)
    cifar10:ROOT[:train|test]  (also cifar100, mnist, fashionmnist, svhn; default split: test)
    cifar10c:ROOT:CORRUPTION:SEVERITY    CIFAR-10-C (also cifar100c); ROOT/<corruption>.npy + labels.npy
    imagenetc:ROOT:CORRUPTION:SEVERITY   ImageNet-C: ROOT/<corruption>/<severity>/<wnid>/*.JPEG
    pacs:ROOT:DOMAIN  (also vlcs, officehome, terraincognita, domainnet)   DomainBed's folders
    imagenet-a:ROOT  imagenet-r:ROOT  imagenet-sketch:ROOT  imagenetv2:ROOT   ImageNet variants
    imagenet-d:ROOT:DOMAIN  imagenet-d109:ROOT:DOMAIN  domainnet126:ROOT:DOMAIN   lists over DomainNet
    ccc:ROOT:DOMAIN  (also ccc:ROOT/DOMAIN)    CCC: ROOT/DOMAIN/serial_<00000..>.tar, in order

A comma-separated list where a layout names its shift or domain opens them one after
another as one dataset whose samples know their domain (``dataset.domains``,
``dataset.domain_names``; see :mod:`._concat`): ``demo:noise,blur,contrast``,
``cifar10c:ROOT:gaussian_noise,shot_noise,fog:5``, ``pacs:ROOT:art_painting,cartoon``.
Corrupted data take a range of severities in place of one (``cifar10c:ROOT:fog,snow:1-5``,
``demo:noise,blur:1-5``): each corruption at each severity, domains ``fog:1`` ... ``snow:5``
(what a ``gradual`` stream needs).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from protoview.core.data._arrays import open_npz
from protoview.core.data._base import (
    ArrayImageDataset,
    ProtoviewDataset,
    check_labels,
    short_digest,
)
from protoview.core.data._ccc import open_ccc, parse_ccc_spec
from protoview.core.data._concat import concatenate, domain_name, expand_spec
from protoview.core.data._corruptions import open_corruption, parse_corruption_spec
from protoview.core.data._domainbed import open_domainbed, parse_domainbed_spec
from protoview.core.data._featurefile import FEATURE_SUFFIXES, FeatureSet, open_feature_file
from protoview.core.data._folder import ImageFolderDataset
from protoview.core.data._torchvision import open_torchvision, parse_torchvision_spec
from protoview.core.data._variants import open_variant, parse_variant_spec
from protoview.core.model import TransformSpec
from protoview.core.preprocess import DEFAULT
from protoview.errors import DatasetError, ProtoviewError

DEFAULT_DEMO_SHIFT = "noise"
DEFAULT_DEMO_SEVERITY = 3
_SPELLINGS = (
    "a folder of images (class folders optional), a .npz/.h5 file, demo[:SHIFT[:SEVERITY]], "
    "cifar10:ROOT[:test], cifar10c:ROOT:CORRUPTION:SEVERITY, imagenetc:ROOT:CORRUPTION:SEVERITY "
    "pacs:ROOT:DOMAIN, imagenet-r:ROOT (also imagenet-a, imagenet-sketch, imagenetv2), "
    "domainnet126:ROOT:DOMAIN (also imagenet-d, imagenet-d109) or ccc:ROOT:DOMAIN "
    "(several shifts or domains: demo:noise,blur, "
    "pacs:ROOT:art_painting,cartoon; several severities: cifar10c:ROOT:fog,snow:1-5)"
)


def default_transform() -> TransformSpec:
    """:data:`protoview.core.preprocess.DEFAULT`: resize to 224 x 224, 3 channels, ImageNet
    mean/std (used when neither caller nor checkpoint says; the session warns then)."""
    return DEFAULT


def open_dataset(
    spec: str | os.PathLike[str],
    transform: TransformSpec | None = None,
    *,
    num_classes: int | None = None,
) -> ProtoviewDataset | FeatureSet:
    """Open the dataset named by ``spec`` (see the module docstring for the spellings).

    Parameters
    ----------
    spec:
        A path or a spec string such as ``"demo:blur:2"`` or ``"cifar10:/data:test"``.
    transform:
        How images become model input; usually the checkpoint's ``model.info.transform``.
        ``None``: the demo's own transform for ``demo``, else :func:`default_transform`.
    num_classes:
        When given, labels must lie in ``[0, num_classes)`` or be ``-1``.

    Raises
    ------
    DatasetError
        Naming the file or spec: missing, empty, unreadable, inconsistent, bad labels.
    """
    text = os.fspath(spec).strip()
    if not text:
        raise DatasetError("dataset", f"no dataset given; expected {_SPELLINGS}")
    singles = expand_spec(text)
    if singles is not None and len(singles) == 1:  # a range of one severity (fog:5-5)
        return open_dataset(singles[0], transform, num_classes=num_classes)
    if singles is not None:  # several shifts / domains, one after another
        parts = [open_dataset(single, transform, num_classes=num_classes) for single in singles]
        names = [domain_name(part, single) for part, single in zip(parts, singles, strict=True)]
        return concatenate(parts, names, text)
    if text == "demo" or text.startswith("demo:"):
        return _open_demo(text, transform, num_classes)
    chosen = transform if transform is not None else default_transform()
    if parse_torchvision_spec(text) is not None:
        return open_torchvision(text, chosen, num_classes=num_classes)
    if parse_corruption_spec(text) is not None:
        return open_corruption(text, chosen, num_classes=num_classes)
    if parse_domainbed_spec(text) is not None:
        return open_domainbed(text, chosen, num_classes=num_classes)
    if parse_variant_spec(text) is not None:
        return open_variant(text, chosen, num_classes=num_classes)
    if parse_ccc_spec(text) is not None:
        return open_ccc(text, chosen, num_classes=num_classes)
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise DatasetError(path, f"does not exist; expected {_SPELLINGS}")
    if path.is_dir():
        return ImageFolderDataset(path, chosen, num_classes=num_classes)
    if not path.is_file():  # reading a named pipe would block for ever
        raise DatasetError(path, "is not a regular file (a named pipe, socket or device?)")
    suffix = path.suffix.lower()
    if suffix in FEATURE_SUFFIXES:
        return open_feature_file(path, num_classes=num_classes)
    if suffix == ".npz":
        return open_npz(path, chosen, num_classes)
    raise DatasetError(path, f"unsupported file type {suffix or '(none)'}; expected {_SPELLINGS}")


def _open_demo(
    spec: str, transform: TransformSpec | None, num_classes: int | None
) -> ArrayImageDataset:
    try:
        from protoview.core import demo
    except ImportError as exc:
        raise DatasetError(spec, f"the built-in demo is not available ({exc})") from None
    fields = spec.split(":")[1:]
    if len(fields) > 2:
        raise DatasetError(spec, "expected demo, demo:SHIFT or demo:SHIFT:SEVERITY")
    shift = (fields[0] if fields else DEFAULT_DEMO_SHIFT).strip().lower() or DEFAULT_DEMO_SHIFT
    try:
        severity = int(fields[1]) if len(fields) > 1 else DEFAULT_DEMO_SEVERITY
    except ValueError:
        raise DatasetError(spec, f"severity must be a whole number, got {fields[1]!r}") from None
    if shift == "source" and len(fields) > 1:
        raise DatasetError(spec, "demo:source is the clean training part; it takes no severity")
    part, shift, seed = ("source", "none", 0) if shift == "source" else ("test", shift, 0)
    try:
        images, labels = demo.demo_arrays(part=part, shift=shift, severity=severity, seed=seed)
    except ProtoviewError as exc:
        raise DatasetError(spec, exc.problem) from None
    labels = check_labels(labels, spec, num_classes)
    source = "demo:source" if part == "source" else f"demo:{shift}:{severity}"
    what = (
        "clean source part"
        if part == "source"
        else f"test part, shift {shift}, severity {severity}"
    )
    return ArrayImageDataset(
        images,
        labels,
        list(demo.DEMO_CLASS_NAMES),
        transform if transform is not None else demo.DEMO_TRANSFORM,
        source=source,
        description=f"demo digits, {what}: {len(labels)} images",
        identity=f"demo:part={part};shift={shift};severity={severity};seed={seed};"
        f"digest={short_digest(np.ascontiguousarray(images).tobytes(), np.ascontiguousarray(labels).tobytes())}",
    )
