"""The map: one :class:`EmbeddingView` of samples, class centers, proxies and k-means
prototypes, with its layers, marks, density image and palettes (private modules). What it
draws is derived by :mod:`protoview.present.derive`."""

from protoview.gui.map._density import DENSITY_THRESHOLD
from protoview.gui.map._palette import Palette, class_colors, entropy_colors, group_colors
from protoview.gui.map._view import COLOR_MODES, LAYERS, VERSUS_COLORS, VERSUS_MODE, EmbeddingView

__all__ = [
    "COLOR_MODES",
    "DENSITY_THRESHOLD",
    "LAYERS",
    "VERSUS_COLORS",
    "VERSUS_MODE",
    "EmbeddingView",
    "Palette",
    "class_colors",
    "entropy_colors",
    "group_colors",
]
