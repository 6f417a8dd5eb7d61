"""ImageFolder datasets: ``root/<class>/**/<image>``, any image PIL can open.

Classes are the sub-folders of ``root`` sorted by name, as in torchvision's ``ImageFolder``
(hidden folders such as ``.ipynb_checkpoints`` are ignored). A folder holding images but
no sub-folders opens as one unlabelled set (labels ``-1``). A benchmark layout may fix the
class list instead (``class_folders``: ImageNet's 1000 WordNet ids, DomainBed's classes):
then a class folder keeps its index in that list even when other classes are absent. Every image is checked when the
folder is opened with PIL's cheap ``verify()``; the ones that fail are left out and listed
in ``dataset.skipped``. An image that still fails to decode later (e.g. a truncated JPEG,
which ``verify`` cannot see) never crashes a DataLoader worker: :meth:`read_item` returns a
blank (mean-coloured) image with the reason, and the extractor reports it.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from protoview.core.data._base import ProtoviewDataset, check_labels, short_digest
from protoview.core.data._pixels import normalise, resize_image
from protoview.core.model import TransformSpec
from protoview.core.warnings import ProtoviewWarning
from protoview.errors import DatasetError

_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (``".png"``, ...) of every format PIL can open."""
    Image.init()
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN
    )


def decode_image(path: str, transform: TransformSpec) -> np.ndarray:
    """Read one image file as float32 ``(channels, H, W)`` pixels in [0, 1].

    Palette, RGBA, CMYK, ... are converted to RGB (alpha dropped, as torchvision's loader
    does), then to grey when ``channels == 1``; 16-bit grey is scaled by 1/65535, float
    images by ``1 / transform.scale`` (values outside [0, 1] then are an error, never a
    guess). Resized and center-cropped as torchvision's ``Resize`` / ``CenterCrop`` do
    (:func:`~protoview.core.data._base.resize_image`).
    """
    with Image.open(path) as img:
        img.load()
        return _to_pixels(img, transform.channels or 3, lambda im: resize_image(im, transform), transform.scale)


def _to_pixels(img: Image.Image, channels: int, resize, scale: float | None = None) -> np.ndarray:  # noqa: ANN001
    if img.mode in _HIGH_BIT_MODES or img.mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        grey = grey / (65535.0 if img.mode in _HIGH_BIT_MODES else (scale or 1.0))
        if img.mode == "F" and grey.size and (grey.min() < -1e-3 or grey.max() > 1.001):
            raise ValueError(
                f"float image values in [{grey.min():.4g}, {grey.max():.4g}], outside [0, 1]; "
                "add scale=S to --preprocess for pixels in [0, S]"
            )
        grey = resize(Image.fromarray(np.clip(grey, 0.0, 1.0).astype(np.float32)))
        plane = np.asarray(grey, dtype=np.float32)[None]
        return np.repeat(plane, channels, axis=0)
    if img.mode not in ("L", "RGB"):
        img = img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")
    wanted = "L" if channels == 1 else "RGB"
    if img.mode != wanted:
        img = img.convert(wanted)
    img = resize(img)
    pixels = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _check_image(path: str) -> str | None:
    """``None`` when PIL can open and verify ``path``, else the reason."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # opening a named pipe would block
            return "not a regular file (a named pipe, socket or device)"
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # PIL raises many kinds (OSError, SyntaxError, ValueError, ...)
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def _walk_files(folder: str, root: str | None = None) -> list[str]:
    """All non-hidden files under ``folder``, recursively (links followed), in torchvision's
    ``ImageFolder`` order: folders sorted by path, files by name within each.

    A folder reached again through a symlink (a loop such as ``cat/again -> .`` or
    ``cat/up -> ..`` back to the dataset's ``root``, or a second link to a folder already
    walked) is not walked again: each image is listed once.
    """
    folders: list[tuple[str, list[str]]] = []
    seen = {_folder_id(folder), _folder_id(root or folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            key = _folder_id(os.path.join(dirpath, name))
            if key is not None and key not in seen:
                seen.add(key)
                kept.append(name)
        dirnames[:] = kept
        folders.append((dirpath, filenames))
    return [
        os.path.join(dirpath, f)
        for dirpath, names in sorted(folders)
        for f in sorted(names)
        if not f.startswith(".")
    ]


def _folder_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of a folder, following links; None when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _name_files(root: str, skipped: list[tuple[str, str]], shown: int = 5) -> str:
    """``a/x.png, b/y.jpg, ... and N more`` (paths relative to ``root``)."""
    names = [os.path.relpath(path, root) for path, _ in skipped[:shown]]
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return ", ".join(names) + more


class ImageFolderDataset(ProtoviewDataset):
    """A folder of class sub-folders of images, read lazily from disk.

    Attributes
    ----------
    samples: list of (path, label) for the readable images, in dataset order.
    skipped: list of (path, reason) for the images left out at open time.
    ignored: number of files without an image extension.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: TransformSpec,
        *,
        num_classes: int | None = None,
        class_folders: Sequence[str] | None = None,
    ) -> None:
        """``class_folders``: the full class list of a benchmark, in class-index order; every
        sub-folder must be one of them (a DatasetError names the first that is not), and
        ``class_names`` is that list (also the absent classes)."""
        self.root = str(Path(root).expanduser().absolute())
        self._class_folders = list(class_folders) if class_folders is not None else None
        self.source = self.root
        self.set_transform(transform)
        try:
            classes, candidates, self.ignored = self._scan()
        except OSError as exc:
            raise DatasetError(
                self.root, f"cannot list this folder ({exc.strerror or exc})"
            ) from None
        self.skipped: list[tuple[str, str]] = []
        self.samples: list[tuple[str, int]] = []
        for path, label in candidates:
            reason = _check_image(path)
            if reason is None:
                self.samples.append((path, label))
            else:
                self.skipped.append((path, reason))
        self._check_not_empty(candidates)
        labels = np.array([label for _, label in self.samples], dtype=np.int64)
        self.labels = check_labels(labels, self.root, num_classes)
        self.class_names = classes
        self._identity = self._make_identity(candidates)
        self.description = self._describe()
        if self.skipped:
            first_path, first_reason = self.skipped[0]
            warnings.warn(
                ProtoviewWarning(
                    f"skipped {len(self.skipped)} unreadable image(s) in {self.root}: "
                    f"{_name_files(self.root, self.skipped)} (first: {first_path}: {first_reason})"
                ),
                stacklevel=3,
            )

    def _scan(self) -> tuple[list[str], list[tuple[str, int]], int]:
        extensions = image_extensions()
        with os.scandir(self.root) as entries:
            classes = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
        if self._class_folders is not None:
            index = {name: label for label, name in enumerate(self._class_folders)}
            unknown = [name for name in classes if name not in index]
            if unknown:
                raise DatasetError(
                    os.path.join(self.root, unknown[0]),
                    f"is not a class folder of this benchmark ({len(unknown)} such folder(s); "
                    f"expected names like {', '.join(self._class_folders[:3])})",
                )
            groups = [(os.path.join(self.root, name), index[name]) for name in classes]
            classes = list(self._class_folders)
        elif classes:
            groups = [(os.path.join(self.root, name), label) for label, name in enumerate(classes)]
        else:
            groups = [(self.root, -1)]
        candidates: list[tuple[str, int]] = []
        ignored = 0
        for folder, label in groups:
            for path in _walk_files(folder, self.root):
                if os.path.splitext(path)[1].lower() in extensions:
                    candidates.append((path, label))
                else:
                    ignored += 1
        return classes, candidates, ignored

    def _check_not_empty(self, candidates: list[tuple[str, int]]) -> None:
        if self.samples:
            return
        if self.skipped:
            path, reason = self.skipped[0]
            raise DatasetError(
                self.root,
                f"none of its {len(self.skipped)} image files could be read (first: {path}: {reason})",
            )
        if self.ignored:
            raise DatasetError(
                self.root,
                f"holds {self.ignored} file(s) but no images PIL can open (e.g. .png, .jpg)",
            )
        raise DatasetError(self.root, "holds no images; expected root/<class name>/<image files>")

    def _make_identity(self, candidates: list[tuple[str, int]]) -> str:
        lines = []
        for path, label in candidates:
            try:
                stat = os.stat(path)
                lines.append(
                    f"{os.path.relpath(path, self.root)}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}"
                )
            except OSError:
                lines.append(f"{os.path.relpath(path, self.root)}\t{label}\tmissing")
        return f"imagefolder:{self.root};files={len(candidates)};digest={short_digest(chr(10).join(lines))}"

    def _describe(self) -> str:
        kind = f"{len(self.class_names)} classes" if self.class_names else "unlabelled"
        text = f"image folder {self.root}: {len(self.samples)} images, {kind}"
        if self.skipped:
            text += f", {len(self.skipped)} unreadable skipped"
        return text

    def identity(self) -> str:
        return self._identity

    def read_item(self, index: int) -> tuple[torch.Tensor, int, str]:
        """Like ``self[index]`` but never raises for a bad file.

        Returns
        -------
        x: (C, H, W) float32 normalised (all zeros, i.e. the mean colour, if unreadable);
        y: int; problem: ``""`` or ``"<path>: <reason>"``.
        """
        pixels, label, problem = self.read_pixels(index)
        if pixels is None:
            shape = (self.transform.channels or 3, *(self.transform.input_size or (1, 1)))
            return torch.zeros(shape), label, problem
        return normalise(torch.from_numpy(pixels)[None], self.transform)[0], label, ""

    def read_pixels(self, index: int) -> tuple[np.ndarray | None, int, str]:
        """The decoded, resized image before normalisation; never raises for a bad file.

        Returns
        -------
        pixels: (C, H, W) float32 in [0, 1], or None if unreadable; y: int;
        problem: ``""`` or ``"<path>: <reason>"``.
        """
        index = self._check_index(int(index))
        path, label = self.samples[index]
        try:
            return decode_image(path, self.transform), label, ""
        except Exception as exc:  # never let a bad file kill a DataLoader worker
            return None, label, f"{path}: {type(exc).__name__}: {exc}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y, _ = self.read_item(index)
        return x, y

    def thumbnail(self, index: int, max_side: int = 96) -> np.ndarray:
        path = self.samples[self._check_index(int(index))][0]
        try:
            with Image.open(path) as img:
                img.load()
                width, height = img.size
                scale = min(1.0, max_side / max(width, height))
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                pixels = _to_pixels(
                    img, 1 if img.mode in ("L", "1", "LA", "F", *_HIGH_BIT_MODES) else 3,
                    lambda im: im.resize(size, Image.BILINEAR) if im.size != size else im,
                    self.transform.scale,
                )
        except Exception:  # a thumbnail is cosmetic: show grey instead of failing a hover
            return np.full((max_side, max_side), 128, dtype=np.uint8)
        pixels = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
        return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
