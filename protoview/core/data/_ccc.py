"""CCC, Continuously Changing Corruptions (Press et al., NeurIPS 2023), as it lies on disk.

Nothing is downloaded. The layout is the one the authors' generator writes
(github.com/oripress/CCC ``generate.py``, commit 656dec3) and both the authors' ``eval.py``
and mariodoebler/test-time-adaptation (commit 8b2ed63, ``datasets/data_loading.py``,
``dataset_name == "ccc"``) read with webdataset::

    ccc:ROOT:DOMAIN    ROOT/DOMAIN/serial_00000.tar, serial_00001.tar, ...
    ccc:ROOT/DOMAIN    the same (the domain folder itself)

``DOMAIN`` is ``baseline_<0|20|40>_transition+speed_<1000|2000|5000>_seed_<43|44|45>``
(CCC-Hard, -Medium, -Easy at three transition speeds and three seeds). Each shard is a plain
tar written by webdataset's ``TarWriter``: per sample the members ``<key>.info``,
``<key>.input.jpg`` and ``<key>.output.cls`` (``key`` = ``sample_<i>``), the ``.cls`` the
ImageNet class index as text (the generator's ``sorted(os.listdir(imagenet_val))``, i.e. the
sorted WordNet ids). Members are grouped into samples as webdataset does: the key is the
name up to the first dot of its last path part, consecutive members of one key are one
sample, suffixes lower-cased; other members (``.info``) are ignored, as ``to_tuple`` does.
The generator writes 25,000 images per shard (``IMGS_PER``) and stops at 7.5 million
(``cutoff``): 300 shards per domain. The images are 224 x 224 already (``RandomResizedCrop
(224)``); both the authors and the toolkit feed them with ``ToTensor()`` only (+ ImageNet's
mean/std), so the suggested preprocessing is ``domainbed`` (``Resize((224, 224))``, a no-op
on them, and ImageNet's mean/std), not ``imagenet`` (which would resize to 256 and crop).

**The order is the benchmark.** CCC is one continual stream: samples come in shard order
(numeric, ``serial_00000`` first: webdataset's brace expansion ``{00000..99999}``) and member
order inside a shard; the dataset keeps that order and declares it (``stream_order =
"file"``), so an adaptation run keeps it too (no shuffling, said in the run's notes). The
evaluations stop after 7.5 million samples (toolkit ``utils/eval_utils.py``: after the batch
that reaches 7,500,000; authors' ``eval.py``: after the batch that passes it);
``--stream samples=7500000`` keeps exactly the first 7,500,000.

**Index.** Opening reads every tar header (Python's ``tarfile``; the images are not read)
and each ``.cls``. The index (per shard: each sample's image offset and size, and its label)
is kept in ``$PROTOVIEW_CACHE_DIR/ccc-index/<digest of the folder>.npz`` (else
``~/.cache/protoview/ccc-index``), written atomically; a shard whose size and modification
time are unchanged is not read again. Images are read one by one (``seek`` + ``read`` in the
shard) and decoded with PIL. There is no decoded-image cache for CCC (``read_pixels`` is not
offered): a stream of millions of images read once gains nothing from it.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from protoview.core.data._base import ProtoviewDataset, check_labels, short_digest
from protoview.core.data._folder import _HIGH_BIT_MODES, _to_pixels
from protoview.core.data._imagenet_wnids import IMAGENET_WNIDS
from protoview.core.data._pixels import normalise, resize_image
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError

KEYWORDS = ("ccc",)
#: The released domains' parameters (the authors' README).
BASELINES, SPEEDS, SEEDS = (0, 20, 40), (1000, 2000, 5000), (43, 44, 45)
#: The number of samples both evaluations stop at.
EVALUATED_SAMPLES = 7_500_000
_DOMAIN = re.compile(r"^baseline_(\d+)_transition\+speed_(\d+)_seed_(\d+)$")
_SHARD = re.compile(r"^serial_(\d+)\.tar$")
#: webdataset's ``base_plus_ext``: key = up to the first dot of the last path part.
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_INDEX_VERSION = 1
_USAGE = ("expected ccc:ROOT:DOMAIN or ccc:ROOT/DOMAIN with DOMAIN like "
          "baseline_20_transition+speed_1000_seed_44 (baseline 0|20|40, speed 1000|2000|5000, "
          "seed 43|44|45)")


def parse_ccc_spec(spec: str) -> tuple[str, str] | None:
    """``"ccc:/data/CCC:baseline_20_transition+speed_1000_seed_44"`` -> (root, domain); None
    when ``spec`` is no CCC spec. Raises DatasetError naming the spec when it is one but
    names no domain."""
    head, sep, rest = spec.partition(":")
    if not sep or head.strip().lower() not in KEYWORDS:
        return None
    rest = rest.strip()
    root, sep2, domain = rest.rpartition(":")
    if sep2 and _DOMAIN.match(domain.strip()) and root.strip():
        return root.strip(), domain.strip()
    folder = rest.rstrip("/\\")
    name = os.path.basename(folder)
    if _DOMAIN.match(name):
        return os.path.dirname(folder) or ".", name
    if sep2 and root.strip() and domain.strip():
        raise DatasetError(spec, f"{domain.strip()!r} is not a CCC domain; {_USAGE}")
    raise DatasetError(spec, _USAGE)


def index_folder() -> Path:
    """Where shard indexes are kept: ``$PROTOVIEW_CACHE_DIR/ccc-index`` (else
    ``~/.cache/protoview/ccc-index``)."""
    base = os.environ.get("PROTOVIEW_CACHE_DIR") or Path.home() / ".cache" / "protoview"
    return Path(base).expanduser().absolute() / "ccc-index"


@dataclass
class ShardIndex:
    """One shard's samples in member order: image offsets / sizes in the tar, labels."""

    name: str
    size: int
    mtime_ns: int
    offsets: np.ndarray  # (n,) int64
    sizes: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) int64


def index_shard(path: str) -> ShardIndex:
    """Read ``path``'s tar headers and ``.cls`` members (not the images).

    Raises DatasetError naming the shard: not a tar, a sample without ``input.jpg`` or
    ``output.cls``, a ``.cls`` that is not a whole number 0..999, a member given twice.
    """
    info = os.stat(path)
    offsets: list[int] = []
    sizes: list[int] = []
    labels: list[int] = []
    try:
        with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
            key, parts = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                match = _KEY.match(member.name)
                if match is None:  # webdataset skips names without a suffix
                    continue
                name, suffix = match.group(1), match.group(2).lower()
                if name != key:
                    if key is not None:
                        _add(path, key, parts, handle, offsets, sizes, labels)
                    key, parts = name, {}
                if suffix in parts:
                    raise DatasetError(path, f"sample {key!r} has two members {key}.{suffix}")
                parts[suffix] = (member.offset_data, member.size)
            if key is not None:
                _add(path, key, parts, handle, offsets, sizes, labels)
    except tarfile.TarError as exc:
        raise DatasetError(path, f"is not a readable tar shard ({exc})") from None
    except OSError as exc:
        raise DatasetError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not offsets:
        raise DatasetError(path, "holds no samples (<key>.input.jpg + <key>.output.cls)")
    return ShardIndex(os.path.basename(path), info.st_size, info.st_mtime_ns,
                      np.asarray(offsets, np.int64), np.asarray(sizes, np.int64),
                      np.asarray(labels, np.int64))


def _add(path: str, key: str, parts: dict[str, tuple[int, int]], handle: io.BufferedReader,
         offsets: list[int], sizes: list[int], labels: list[int]) -> None:
    for wanted in ("input.jpg", "output.cls"):
        if wanted not in parts:
            found = ", ".join(f"{key}.{s}" for s in parts)
            raise DatasetError(path, f"sample {key!r} has no {key}.{wanted} (found: {found})")
    offset, size = parts["output.cls"]
    here = handle.tell()
    handle.seek(offset)
    raw = handle.read(size)
    handle.seek(here)
    text = raw.decode("ascii", "replace").strip()
    if not text.isdigit() or not 0 <= int(text) < len(IMAGENET_WNIDS):
        raise DatasetError(path, f"{key}.output.cls holds {text[:20]!r}, not an ImageNet class "
                                 f"index 0..{len(IMAGENET_WNIDS) - 1}")
    offsets.append(parts["input.jpg"][0])
    sizes.append(parts["input.jpg"][1])
    labels.append(int(text))


def list_shards(folder: str) -> list[str]:
    """The shard names of a domain folder in stream order; DatasetError naming the folder
    when it holds none or a shard is missing between the first and the last."""
    try:
        with os.scandir(folder) as entries:
            found = {int(m.group(1)): e.name for e in entries
                     if (m := _SHARD.match(e.name)) is not None}
    except OSError as exc:
        raise DatasetError(folder, f"cannot list this folder ({exc.strerror or exc})") from None
    if not found:
        raise DatasetError(folder, "holds no shards serial_00000.tar, serial_00001.tar, ...")
    numbers = sorted(found)
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        first = f"serial_{missing[0]:05d}.tar"
        raise DatasetError(os.path.join(folder, first),
                           f"is missing ({len(missing)} shard(s) absent before "
                           f"{found[numbers[-1]]}); CCC is one stream read in shard order")
    return [found[k] for k in numbers]


def _load_index(path: Path, folder: str) -> dict[str, ShardIndex]:
    """The cached shard indexes of ``folder`` ({} when absent or unusable: a cache file is
    never trusted)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["version"]) != _INDEX_VERSION or str(data["folder"]) != folder:
                return {}
            names, stats, bounds = data["names"], data["stats"], data["bounds"]
            offsets, sizes, labels = data["offsets"], data["sizes"], data["labels"]
            return {str(name): ShardIndex(str(name), int(stats[k, 0]), int(stats[k, 1]),
                                          offsets[bounds[k]:bounds[k + 1]],
                                          sizes[bounds[k]:bounds[k + 1]],
                                          labels[bounds[k]:bounds[k + 1]].astype(np.int64))
                    for k, name in enumerate(names)}
    except Exception:  # noqa: BLE001 - missing, truncated, another version: index again
        return {}


def _save_index(path: Path, folder: str, shards: list[ShardIndex]) -> str:
    """Write the index atomically; returns a note when it could not be written."""
    from protoview.core.atomic import atomic_path

    bounds = np.cumsum([0, *(len(s.offsets) for s in shards)]).astype(np.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, version=np.int64(_INDEX_VERSION), folder=np.str_(folder),
                     names=np.array([s.name for s in shards]),
                     stats=np.array([[s.size, s.mtime_ns] for s in shards], np.int64),
                     bounds=bounds,
                     offsets=np.concatenate([s.offsets for s in shards]),
                     sizes=np.concatenate([s.sizes for s in shards]),
                     labels=np.concatenate([s.labels for s in shards]).astype(np.int16))
    except Exception as exc:  # noqa: BLE001 - an index that cannot be kept is rebuilt next time
        return f"the shard index could not be cached at {path} ({exc})"
    return ""


def index_domain(folder: str, cache: bool = True) -> tuple[list[ShardIndex], list[str]]:
    """Every shard's index in stream order (from the cache where the shard is unchanged) and
    notes; DatasetError naming the folder or shard at fault."""
    names = list_shards(folder)
    where = index_folder() / f"{short_digest(folder)}.npz"
    cached = _load_index(where, folder) if cache else {}
    shards, fresh = [], 0
    for name in names:
        path = os.path.join(folder, name)
        try:
            info = os.stat(path)
        except OSError as exc:
            raise DatasetError(path, f"cannot be read ({exc.strerror or exc})") from None
        old = cached.get(name)
        if old is not None and (old.size, old.mtime_ns) == (info.st_size, info.st_mtime_ns):
            shards.append(old)
            continue
        shards.append(index_shard(path))
        fresh += 1
    notes = []
    if cache and (fresh or len(cached) != len(shards)):
        note = _save_index(where, folder, shards)
        if note:
            notes.append(note)
    return shards, notes


class CCCDataset(ProtoviewDataset):
    """One CCC domain: its samples in stream order (see the module docstring).

    Attributes
    ----------
    folder: the domain folder; shards: the shard names in order; shard_starts: (S + 1,) the
    first sample of each shard (and N); benchmark: ``{"dataset": "CCC", "domain": ...}``;
    stream_order: ``"file"``, the dataset order is the benchmark: an adaptation run keeps it
    (no shuffling, said in the run's notes).
    """

    suggested_preprocess = "domainbed"
    stream_order = "file"

    def __init__(self, root: str, domain: str, transform: TransformSpec, *,
                 num_classes: int | None = None, cache: bool = True) -> None:
        self.folder = str(Path(root, domain).expanduser().absolute())
        self.domain = domain
        self.source = f"ccc:{os.path.dirname(self.folder)}:{domain}"
        if not os.path.isdir(self.folder):
            parent = os.path.dirname(self.folder)
            present = sorted(n for n in os.listdir(parent) if _DOMAIN.match(n)) \
                if os.path.isdir(parent) else []
            raise DatasetError(self.folder, f"CCC domain folder does not exist (domains here: "
                                            f"{', '.join(present) or 'none'})")
        self.set_transform(transform)
        index, notes = index_domain(self.folder, cache=cache)
        self.shards = [s.name for s in index]
        self.shard_starts = np.cumsum([0, *(len(s.offsets) for s in index)]).astype(np.int64)
        self._offsets = np.concatenate([s.offsets for s in index])
        self._sizes = np.concatenate([s.sizes for s in index])
        self.labels = check_labels(np.concatenate([s.labels for s in index]), self.folder,
                                   num_classes)
        self.class_names = list(IMAGENET_WNIDS)
        self.notes = tuple(notes)
        self.benchmark = {"dataset": "CCC", "domain": domain}
        stamp = "\n".join(f"{s.name}\t{s.size}\t{s.mtime_ns}" for s in index)
        self._identity = (f"ccc:{self.folder};samples={len(self.labels)};"
                          f"digest={short_digest(stamp)}")
        self.description = (f"CCC {domain} ({self.folder}): {len(self.labels)} images in "
                            f"{len(self.shards)} shards, in stream order (a run keeps it)")

    def identity(self) -> str:
        return self._identity

    def _locate(self, index: int) -> tuple[str, int, int]:
        index = self._check_index(int(index))
        shard = int(np.searchsorted(self.shard_starts, index, side="right")) - 1
        return (os.path.join(self.folder, self.shards[shard]), int(self._offsets[index]),
                int(self._sizes[index]))

    def image_bytes(self, index: int) -> bytes:
        """The stored JPEG of sample ``index``."""
        path, offset, size = self._locate(index)
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        if len(data) != size:
            raise OSError(f"{path} ends before the image of sample {index} (truncated shard)")
        return data

    def read_item(self, index: int) -> tuple[torch.Tensor, int, str]:
        """Like ``self[index]`` but never raises for a bad image: (x, y, problem), x the
        mean colour (zeros) when unreadable, problem ``""`` or ``"<shard>: <reason>"``."""
        index = self._check_index(int(index))
        label = int(self.labels[index])
        try:
            with Image.open(io.BytesIO(self.image_bytes(index))) as img:
                img.load()
                pixels = _to_pixels(img, self.transform.channels or 3,
                                    lambda im: resize_image(im, self.transform),
                                    self.transform.scale)
        except Exception as exc:  # never let a bad image kill a DataLoader worker
            shape = (self.transform.channels or 3, *(self.transform.input_size or (1, 1)))
            where = self._locate(index)[0]
            problem = f"{where}: sample {index}: {type(exc).__name__}: {exc}"
            return torch.zeros(shape), label, problem
        return normalise(torch.from_numpy(pixels)[None], self.transform)[0], label, ""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y, _ = self.read_item(index)
        return x, y

    def thumbnail(self, index: int, max_side: int = 96) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(self.image_bytes(index))) as img:
                img.load()
                width, height = img.size
                scale = min(1.0, max_side / max(width, height))
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                pixels = _to_pixels(
                    img, 1 if img.mode in ("L", "1", "LA", "F", *_HIGH_BIT_MODES) else 3,
                    lambda im: im.resize(size, Image.BILINEAR) if im.size != size else im,
                )
        except Exception:  # a thumbnail is cosmetic: grey instead of failing a hover
            return np.full((max_side, max_side), 128, dtype=np.uint8)
        pixels = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
        return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def open_ccc(spec: str, transform: TransformSpec, *, num_classes: int | None = None
             ) -> CCCDataset:
    """Open a ``ccc:`` spec (see the module docstring).

    Raises
    ------
    DatasetError
        Naming the spec (no domain), the domain folder (missing, no shards), or the shard
        (missing in the sequence, not a tar, a sample without its image or class, a class
        that is not 0..999).
    """
    parsed = parse_ccc_spec(spec)
    if parsed is None:
        raise DatasetError(spec, f"not a CCC spec; {_USAGE}")
    root, domain = parsed
    return CCCDataset(root, domain, transform, num_classes=num_classes)
