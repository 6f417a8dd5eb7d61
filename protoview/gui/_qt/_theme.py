"""Themes (light, dark, high-contrast presentation) from ``resources/styles/*.qss``.

The style sheets use ``em`` units, so they follow the font size (high-DPI and the larger
presentation font) instead of fixed pixels.
"""

from __future__ import annotations

import importlib.resources

import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

THEMES = ("light", "dark", "contrast")
# Plot background / foreground per theme.
PLOT_COLORS = {
    "light": ("#ffffff", "#333333"),
    "dark": ("#17181a", "#d0d0d0"),
    "contrast": ("#000000", "#ffffff"),
}


def style_sheet(name: str) -> str:
    """The text of ``resources/styles/<name>.qss``."""
    if name not in THEMES:
        raise ValueError(f"unknown theme {name!r}; choose one of {THEMES}")
    res = importlib.resources.files("protoview.resources") / "styles" / f"{name}.qss"
    return res.read_text(encoding="utf-8")


def icon() -> QtGui.QIcon:
    res = importlib.resources.files("protoview.resources") / "icons" / "protoview.svg"
    return QtGui.QIcon(str(res))


def apply_theme(window: QtWidgets.QWidget, name: str, plots: list[pg.PlotWidget]) -> None:
    """Style ``window`` and recolour the pyqtgraph ``plots`` for theme ``name``."""
    window.setStyleSheet(style_sheet(name))
    background, foreground = PLOT_COLORS[name]
    for plot in plots:
        plot.setBackground(background)
        if hasattr(plot, "set_text_colors"):  # the map: legend, names, selection rings
            plot.set_text_colors(foreground, background)
        item = plot.getPlotItem()
        for axis in ("left", "bottom"):
            ax = item.getAxis(axis)
            ax.setPen(foreground)
            ax.setTextPen(foreground)
        item.titleLabel.setText(item.titleLabel.text, color=foreground)
        legend = item.legend
        if legend is not None:
            legend.setBrush(pg.mkBrush(background + "d0"))
            legend.setPen(pg.mkPen(foreground, width=0.5))
            legend.setLabelTextColor(foreground)
            # setLabelTextColor only records the colour: redraw the labels already there
            for _sample, label in legend.items:
                label.setText(label.text, color=foreground)
