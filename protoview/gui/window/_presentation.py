"""Presentation mode (private): what a talk needs on a projector (F11).

Full screen without the menu bar (every shortcut still works: the actions live on the
window), the controls hidden, the numbers in a narrow column, fonts, chart text, legend
and glyphs large, names on the class centers and prototypes, the high-contrast theme,
and the Cancel button shown only while a job runs. Leaving restores the window as it was
(dock sizes and visibility included).
"""

from __future__ import annotations

from PySide6 import QtCore

FONT_SCALE = 1.6
GLYPH_SCALE = 1.8
TEXT_SCALE = 1.8
NUMBERS_SHARE = 0.27  # of the screen's width


def enter(win) -> None:
    font = win.font()
    win._presentation_saved = {
        "font": font.pointSizeF(), "theme": win.theme_name, "state": win.saveState(),
        "names": win.view.show_names, "menu": win.menuBar().isVisible(),
        "numbers_min": win.numbers.minimumWidth(),
    }
    font.setPointSizeF(win._presentation_saved["font"] * FONT_SCALE)
    win.setFont(font)
    win.apply_theme("contrast")
    # a style sheet re-polishes every widget with the application's font: say the size
    # in the sheet too, so that the bar, the tabs, the dock titles and the status grow
    win.setStyleSheet(win.styleSheet() + f"\nQWidget {{ font-size: {font.pointSizeF():.1f}pt; }}")
    for view in win.map_views():
        view.set_glyph_scale(GLYPH_SCALE)
        view.set_text_scale(TEXT_SCALE)
    win.numbers.set_text_scale(FONT_SCALE)
    win.set_show_names(True)
    win.controls_dock.hide()
    win.menuBar().hide()
    win.cancel_button.setVisible(win.cancel_button.isEnabled())
    win.showFullScreen()
    QtCore.QTimer.singleShot(0, lambda: _narrow_numbers(win))
    _narrow_numbers(win)


def _narrow_numbers(win) -> None:
    if not win.presenting or not win.numbers_dock.isVisible():
        return
    screen = win.screen().geometry().width() if win.screen() is not None else win.width()
    width = int(NUMBERS_SHARE * screen)  # full screen: the window is the screen
    win.numbers.setMinimumWidth(min(win._presentation_saved["numbers_min"], width))
    win.resizeDocks([win.numbers_dock], [width], QtCore.Qt.Orientation.Horizontal)


def leave(win) -> None:
    saved = getattr(win, "_presentation_saved", None) or {}
    font = win.font()
    font.setPointSizeF(saved.get("font", font.pointSizeF() / FONT_SCALE))
    win.setFont(font)
    for view in win.map_views():
        view.set_glyph_scale(1.0)
        view.set_text_scale(1.0)
    win.numbers.set_text_scale(1.0)
    if "numbers_min" in saved:
        win.numbers.setMinimumWidth(saved["numbers_min"])
    win.set_show_names(saved.get("names", True))
    win.set_theme(saved.get("theme", "light"))
    win.menuBar().setVisible(saved.get("menu", True))
    win.cancel_button.setVisible(True)
    win.showNormal()
    if "state" in saved:
        win.restoreState(saved["state"])
