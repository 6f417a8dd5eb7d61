"""The geometry of one moment: samples, class centers, proxies, prototypes and their joint map.

- :class:`GeometryState`: everything the map shows at one step (numpy arrays only);
  :class:`JointRows`: the blocks of its joint map by name.
- :func:`compute_geometry` (and its parts :func:`prediction_statistics`,
  :func:`centers_block`, :func:`geometry_metrics`, :func:`place_joint`): a pure function of
  arrays; :func:`layout_with_new_prototypes` for new k-means prototypes; :func:`build_state`
  for a loaded model's features.
- :func:`model_prototypes` (:class:`ModelPrototypes`): a self-supervised model's own
  prototypes on the map, with SwAV's codes (:func:`swav_codes`).
- :func:`state_to_snapshot` / :func:`state_from_snapshot`; a run's recorded frames:
  :func:`timeline_frame` / :func:`frame_state`.
"""

from protoview.core.state._compute import (
    PlacedMap,
    build_state,
    centers_block,
    compute_geometry,
    geometry_metrics,
    layout_with_new_prototypes,
    place_joint,
    prediction_statistics,
)
from protoview.core.state._geometry_state import BLOCKS, GeometryState, JointRows, labels_known
from protoview.core.state._prototypes import (
    ModelPrototypes,
    model_prototypes,
    places_prototypes,
    prototype_scores,
    swav_codes,
)
from protoview.core.state._snapshot import (
    frame_state,
    state_from_snapshot,
    state_to_snapshot,
    timeline_frame,
    timeline_states,
)

__all__ = [
    "BLOCKS", "GeometryState", "JointRows", "ModelPrototypes", "PlacedMap", "build_state", "centers_block",
    "compute_geometry", "frame_state", "geometry_metrics",
    "labels_known", "layout_with_new_prototypes", "model_prototypes", "place_joint",
    "places_prototypes", "prediction_statistics", "prototype_scores", "swav_codes",
    "state_from_snapshot", "state_to_snapshot", "timeline_frame", "timeline_states",
]
