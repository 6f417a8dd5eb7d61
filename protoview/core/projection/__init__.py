"""Joint 2-D UMAP maps of samples, centers, proxies and prototypes — fast and stable.

The map is of directions: every vector (features, centers, proxies, prototypes) is L2-
normalised before embedding, so that a cosine head's proxies and the features live on
the same sphere. The small sets are embedded together with the samples (not placed by
hand).

Speed: the k-NN graph comes from faiss (exact, inner product on unit vectors) and is handed
to umap-learn, whose numba functions are compiled once per process by :func:`warm_up`
(call it in the background at start-up, never inside a click).

Stability: :func:`update_map` refits from the previous layout with a low learning rate
and few epochs (the PERFORMANCE-NOTES recipe), after pre-scaling the previous layout into
UMAP's [0, 10] box, then maps it back to the previous frame, so points move only as much
as their features did.

Modules: ``_graph`` (what every path shares), ``_fit`` (a fresh map, the warm-up),
``_update`` (the anchored update), ``_large`` (above :data:`MAX_MAP_POINTS`), ``_preview``
(a PCA layout drawn at once while the first map is computed), ``_torch_layout``
(umap-learn's optimiser in torch, used on a CUDA device). ``MapResult.notes`` says which
search, engine and device made a map.
"""

from protoview.core.projection._fit import fit_map, layout_drift, warm_up
from protoview.core.projection._graph import MapResult, default_epochs, knn_graph, unit_rows
from protoview.core.projection._large import (
    FIT_POINTS,
    MAX_MAP_POINTS,
    PLACE_NEIGHBORS,
    StackedRows,
    fit_large_map,
    max_map_points,
    place_points,
    stratified_subsample,
)
from protoview.core.projection._preview import preview_layout
from protoview.core.projection._update import update_map

__all__ = [
    "FIT_POINTS", "MAX_MAP_POINTS", "PLACE_NEIGHBORS", "MapResult", "StackedRows", "default_epochs", "fit_large_map",
    "fit_map", "knn_graph", "layout_drift", "max_map_points", "place_points", "preview_layout",
    "stratified_subsample", "unit_rows", "update_map", "warm_up",
]
