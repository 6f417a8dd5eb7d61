"""The window (PySide6 + pyqtgraph): thin widgets over :mod:`protoview.core`.

By widget, lowest first (a package imports only those above it in this list):

- :mod:`protoview.gui._qt`: Qt plumbing: the QApplication, the one compute worker,
  themes, the platform check, the binding fix, keyboard and wheel guards.
- :mod:`protoview.gui.map`: the map (:class:`~protoview.gui.map.EmbeddingView`), its
  layers, marks, density image and palettes.
- :mod:`protoview.gui.panels`: the control panels (adaptation, k-means, Sinkhorn, data)
  and the numbers (charts, runs, neighbours).
- :mod:`protoview.gui.window`: the main window and what it owns (menus, the map bar,
  before / after, presentation, files, export, replay); its one entry point is
  :func:`protoview.gui.window.run_app`.
"""

from protoview.gui import _qt  # noqa: F401 - applies the binding guard before any Qt call
