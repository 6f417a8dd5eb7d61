"""Menus, actions and keyboard shortcuts of the main window (private to
:mod:`protoview.gui.window`)."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from protoview.gui.map import COLOR_MODES, LAYERS

SHORTCUTS = (
    ("Space", "Step (one batch)"),
    ("R", "Run N steps"),
    ("Ctrl+R", "Reset to the source model"),
    ("L", "Next colour mode"),
    ("N", "Names on the class centers and prototypes on / off"),
    ("B", "Before / after: the source model's map beside the adapted one"),
    ("1 / 2 / 3 / 4", "Show / hide samples, centers, proxies, prototypes"),
    ("F or double-click", "Fit the map to the window (and follow it again after panning)"),
    ("Ctrl+G", "Go to sample # (marks it and lists its nearest neighbours)"),
    ("F11", "Presentation mode on / off"),
    ("Ctrl+O", "Open snapshot"),
    ("Ctrl+Shift+O", "Open a checkpoint and data, with --arch / --preprocess ..."),
    ("Ctrl+S", "Export snapshot"),
    ("Ctrl+E", "Export map PNG / SVG / PDF"),
    ("Ctrl+Q", "Quit"),
    ("right-drag", "Select a box of samples (Box / Lasso: left-drag selects)"),
    ("click a sample", "Mark it and list its nearest neighbours in feature space"),
    ("click a star / diamond / triangle", "Highlight its members"),
    ("click empty space", "Clear the highlight, the selection and the marked sample"),
)


class WindowMenus(QtCore.QObject):
    """The File / View / Numbers / Run / Help menus of ``win`` (a MainWindow) and their actions.

    ``actions``: name -> QAction (``open_snapshot``, ``colour_label``, ``layer_samples``,
    ``presentation``, ``step``...), each also added to the window itself so that its
    shortcut works in full screen without the menu bar; ``recent_menu``: File → Recent
    files (the window fills it).
    """

    def __init__(self, win) -> None:
        super().__init__(win)
        self.win = win
        self.actions: dict[str, QtGui.QAction] = {}
        bar = win.menuBar()
        self.recent_menu = self._file_menu(bar.addMenu("&File"))
        self._view_menu(bar.addMenu("&View"))
        self._numbers_menu(bar.addMenu("&Numbers"))
        self._run_menu(bar.addMenu("&Run"))
        self._help_menu(bar.addMenu("&Help"))
        self.shortcuts_box: QtWidgets.QMessageBox | None = None

    def _add(self, key: str, text: str, slot, shortcut: str | None = None,
             checkable: bool = False) -> QtGui.QAction:
        act = QtGui.QAction(text, self.win)
        if shortcut:
            act.setShortcut(QtGui.QKeySequence(shortcut))
        act.setCheckable(checkable)
        act.triggered.connect(slot)
        self.win.addAction(act)  # shortcuts work in full screen without a menu bar too
        self.actions[key] = act
        return act

    def _file_menu(self, file: QtWidgets.QMenu) -> QtWidgets.QMenu:
        win, add = self.win, self._add
        for act in (
            add("open_with_options", "Open checkpoint and data…", lambda: win.choose_open(),
                "Ctrl+Shift+O"),
            add("open_checkpoint", "Open checkpoint…", win.choose_checkpoint),
            add("open_checkpoints", "Open checkpoints (a timeline)…", lambda: win.timelines.choose()),
            add("open_dataset", "Open dataset…", win.choose_dataset),
            add("open_snapshot", "Open snapshot…", win.choose_snapshot, "Ctrl+O"),
            add("open_demo", "Open the demo", win.open_demo),
        ):
            file.addAction(act)
        recent = file.addMenu("Recent files")
        file.addSeparator()
        for act in (
            add("export_snapshot", "Export snapshot…", win.choose_export_snapshot, "Ctrl+S"),
            add("export_map", "Export map PNG/SVG/PDF…", win.choose_export_map, "Ctrl+E"),
            add("export_replay", "Export replay GIF/MP4…", win.choose_export_replay),
            add("export_selection", "Export selection…", win.choose_export_selection),
        ):
            file.addAction(act)
        file.addSeparator()
        file.addAction(add("quit", "Quit", win.close, "Ctrl+Q"))
        return recent

    def _view_menu(self, view: QtWidgets.QMenu) -> None:
        win, add = self.win, self._add
        layers = view.addMenu("Layers")
        for number, name in enumerate(LAYERS, start=1):
            act = add(f"layer_{name}", name.capitalize(),
                      lambda on, n=name: win.set_layer_visible(n, on), str(number),
                      checkable=True)
            act.setChecked(True)
            layers.addAction(act)
        colour = view.addMenu("Colour samples by")
        group = QtGui.QActionGroup(win)
        for mode in COLOR_MODES:
            act = add(f"colour_{mode}", mode, lambda _on, m=mode: win.set_color_mode(m),
                      checkable=True)
            group.addAction(act)
            colour.addAction(act)
        self.actions["colour_label"].setChecked(True)
        view.addAction(add("next_colour", "Next colour mode", win.next_color_mode, "L"))
        view.addAction(add("fit", "Fit map", lambda: win.view.fit_view(), "F"))
        names = add("names", "Names on the map", lambda on: win.set_show_names(on), "N",
                    checkable=True)
        names.setChecked(True)
        view.addAction(names)
        view.addAction(add("compare", "Before / after", lambda on: win.toggle_compare(on), "B",
                           checkable=True))
        view.addAction(add("go_to", "Go to sample…", win.ask_go_to, "Ctrl+G"))
        theme = view.addMenu("Theme")
        tgroup = QtGui.QActionGroup(win)
        for name in ("light", "dark"):
            act = add(f"theme_{name}", name.capitalize(), lambda _on, t=name: win.set_theme(t),
                      checkable=True)
            tgroup.addAction(act)
            theme.addAction(act)
        view.addAction(add("presentation", "Presentation mode", win.toggle_presentation,
                           "F11", checkable=True))
        view.addSeparator()
        view.addAction(win.controls_dock.toggleViewAction())
        view.addAction(win.numbers_dock.toggleViewAction())
        view.addAction(win.geometry_dock.toggleViewAction())

    def _numbers_menu(self, numbers: QtWidgets.QMenu) -> None:
        win = self.win
        numbers.addAction(self._add("geometry", "Geometry", win.geometry_dock.open))

    def _run_menu(self, run: QtWidgets.QMenu) -> None:
        win, add = self.win, self._add
        panel = win.adapt_panel
        for act in (
            add("step", "Step", lambda: panel.step_button.click(), "Space"),
            add("run_n", "Run N", lambda: panel.run_button.click(), "R"),
            add("reset", "Reset", lambda: panel.reset_button.click(), "Ctrl+R"),
            add("cancel", "Cancel", win.cancel_job, "Esc"),
        ):
            run.addAction(act)

    def _help_menu(self, help_: QtWidgets.QMenu) -> None:
        help_.addAction(self._add("shortcuts", "Shortcuts", self.show_shortcuts))
        help_.addAction(self._add("about", "About protoview", self.win.show_about))

    # ------------------------------------------------------------ state of the actions
    def check(self, key: str, on: bool = True) -> None:
        """Check (or uncheck) action ``key`` when it is not already so."""
        act = self.actions.get(key)
        if act is not None and act.isChecked() != bool(on):
            act.setChecked(bool(on))

    def enable(self, key: str, on: bool) -> None:
        act = self.actions.get(key)
        if act is not None:
            act.setEnabled(on)

    def show_shortcuts(self) -> QtWidgets.QMessageBox:
        """Help → Shortcuts: every key, in a (non-modal) box."""
        box = QtWidgets.QMessageBox(self.win)
        box.setWindowTitle("Shortcuts")
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.setText(shortcuts_html())
        box.show()
        self.shortcuts_box = box
        return box


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
    return f"<table>{rows}</table>"


def file_dialog_filter(kind: str) -> str:
    return {
        "checkpoint": "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)",
        "dataset": "Datasets (*.npz *.h5 *.hdf5);;All files (*)",
        "snapshot": "Snapshots (*.h5 *.hdf5);;All files (*)",
        "map": "PNG image (*.png);;SVG drawing (*.svg);;PDF document (*.pdf)",
        "replay": "GIF animation (*.gif);;MP4 video (*.mp4)",
        "selection": "NumPy (*.npy);;CSV (*.csv)",
    }[kind]


__all__ = ["SHORTCUTS", "WindowMenus", "file_dialog_filter", "shortcuts_html"]
