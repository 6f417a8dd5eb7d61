"""PySide6 6.12.0 on CPython 3.11 takes a reference from None on every void Qt call; the
window guards it (protoview/gui/_qt/_binding_fix.py). Without the guard the test suite and
the window aborted with 'Fatal Python error: none_dealloc'."""

from __future__ import annotations

import sys

from PySide6 import QtCore

import protoview.gui  # noqa: F401 - importing the window package applies the guard
from protoview.gui._qt import _binding_fix


def test_the_probe_tells_the_truth_about_the_binding():
    obj = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("x")
    leaked = before - sys.getrefcount(None)
    assert _binding_fix.binding_leaks_none() == (leaked >= 900)


def test_many_void_qt_calls_never_bring_none_near_zero():
    obj = QtCore.QObject()
    for _ in range(50_000):  # ten times None's whole count without the guard
        obj.setObjectName("x")
    if _binding_fix.binding_leaks_none() and sys.version_info < (3, 12):
        assert sys.getrefcount(None) > _binding_fix.EXTRA_REFERENCES // 2
    else:
        assert sys.getrefcount(None) > 1000
