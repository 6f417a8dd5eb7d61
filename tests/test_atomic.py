"""atomic_path: the target is either the old file or the new one."""

import errno
import os

import pytest

from protoview.core.atomic import atomic_path
from protoview.errors import SnapshotError


def test_replaces_on_success_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_exception_keeps_old_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")])
def test_os_errors_become_clear_messages(tmp_path, monkeypatch, code, words):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def fail(*_a, **_k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(SnapshotError, match=words) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old"


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(SnapshotError, match="does not exist"):
        with atomic_path(tmp_path / "nope" / "a.h5"):
            pass


def test_stale_temp_files_are_cleaned(tmp_path):
    target = tmp_path / "a.bin"
    stale = tmp_path / ".a.bin.tmp-xyz"
    stale.write_bytes(b"half")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert not stale.exists()


def test_result_has_the_mode_of_a_new_file(tmp_path):
    import os

    from protoview.core.atomic import atomic_path

    old = os.umask(0o022)
    try:
        target = tmp_path / "out.bin"
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x")
        assert (target.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
