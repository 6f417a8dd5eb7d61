"""``protoview extract`` under ``torchrun``: each rank extracts a shard, rank 0 merges them.

Launched as ``torchrun --nproc_per_node=N -m protoview extract CKPT DATA --out F.h5``, every
rank reads ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (see :func:`torchrun_env`), joins the
process group through ``env://`` (gloo on the CPU, nccl on CUDA with device
``cuda:LOCAL_RANK``) and extracts one contiguous block of the dataset.

Layout on disk, for ``--out F.h5``::

    F.h5                                  protoview feature file whose datasets are HDF5
                                          virtual datasets over the shards (relative paths)
    F.h5.shards/rank-00000-of-00002.h5    an ordinary protoview feature file per rank, with
    F.h5.shards/rank-00001-of-00002.h5    attributes shard_start / shard_stop / shard_key

The split is by whole batches: rank ``r`` of ``w`` gets batches ``[r*B//w, (r+1)*B//w)`` of
the ``B`` batches a single process would run, so every batch a rank runs is exactly a batch
of the single-process run (same composition, so the same bits), and the blocks, laid end to
end in rank order, are the dataset order. A rank whose block is empty writes no shard.

A shard that exists, is complete and carries the same ``shard_key`` (model, dataset,
transform and block) is reused on the next run. Every rank reports success or its error to
every other (no rank is left waiting at a barrier for one that failed), and all exit alike.
The feature cache (``~/.cache/protoview``) is not used in this mode: the shards are the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from protoview.errors import ProtoviewError, SnapshotError

__all__ = [
    "TorchrunEnv",
    "batch_aligned_blocks",
    "distributed_extract",
    "merge_shards",
    "shard_folder",
    "shard_path",
    "torchrun_env",
]

TIMEOUT_ENV = "PROTOVIEW_DIST_TIMEOUT"  # seconds a rank waits for the others (default 24 h)
_SHARD_NAME = re.compile(r"rank-(\d{5})-of-(\d{5})\.h5")
_ARRAY_NAMES = ("features", "labels", "logits", "predictions")


@dataclass(frozen=True)
class TorchrunEnv:
    """Where this process sits in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int


def torchrun_env(environ: dict[str, str] | None = None) -> TorchrunEnv | None:
    """The torchrun rank of this process, or None when not launched by torchrun with
    ``WORLD_SIZE > 1`` (a single process then runs as always)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ProtoviewError(
            "WORLD_SIZE", f"must be a whole number, got {env['WORLD_SIZE']!r}"
        ) from None
    if world <= 1:
        return None
    try:
        rank = int(env["RANK"])
        local_rank = int(env.get("LOCAL_RANK", env["RANK"]))
    except (KeyError, ValueError):
        raise ProtoviewError(
            "RANK",
            f"WORLD_SIZE={world} but RANK/LOCAL_RANK are missing or not numbers; launch with torchrun",
        ) from None
    if not 0 <= rank < world:
        raise ProtoviewError("RANK", f"{rank} is outside [0, {world})")
    return TorchrunEnv(rank, world, local_rank)


def batch_aligned_blocks(total: int, world_size: int, batch_size: int) -> list[tuple[int, int]]:
    """``world_size`` contiguous half-open blocks ``(start, stop)`` covering ``[0, total)`` in
    order, with every boundary on a multiple of ``batch_size`` (some may be empty)."""
    batches = -(-total // batch_size)
    blocks = []
    for rank in range(world_size):
        first, last = rank * batches // world_size, (rank + 1) * batches // world_size
        blocks.append((min(first * batch_size, total), min(last * batch_size, total)))
    return blocks


def shard_folder(out: str | os.PathLike[str]) -> Path:
    """``F.h5`` -> ``F.h5.shards`` (next to it)."""
    target = Path(out).expanduser().absolute()
    return target.with_name(target.name + ".shards")


def shard_path(out: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    return shard_folder(out) / f"rank-{rank:05d}-of-{world_size:05d}.h5"


class _Block:
    """A contiguous block ``[start, stop)`` of a dataset, seen as a dataset of its own."""

    def __init__(self, dataset: Any, start: int, stop: int) -> None:
        self.dataset, self.start, self.stop = dataset, start, stop
        self.labels = np.asarray(dataset.labels)[start:stop]
        self.source = getattr(dataset, "source", "dataset")
        if hasattr(dataset, "get_batch"):
            self.get_batch = self._get_batch
        if hasattr(dataset, "read_item"):
            self.read_item = self._read_item

    def __len__(self) -> int:
        return self.stop - self.start

    def _index(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a block of {len(self)} samples")
        return self.start + index

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self._index(int(index))]

    def _read_item(self, index: int) -> Any:
        return self.dataset.read_item(self._index(int(index)))

    def _get_batch(self, indices: slice, device: Any = None) -> Any:
        lo, hi, _ = indices.indices(len(self))
        return self.dataset.get_batch(slice(self.start + lo, self.start + hi), device=device)


def _shard_key(model: Any, dataset: Any, start: int, stop: int) -> str:
    from protoview.core.features import feature_cache_key

    try:
        base = feature_cache_key(model, dataset)
    except ProtoviewError:  # no identity(): never reused
        return ""
    return hashlib.sha256(f"{base};rows={len(dataset)};block={start}:{stop}".encode()).hexdigest()


def _reusable(path: Path, key: str, start: int, stop: int) -> bool:
    if not key or not path.is_file():
        return False
    import h5py

    from protoview.core.data._featurefile import FORMAT_NAME

    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            return (
                attrs.get("format") == FORMAT_NAME
                and bool(attrs.get("complete", False))
                and attrs.get("shard_key") == key
                and int(attrs.get("shard_start", -1)) == start
                and int(attrs.get("shard_stop", -1)) == stop
                and all(
                    handle[name].shape[0] == stop - start
                    for name in ("features", "labels", "logits")
                )
            )
    except Exception:  # noqa: BLE001 - any unreadable shard is rebuilt
        return False


def _extract_shard(
    env: TorchrunEnv,
    out: Path,
    load: Callable[[], tuple[Any, Any]],
    extract_kwargs: dict[str, Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """This rank's part: load, extract (or reuse) its block, write its shard."""
    from protoview.core.features import extract_features, feature_file_attrs, write_feature_file

    model, dataset = load()
    total = len(dataset)
    if total == 0:
        raise ProtoviewError(getattr(dataset, "source", "dataset"), "holds no samples")
    start, stop = batch_aligned_blocks(total, env.world_size, extract_kwargs["batch_size"])[
        env.rank
    ]
    attrs = feature_file_attrs(model, dataset)
    info = {
        "total": total,
        "start": start,
        "stop": stop,
        "attrs": attrs,
        "device": "",
        "seconds": 0.0,
    }
    path = shard_path(out, env.rank, env.world_size)
    tag = f"rank {env.rank}/{env.world_size}"
    if start == stop:
        say(f"{tag}: nothing to extract (the dataset has fewer batches than ranks)")
        return info
    key = _shard_key(model, dataset, start, stop)
    if _reusable(path, key, start, stop):
        say(f"{tag}: reused shard {path} (samples {start}..{stop - 1})")
        import h5py

        with h5py.File(path, "r") as handle:
            info["device"] = str(handle.attrs.get("device", ""))
            info["seconds"] = float(handle.attrs.get("seconds", 0.0))
        return info
    result = extract_features(model, _Block(dataset, start, stop), **extract_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_feature_file(
        path,
        result,
        attrs={
            **attrs,
            "shard_key": key,
            "shard_start": start,
            "shard_stop": stop,
            "shard_rank": env.rank,
            "shard_world_size": env.world_size,
            "dataset_size": total,
        },
    )
    info["device"], info["seconds"] = result.device, result.seconds
    say(
        f"{tag}: wrote shard {path}: samples {start}..{stop - 1} "
        f"({result.images_per_second:.0f} images/s on {result.device})"
    )
    return info


def merge_shards(
    out: str | os.PathLike[str],
    shards: list[tuple[Path, int, int]],
    total: int,
    attrs: dict[str, Any],
) -> None:
    """Write ``out`` as a protoview feature file whose arrays are virtual datasets over
    ``shards`` (``(path, start, stop)``, in order, covering ``[0, total)``), atomically.

    Source paths are stored relative to ``out``'s folder, so the two move together.
    """
    import h5py

    from protoview.core.atomic import atomic_path
    from protoview.core.data._featurefile import write_feature_attrs

    target = Path(out).expanduser().absolute()
    expected = 0
    layouts: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    sources: list[tuple[str, int, int, dict[str, tuple[int, ...]]]] = []
    for path, start, stop in shards:
        if start != expected:
            raise SnapshotError(path, f"starts at sample {start}, expected {expected}")
        try:
            with h5py.File(path, "r") as handle:
                if not handle.attrs.get("complete", False):
                    raise SnapshotError(path, "was not completely written; run the command again")
                shapes = {}
                for name in _ARRAY_NAMES:
                    if name not in handle:
                        continue
                    dset = handle[name]
                    if dset.shape[0] != stop - start:
                        raise SnapshotError(
                            path, f"'{name}' holds {dset.shape[0]} rows, expected {stop - start}"
                        )
                    shape = (total, *dset.shape[1:])
                    if layouts.setdefault(name, (shape, dset.dtype)) != (shape, dset.dtype):
                        raise SnapshotError(
                            path,
                            f"'{name}' has shape {dset.shape} {dset.dtype}, unlike the other shards",
                        )
                    shapes[name] = dset.shape
        except OSError as exc:
            raise SnapshotError(path, f"is not a readable HDF5 file ({exc})") from None
        if set(shapes) != set(layouts):
            raise SnapshotError(
                path, f"holds {sorted(shapes)}, unlike the other shards {sorted(layouts)}"
            )
        sources.append((os.path.relpath(path, target.parent), start, stop, shapes))
        expected = stop
    if expected != total:
        raise SnapshotError(target, f"the shards cover {expected} of {total} samples")
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as handle:
        for name, (shape, dtype) in layouts.items():
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            for rel, start, stop, shapes in sources:
                layout[start:stop] = h5py.VirtualSource(rel, name, shape=shapes[name])
            handle.create_virtual_dataset(name, layout)
        write_feature_attrs(handle, {**attrs, "shards": [rel for rel, *_ in sources]})


def _remove_stale_shards(out: Path, world_size: int) -> None:
    """Shards of earlier runs with another world size: nothing refers to them any more."""
    folder = shard_folder(out)
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            match = _SHARD_NAME.fullmatch(path.name)
            if match and int(match.group(2)) != world_size:
                with contextlib.suppress(OSError):
                    path.unlink()


def _gather_status(dist: Any, status: Any, world_size: int) -> list[Any]:
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, status)
    return gathered


def _first_error(gathered: list[Any]) -> ProtoviewError | None:
    for rank, item in enumerate(gathered):
        if isinstance(item, dict) and "error" in item:
            return ProtoviewError(item.get("where"), f"{item['error']} (rank {rank})")
    return None


def _as_status(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProtoviewError):
        return {"error": exc.problem, "where": exc.where}
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"error": f"{type(exc).__name__}: {first}", "where": None}


def distributed_extract(
    env: TorchrunEnv,
    out: str | os.PathLike[str],
    load: Callable[[], tuple[Any, Any]],
    *,
    batch_size: int = 256,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run this rank's share of ``protoview extract --out OUT`` and, on rank 0, merge.

    ``load()`` returns ``(model, dataset)``; it runs after the process group is up so that
    a rank that cannot load reports its error to the others. Returns (on every rank) a dict
    with ``total`` samples, ``features`` dims, ``devices`` and ``seconds``. Raises
    ProtoviewError (the first rank's error, on every rank) when any rank failed.
    """
    # Long on purpose: the set-up and tear-down of the process group must enclose the shard
    # extraction and the gather in one function (try/finally).
    import torch
    import torch.distributed as dist

    from protoview.core.device import pick_device

    target = Path(out).expanduser().absolute()
    if not target.parent.is_dir():
        raise SnapshotError(target, f"the folder {target.parent} does not exist")
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 24 * 3600)))
    try:
        dist.init_process_group(
            backend, init_method="env://", rank=env.rank, world_size=env.world_size, timeout=timeout
        )
    except Exception as exc:  # noqa: BLE001 - one line: the rendezvous failed
        raise ProtoviewError(
            f"rank {env.rank}", f"could not join the torchrun process group ({backend}): {exc}"
        ) from None
    try:
        kwargs = {
            "batch_size": batch_size,
            "device": str(dev),
            "progress": progress if env.rank == 0 else None,
        }
        try:
            status: Any = _extract_shard(env, target, load, kwargs, say)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - told to every rank
            status = _as_status(exc)
        gathered = _gather_status(dist, status, env.world_size)
        error = _first_error(gathered)
        if error is not None:
            raise error
        summary = {
            "total": gathered[0]["total"],
            "devices": sorted({g["device"] for g in gathered if g["device"]}),
            "seconds": max(g["seconds"] for g in gathered),
        }
        if env.rank == 0:
            try:
                shards = [
                    (shard_path(target, rank, env.world_size), g["start"], g["stop"])
                    for rank, g in enumerate(gathered)
                    if g["stop"] > g["start"]
                ]
                attrs = {
                    **gathered[0]["attrs"],
                    "device": ",".join(summary["devices"]),
                    "seconds": float(summary["seconds"]),
                    "distributed_world_size": env.world_size,
                }
                merge_shards(target, shards, summary["total"], attrs)
                _remove_stale_shards(target, env.world_size)
                status = {"ok": True}
            except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - told to every rank
                status = _as_status(exc)
        else:
            status = {"ok": True}
        error = _first_error(_gather_status(dist, status, env.world_size))
        if error is not None:
            raise error
        return summary
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
