"""A guard against a reference-count bug of PySide6 6.12.0 on CPython 3.11 (private).

Measured here (PySide6 6.12.0, shiboken6 6.12.0, CPython 3.11.7): every call of a Qt
method that returns ``void`` (``setVisible``, ``setPos``, ``setData``...) takes one
reference from ``None`` without having given it (1,000 calls of
``QObject.setObjectName``: ``sys.getrefcount(None)`` falls by exactly 1,000; with
PySide6 6.11.3 it does not move). ``None`` starts with about 5,000 references, the map
makes hundreds of such calls per step, so the window aborted after a while with "Fatal
Python error: none_dealloc: deallocating None" (the test suite did, mid-run). CPython
3.12+ makes ``None``, ``True`` and ``False`` immortal, which is why the binding's
authors did not see it.

:func:`guard` probes for the leak once and, only where it is found (CPython < 3.12),
gives ``None``, ``True`` and ``False`` a billion extra references, which makes them
immortal as in CPython 3.12. The real fix is a PySide6 without the bug
(``pyproject.toml`` asks for ``PySide6<6.12`` on Python < 3.12).
"""

from __future__ import annotations

import ctypes
import sys

EXTRA_REFERENCES = 1_000_000_000
_PROBE_CALLS = 64
_state = {"checked": False, "leaks": False}


def binding_leaks_none() -> bool:
    """True when a void Qt call takes a reference from ``None`` (measured once)."""
    if not _state["checked"]:
        from PySide6 import QtCore

        obj = QtCore.QObject()
        before = sys.getrefcount(None)
        for _ in range(_PROBE_CALLS):
            obj.setObjectName("probe")
        _state["leaks"] = sys.getrefcount(None) <= before - _PROBE_CALLS // 2
        _state["checked"] = True
    return _state["leaks"]


def guard() -> bool:
    """Make ``None``, ``True`` and ``False`` immortal when the binding leaks their
    references (CPython < 3.12 only; 3.12+ has immortal objects). Returns True when it
    did (once per process)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if _state.get("guarded") or not binding_leaks_none():
        return False
    for obj in (None, True, False):
        # PyObject's first field is ob_refcnt (Py_ssize_t) in CPython < 3.12
        ctypes.c_ssize_t.from_address(id(obj)).value += EXTRA_REFERENCES
    _state["guarded"] = True
    return True
