"""Qt plumbing of the window (private to :mod:`protoview.gui`): the QApplication, the one
compute worker, themes, the xcb platform check, the PySide6 binding fix, the input guards,
images as pixmaps and a paint device for vector files.

The binding guard runs first, before any other Qt call of the process (see
:mod:`~protoview.gui._qt._binding_fix`).
"""

from protoview.gui._qt._binding_fix import guard as _guard_binding

_guard_binding()  # PySide6 6.12.0 on CPython 3.11 leaks references to None (see there)

from protoview.gui._qt._app import application  # noqa: E402
from protoview.gui._qt._flat_paint import FlatPaintDevice  # noqa: E402
from protoview.gui._qt._input_guards import SingleKeyShortcuts, guard_wheel  # noqa: E402
from protoview.gui._qt._pixmaps import pixmap_from_array  # noqa: E402
from protoview.gui._qt._platform import xcb_problem  # noqa: E402
from protoview.gui._qt._theme import THEMES, apply_theme, icon, style_sheet  # noqa: E402
from protoview.gui._qt._worker import ComputeWorker, live_workers  # noqa: E402

__all__ = [
    "THEMES",
    "ComputeWorker",
    "FlatPaintDevice",
    "SingleKeyShortcuts",
    "application",
    "apply_theme",
    "guard_wheel",
    "icon",
    "live_workers",
    "pixmap_from_array",
    "style_sheet",
    "xcb_problem",
]
