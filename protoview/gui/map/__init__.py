"""The map: one :class:`EmbeddingView` of samples, class centers, proxies and k-means
prototypes, with its layers, marks, density image and palettes (private modules)."""

from protoview.gui.map._density import DENSITY_THRESHOLD
from protoview.gui.map._layers import VERSUS_MODE
from protoview.gui.map._palette import (
    ENTROPY_BINS,
    Palette,
    class_colors,
    entropy_codes,
    entropy_colors,
    group_colors,
    match_groups_to_classes,
)
from protoview.gui.map._view import COLOR_MODES, LAYERS, VERSUS_COLORS, EmbeddingView, map_freshness

__all__ = [
    "COLOR_MODES",
    "DENSITY_THRESHOLD",
    "ENTROPY_BINS",
    "LAYERS",
    "VERSUS_COLORS",
    "VERSUS_MODE",
    "EmbeddingView",
    "Palette",
    "class_colors",
    "entropy_codes",
    "entropy_colors",
    "group_colors",
    "map_freshness",
    "match_groups_to_classes",
]
