"""Presentation mode (private to :mod:`protoview.gui.window`): what a talk needs on a
projector (F11).

Full screen without the menu bar (every shortcut still works: the actions live on the
window), a banner over the map naming what runs (method, variant, stream, step,
accuracy), the controls hidden, the numbers in a narrow column, fonts, chart text and
glyphs large, names on the class centers and prototypes with a compact legend, the
high-contrast theme (outlines in its light colour), and the Cancel button shown only
while a job runs. Leaving restores the window as it was
(dock sizes and visibility included).
"""

from __future__ import annotations

from PySide6 import QtCore

FONT_SCALE = 1.6
GLYPH_SCALE = 1.8
TEXT_SCALE = 1.8
NUMBERS_SHARE = 0.27  # of the screen's width
BANNER_SCALE = 1.35  # the banner naming the run, against the (presentation) font


class Presentation(QtCore.QObject):
    """Presentation mode of ``win`` (a MainWindow): ``on`` says whether it is in it; what
    leaving restores is kept here (font, theme, dock layout, names, menu bar, the numbers'
    width)."""

    def __init__(self, win) -> None:
        super().__init__(win)
        self.win = win
        self.on = False
        self._saved: dict = {}

    def enter(self) -> None:
        win = self.win
        self.on = True
        font = win.font()
        self._saved = {
            "font": font.pointSizeF(), "theme": win.theme_name, "state": win.saveState(),
            "names": win.view.show_names, "menu": win.menuBar().isVisible(),
            "numbers_min": win.numbers.minimumWidth(),
        }
        font.setPointSizeF(self._saved["font"] * FONT_SCALE)
        win.setFont(font)
        win.apply_theme("contrast")
        # a style sheet re-polishes every widget with the application's font: say the size
        # in the sheet too, so that the bar, the tabs, the dock titles and the status grow
        win.setStyleSheet(win.styleSheet()
                          + f"\nQWidget {{ font-size: {font.pointSizeF():.1f}pt; }}"
                          + f"\n#RunBanner {{ font-size: {BANNER_SCALE * font.pointSizeF():.1f}pt;"
                          " font-weight: bold; }")
        for view in win.map_views():
            view.set_glyph_scale(GLYPH_SCALE)
            view.set_text_scale(TEXT_SCALE)
            view.set_compact_legend(True)
        win.show_banner(True)
        self._scale_charts(FONT_SCALE)
        win.set_show_names(True)
        win.controls_dock.hide()
        win.menuBar().hide()
        win.cancel_button.setVisible(win.cancel_button.isEnabled())
        win.showFullScreen()
        QtCore.QTimer.singleShot(0, self._narrow_numbers)
        self._narrow_numbers()

    def _scale_charts(self, scale: float) -> None:
        """Chart text in ``scale``: the numbers', the Geometry view's and the Tasks tab's."""
        win = self.win
        win.numbers.set_text_scale(scale)
        win.geometry.set_text_scale(scale)
        if hasattr(win, "timelines"):
            win.timelines.tasks.set_text_scale(scale)

    def _narrow_numbers(self) -> None:
        win = self.win
        if not self.on or not win.numbers_dock.isVisible():
            return
        screen = win.screen().geometry().width() if win.screen() is not None else win.width()
        width = int(NUMBERS_SHARE * screen)  # full screen: the window is the screen
        win.numbers.setMinimumWidth(min(self._saved["numbers_min"], width))
        win.resizeDocks([win.numbers_dock], [width], QtCore.Qt.Orientation.Horizontal)

    def leave(self) -> None:
        win, saved = self.win, self._saved
        self.on = False
        font = win.font()
        font.setPointSizeF(saved.get("font", font.pointSizeF() / FONT_SCALE))
        win.setFont(font)
        for view in win.map_views():
            view.set_glyph_scale(1.0)
            view.set_text_scale(1.0)
            view.set_compact_legend(False)
        win.show_banner(False)
        self._scale_charts(1.0)
        if "numbers_min" in saved:
            win.numbers.setMinimumWidth(saved["numbers_min"])
        win.set_show_names(saved.get("names", True))
        win.set_theme(saved.get("theme", "light"))
        win.menuBar().setVisible(saved.get("menu", True))
        win.cancel_button.setVisible(True)
        win.showNormal()
        if "state" in saved:
            win.restoreState(saved["state"])
