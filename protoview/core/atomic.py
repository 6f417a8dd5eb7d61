"""Atomic file replacement: a file is either the old version or the new one.

Write to a temporary file in the same folder, flush and fsync it, then ``os.replace`` it
over the target (atomic on POSIX and Windows). A crash or a cancel at any moment leaves
the previous file intact and at worst a stray ``.<name>.tmp-*`` file, which the next
write of the same target removes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from protoview.errors import SnapshotError

_TMP_PREFIX = "."
_TMP_MARK = ".tmp-"


def _stale_temps(target: Path) -> list[Path]:
    pattern = f"{_TMP_PREFIX}{target.name}{_TMP_MARK}*"
    return list(target.parent.glob(pattern))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched. Errors of
    the file system (read-only folder, disk full, missing folder) become a
    :class:`~protoview.errors.SnapshotError` naming ``path``.
    """
    target = Path(path).expanduser().absolute()
    folder = target.parent
    if not folder.is_dir():
        raise SnapshotError(target, f"the folder {folder} does not exist")
    for stale in _stale_temps(target):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{target.name}{_TMP_MARK}", dir=folder)
    except OSError as exc:
        raise SnapshotError(target, _os_problem(exc)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        _chmod_like_a_new_file(tmp)
        os.replace(tmp, target)
        _fsync_dir(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise SnapshotError(target, _os_problem(exc)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _current_umask() -> int:
    # Linux reports it without changing it (os.umask would, briefly, for every thread)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _chmod_like_a_new_file(path: Path) -> None:
    """mkstemp creates 0600 files; give the result the mode ``open()`` would (0666 & ~umask)."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~_current_umask())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / file system
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full; the previous file (if any) is left intact"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "cannot write here (read-only or no permission); the previous file (if any) is left intact"
    return f"cannot write: {exc.strerror or exc}"
