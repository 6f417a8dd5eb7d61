"""The window (PySide6 + pyqtgraph): thin widgets over :mod:`protoview.core`."""

from protoview.gui._binding_fix import guard as _guard_binding

_guard_binding()  # PySide6 6.12.0 on CPython 3.11 leaks references to None (see there)
