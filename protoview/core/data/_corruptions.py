"""Common-corruption benchmarks as they lie on disk: CIFAR-10-C, CIFAR-100-C and ImageNet-C.

Nothing is downloaded. The layouts are the ones the authors distribute (Hendrycks &
Dietterich, 2019) and RobustBench reads (``robustbench/data.py``)::

    cifar10c:ROOT:CORRUPTION:SEVERITY    ROOT/<corruption>.npy  (5n, 32, 32, 3) uint8
    cifar100c:ROOT:CORRUPTION:SEVERITY   ROOT/labels.npy        (5n,) integers
    imagenetc:ROOT:CORRUPTION:SEVERITY   ROOT/<corruption>/<severity>/<wnid>/*.JPEG

``ROOT`` may also be the folder above (holding ``CIFAR-10-C/``, ``CIFAR-100-C/`` or
``ImageNet-C/``). A CIFAR-C file stacks the 5 severities: severity ``s`` is the ``s``-th
fifth of the rows (rows ``(s-1)n .. sn-1``; RobustBench slices ``n = 10000`` the same way),
and ``labels.npy`` has one label per row. Files are memory-mapped and only the chosen
severity is read. ImageNet-C's class folders are WordNet ids; each keeps its ImageNet class
index (the sorted 1000 ids), also when only some classes are present.

Batch order: a CIFAR-C file holds CIFAR's test set in its own class-mixed order, and the
reference scripts stream it so (RobustBench's loaders, ``shuffle=False``; tent's
``cifar10c.py``): such data say ``file_order_reference`` and a run keeps their order by
default. ImageNet-C's files lie sorted by class, and the scripts that adapt on it shuffle.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np

from protoview.core.data._base import ArrayImageDataset, check_labels, short_digest
from protoview.core.data._folder import ImageFolderDataset
from protoview.core.data._imagenet_wnids import IMAGENET_WNIDS
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError

KINDS = ("cifar10c", "cifar100c", "imagenetc")
SEVERITIES = (1, 2, 3, 4, 5)
#: The 15 benchmark corruptions and the 4 extra ones the CIFAR-10-C release also holds.
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
#: CIFAR-100's fine label names in label order (alphabetical, as in its ``meta`` file).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

_FOLDER = {"cifar10c": "CIFAR-10-C", "cifar100c": "CIFAR-100-C", "imagenetc": "ImageNet-C"}
_CLASSES = {"cifar10c": CIFAR10_CLASSES, "cifar100c": CIFAR100_CLASSES}
_PREPROCESS = {"cifar10c": "cifar10", "cifar100c": "cifar100", "imagenetc": "imagenet"}


def parse_corruption_spec(spec: str) -> tuple[str, str, str, int] | None:
    """``"cifar10c:/data:fog:5"`` -> ``(kind, root, corruption, severity)``.

    ``None`` when ``spec`` names no corruption benchmark; a :class:`DatasetError` naming the
    spec when it does but is malformed (missing field, severity not in 1..5).
    """
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower().replace("-", "").replace("_", "")
    if not sep or kind not in KINDS:
        return None
    fields = rest.rsplit(":", 2)
    usage = (f"expected {kind}:ROOT:CORRUPTION:SEVERITY, e.g. {kind}:/data/{_FOLDER[kind]}:gaussian_noise:5 "
             "(SEVERITY 1..5, or a range such as 1-5 for each of them)")
    if len(fields) != 3 or not all(f.strip() for f in fields):
        raise DatasetError(spec, usage)
    root, corruption, severity_text = (f.strip() for f in fields)
    try:
        severity = int(severity_text)
    except ValueError:
        raise DatasetError(spec, f"severity must be a whole number 1..5, got {severity_text!r}; {usage}") from None
    if severity not in SEVERITIES:
        raise DatasetError(spec, f"severity {severity} does not exist: {_FOLDER[kind]} has severities 1 to 5")
    if os.sep in corruption or "/" in corruption or corruption in ("labels", ".", ".."):
        raise DatasetError(spec, f"{corruption!r} is not a corruption name (such as gaussian_noise)")
    return kind, root, corruption, severity


def open_corruption(
    spec: str, transform: TransformSpec, *, num_classes: int | None = None
) -> ArrayImageDataset | ImageFolderDataset:
    """Open a ``cifar10c:`` / ``cifar100c:`` / ``imagenetc:`` spec (see the module docstring).

    Raises
    ------
    DatasetError
        Naming the spec (malformed) or the file / folder at fault: missing corruption (the
        ones present are listed), a file that is not (5n, H, W, 3) uint8, a labels file of
        another length, labels out of range.
    """
    parsed = parse_corruption_spec(spec)
    if parsed is None:
        raise DatasetError(spec, f"not a corruption benchmark spec; expected KIND:ROOT:CORRUPTION:SEVERITY with KIND in {', '.join(KINDS)}")
    kind, root, corruption, severity = parsed
    root = str(Path(root).expanduser().absolute())
    if not os.path.isdir(root):
        raise DatasetError(root, f"folder does not exist; expected the {_FOLDER[kind]} folder (or the folder holding it)")
    if kind == "imagenetc":
        return _open_imagenet_c(root, corruption, severity, transform, num_classes)
    return _open_cifar_c(kind, root, corruption, severity, transform, num_classes)


# ---------------------------------------------------------------------------- CIFAR-10/100-C
def _cifar_c_folder(kind: str, root: str) -> str:
    for folder in (root, os.path.join(root, _FOLDER[kind])):
        if os.path.isfile(os.path.join(folder, "labels.npy")):
            return folder
    raise DatasetError(
        os.path.join(root, "labels.npy"),
        f"does not exist (nor {os.path.join(_FOLDER[kind], 'labels.npy')} below it); "
        f"expected {_FOLDER[kind]} as distributed: ROOT/<corruption>.npy and ROOT/labels.npy",
    )


def _missing_corruption(folder: str, corruption: str, kind: str) -> DatasetError:
    present = sorted(
        name[:-4] for name in os.listdir(folder) if name.endswith(".npy") and name != "labels.npy"
    )
    close = difflib.get_close_matches(corruption, present or list(CORRUPTIONS), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    found = ", ".join(present) if present else "none"
    return DatasetError(
        os.path.join(folder, f"{corruption}.npy"),
        f"does not exist: {_FOLDER[kind]} here has no corruption {corruption!r} (found: {found}){hint}",
    )


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(path, f"is not a readable .npy file ({exc})") from None


def _open_cifar_c(
    kind: str, root: str, corruption: str, severity: int, transform: TransformSpec, num_classes: int | None
) -> ArrayImageDataset:
    folder = _cifar_c_folder(kind, root)
    path = os.path.join(folder, f"{corruption}.npy")
    labels_path = os.path.join(folder, "labels.npy")
    if not os.path.isfile(path):
        raise _missing_corruption(folder, corruption, kind)
    images = _load_npy(path)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise DatasetError(
            path, f"must hold (N, H, W, 3) uint8 images as {_FOLDER[kind]} ships them, got {images.dtype} {images.shape}"
        )
    total = images.shape[0]
    if total == 0 or total % len(SEVERITIES):
        raise DatasetError(
            path, f"holds {total} images, not a positive multiple of 5 (5 severities of n images each)"
        )
    labels_all = _load_npy(labels_path)
    if labels_all.ndim != 1 or labels_all.shape[0] != total:
        shape = labels_all.shape[0] if labels_all.ndim == 1 else f"an array of shape {labels_all.shape}"
        raise DatasetError(labels_path, f"holds {shape} labels but {os.path.basename(path)} holds {total} images (one label per image expected)")
    n = total // len(SEVERITIES)
    rows = slice((severity - 1) * n, severity * n)
    classes = _CLASSES[kind]
    labels = check_labels(np.asarray(labels_all[rows]), labels_path, len(classes))
    if num_classes is not None:
        labels = check_labels(labels, labels_path, num_classes)
    pixels = np.asarray(images[rows]).transpose(0, 3, 1, 2)  # reads only this severity's rows
    source = f"{kind}:{folder}:{corruption}:{severity}"
    stamp = [f"{os.path.basename(p)}\t{os.stat(p).st_size}\t{os.stat(p).st_mtime_ns}" for p in (path, labels_path)]
    dataset = ArrayImageDataset(
        pixels,
        labels,
        classes,
        transform,
        source=source,
        description=(
            f"{_FOLDER[kind]} {corruption}, severity {severity} (rows {rows.start}..{rows.stop - 1} of {path}): "
            f"{n} images {images.shape[1]}x{images.shape[2]}, {len(classes)} classes"
        ),
        identity=f"{kind}:{folder};corruption={corruption};severity={severity};digest={short_digest(chr(10).join(stamp))}",
    )
    dataset.suggested_preprocess = _PREPROCESS[kind]
    # the files hold CIFAR's test set in its own (class-mixed) order, and the reference
    # scripts stream it so: RobustBench's load_cifar10c / load_cifar100c (shuffle=False) and
    # tent's cifar10c.py; a run keeps that order unless told to shuffle
    dataset.file_order_reference = (  # type: ignore[attr-defined]
        "RobustBench's load_cifar10c and tent's CIFAR-10-C scripts" if kind == "cifar10c"
        else "RobustBench's load_cifar100c")
    return dataset


# ---------------------------------------------------------------------------- ImageNet-C
def _subfolders(folder: str) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _open_imagenet_c(
    root: str, corruption: str, severity: int, transform: TransformSpec, num_classes: int | None
) -> ImageFolderDataset:
    base = root
    if not os.path.isdir(os.path.join(root, corruption)) and os.path.isdir(os.path.join(root, _FOLDER["imagenetc"])):
        base = os.path.join(root, _FOLDER["imagenetc"])
    corruption_dir = os.path.join(base, corruption)
    if not os.path.isdir(corruption_dir):
        present = _subfolders(base)
        close = difflib.get_close_matches(corruption, present or list(CORRUPTIONS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise DatasetError(
            corruption_dir,
            f"does not exist: ImageNet-C here has no corruption {corruption!r} "
            f"(found: {', '.join(present) or 'none'}){hint}",
        )
    folder = os.path.join(corruption_dir, str(severity))
    if not os.path.isdir(folder):
        present = ", ".join(_subfolders(corruption_dir)) or "none"
        raise DatasetError(folder, f"does not exist (severity folders found: {present}); expected ROOT/<corruption>/<severity>/<wnid>/*.JPEG")
    dataset = ImageFolderDataset(folder, transform, num_classes=num_classes, class_folders=IMAGENET_WNIDS)
    dataset.class_names = _imagenet_names()
    present = len(np.unique(dataset.labels))
    dataset.source = f"imagenetc:{base}:{corruption}:{severity}"
    dataset.description = (
        f"ImageNet-C {corruption}, severity {severity} ({folder}): {len(dataset)} images, "
        f"{present} of the 1000 ImageNet classes present"
    )
    dataset.suggested_preprocess = _PREPROCESS["imagenetc"]
    return dataset


def _imagenet_names() -> list[str]:
    """torchvision's human-readable ImageNet class names (in class order), else the wnids."""
    try:
        from torchvision.models._meta import _IMAGENET_CATEGORIES
    except ImportError:  # pragma: no cover - a private torchvision module that may move
        return list(IMAGENET_WNIDS)
    names = list(_IMAGENET_CATEGORIES)
    return names if len(names) == len(IMAGENET_WNIDS) else list(IMAGENET_WNIDS)


def imagenet_c_convention(dataset: object) -> str | None:
    """For ImageNet-C data: which of the two conventions its preprocessing follows (one
    line for ``protoview info``), None for other data. The stored images are 224 x 224
    already: RobustBench and tent resize them to 256 and centre-crop 224 (RobustBench's
    ``Res256Crop224``); Hendrycks' evaluation and the toolkit (mariodoebler/test-time-
    adaptation) take them as they are. On one model the two differ by up to 45 points."""
    source = str(getattr(dataset, "source", ""))
    transform = getattr(dataset, "transform", None)
    if not source.startswith("imagenetc:") or transform is None or transform.is_none:
        return None
    if transform.resize == "short-side" and transform.size == (256, 256) and transform.crop == (224, 224):
        how = "resized to 256 and centre-cropped to 224, as RobustBench's and tent's loaders"
        other = "--preprocess domainbed takes the stored 224 px as they are (Hendrycks', the toolkit's)"
    elif transform.input_size == (224, 224) and transform.resize == "exact" and transform.crop is None:
        how = "the stored 224 px images as they are, as Hendrycks' evaluation and the toolkit"
        other = "--preprocess imagenet resizes to 256 and crops 224 (RobustBench's, tent's)"
    else:
        how = f"{transform.describe()}, neither RobustBench's 256 + crop 224 nor the stored 224 px"
        other = "--preprocess imagenet or domainbed gives one of them"
    return f"ImageNet-C preprocessing: {how}; {other} (they differ by up to 45 points)"
