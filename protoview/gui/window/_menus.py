"""Menus, actions and keyboard shortcuts of the main window (private)."""

from __future__ import annotations

from PySide6 import QtGui

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
    ("Ctrl+E", "Export map PNG / SVG"),
    ("Ctrl+Q", "Quit"),
    ("right-drag", "Select a box of samples (Box / Lasso: left-drag selects)"),
    ("click a sample", "Mark it and list its nearest neighbours in feature space"),
    ("click a star / diamond / triangle", "Highlight its members"),
    ("click empty space", "Clear the highlight, the selection and the marked sample"),
)


def _action(win, text: str, slot, shortcut: str | None = None, checkable: bool = False):
    act = QtGui.QAction(text, win)
    if shortcut:
        act.setShortcut(QtGui.QKeySequence(shortcut))
    act.setCheckable(checkable)
    act.triggered.connect(slot)
    win.addAction(act)  # shortcuts work in full screen without a menu bar too
    return act


def build_menus(win) -> dict[str, QtGui.QAction]:
    """Create File / View / Help menus on ``win`` (a MainWindow); returns the actions."""
    bar = win.menuBar()
    acts: dict[str, QtGui.QAction] = {}
    file = bar.addMenu("&File")
    acts["open_with_options"] = _action(win, "Open checkpoint and data…", lambda: win.choose_open(),
                                        "Ctrl+Shift+O")
    acts["open_checkpoint"] = _action(win, "Open checkpoint…", win.choose_checkpoint)
    acts["open_dataset"] = _action(win, "Open dataset…", win.choose_dataset)
    acts["open_snapshot"] = _action(win, "Open snapshot…", win.choose_snapshot, "Ctrl+O")
    acts["open_demo"] = _action(win, "Open the demo", win.open_demo)
    for key in ("open_with_options", "open_checkpoint", "open_dataset", "open_snapshot", "open_demo"):
        file.addAction(acts[key])
    win.recent_menu = file.addMenu("Recent files")
    file.addSeparator()
    acts["export_snapshot"] = _action(win, "Export snapshot…", win.choose_export_snapshot, "Ctrl+S")
    acts["export_map"] = _action(win, "Export map PNG/SVG…", win.choose_export_map, "Ctrl+E")
    acts["export_replay"] = _action(win, "Export replay GIF/MP4…", win.choose_export_replay)
    acts["export_selection"] = _action(win, "Export selection…", win.choose_export_selection)
    for key in ("export_snapshot", "export_map", "export_replay", "export_selection"):
        file.addAction(acts[key])
    file.addSeparator()
    acts["quit"] = _action(win, "Quit", win.close, "Ctrl+Q")
    file.addAction(acts["quit"])

    view = bar.addMenu("&View")
    layers = view.addMenu("Layers")
    for number, name in enumerate(LAYERS, start=1):
        act = _action(win, name.capitalize(), lambda on, n=name: win.view.set_layer_visible(n, on),
                      str(number), checkable=True)
        act.setChecked(True)
        layers.addAction(act)
        acts[f"layer_{name}"] = act
    colour = view.addMenu("Colour samples by")
    group = QtGui.QActionGroup(win)
    for mode in COLOR_MODES:
        act = _action(win, mode, lambda _on, m=mode: win.set_color_mode(m), checkable=True)
        group.addAction(act)
        colour.addAction(act)
        acts[f"colour_{mode}"] = act
    acts["colour_label"].setChecked(True)
    acts["next_colour"] = _action(win, "Next colour mode", win.next_color_mode, "L")
    view.addAction(acts["next_colour"])
    acts["fit"] = _action(win, "Fit map", lambda: win.view.fit_view(), "F")
    view.addAction(acts["fit"])
    acts["names"] = _action(win, "Names on the map", lambda on: win.set_show_names(on), "N",
                            checkable=True)
    acts["names"].setChecked(True)
    view.addAction(acts["names"])
    acts["compare"] = _action(win, "Before / after", lambda on: win.toggle_compare(on), "B",
                              checkable=True)
    view.addAction(acts["compare"])
    acts["go_to"] = _action(win, "Go to sample…", win.ask_go_to, "Ctrl+G")
    view.addAction(acts["go_to"])
    theme = view.addMenu("Theme")
    tgroup = QtGui.QActionGroup(win)
    for name in ("light", "dark"):
        act = _action(win, name.capitalize(), lambda _on, t=name: win.set_theme(t), checkable=True)
        tgroup.addAction(act)
        theme.addAction(act)
        acts[f"theme_{name}"] = act
    acts["presentation"] = _action(win, "Presentation mode", win.toggle_presentation, "F11",
                                   checkable=True)
    view.addAction(acts["presentation"])
    view.addSeparator()
    view.addAction(win.controls_dock.toggleViewAction())
    view.addAction(win.numbers_dock.toggleViewAction())

    run = bar.addMenu("&Run")
    acts["step"] = _action(win, "Step", lambda: win.adapt_panel.step_button.click(), "Space")
    acts["run_n"] = _action(win, "Run N", lambda: win.adapt_panel.run_button.click(), "R")
    acts["reset"] = _action(win, "Reset", lambda: win.adapt_panel.reset_button.click(), "Ctrl+R")
    acts["cancel"] = _action(win, "Cancel", win.cancel_job, "Esc")
    for key in ("step", "run_n", "reset", "cancel"):
        run.addAction(acts[key])

    help_ = bar.addMenu("&Help")
    acts["shortcuts"] = _action(win, "Shortcuts", win.show_shortcuts)
    acts["about"] = _action(win, "About protoview", win.show_about)
    help_.addAction(acts["shortcuts"])
    help_.addAction(acts["about"])
    return acts


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
    return f"<table>{rows}</table>"


def file_dialog_filter(kind: str) -> str:
    return {
        "checkpoint": "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)",
        "dataset": "Datasets (*.npz *.h5 *.hdf5);;All files (*)",
        "snapshot": "Snapshots (*.h5 *.hdf5);;All files (*)",
        "map": "PNG image (*.png);;SVG drawing (*.svg)",
        "replay": "GIF animation (*.gif);;MP4 video (*.mp4)",
        "selection": "NumPy (*.npy);;CSV (*.csv)",
    }[kind]


__all__ = ["build_menus", "shortcuts_html", "file_dialog_filter", "SHORTCUTS"]
