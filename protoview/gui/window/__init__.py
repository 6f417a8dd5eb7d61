"""The main window and what it owns: the menus, the map bar, before / after,
presentation mode, files (open, export, recent, drops), the open dialog, map export and
the replay of a snapshot.

:func:`run_app` is the window's one entry point (the command line opens it through it).
"""

from protoview.gui.window._launch import SCREENSHOT_ENV, initial_request, run_app
from protoview.gui.window._main_window import MainWindow

__all__ = ["SCREENSHOT_ENV", "MainWindow", "initial_request", "run_app"]
