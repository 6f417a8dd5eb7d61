"""The panels beside the map: the controls (adaptation with its test stream, k-means,
Sinkhorn, data) turn widgets into frozen requests; the numbers (accuracy over steps and
the runs side by side, per class, confusion, balance), the geometry (neural collapse, k-NN,
CKA, the groups with the most errors), the neighbours, a timeline's movers and a class-incremental timeline's tasks show results."""

from protoview.gui.panels._controls import (
    LABEL_ORDERS,
    AdaptPanel,
    KMeansPanel,
    SinkhornPanel,
    StreamControls,
)
from protoview.gui.panels._data import PREPROCESS_CHOICES, DataPanel
from protoview.gui.panels._geometry import GeometryPanel
from protoview.gui.panels._movers import MoversPanel
from protoview.gui.panels._neighbors import NeighborsPanel
from protoview.gui.panels._numbers import NumbersPanel
from protoview.gui.panels._tasks import TasksPanel

__all__ = [
    "LABEL_ORDERS",
    "PREPROCESS_CHOICES",
    "AdaptPanel",
    "DataPanel",
    "GeometryPanel",
    "KMeansPanel",
    "MoversPanel",
    "NeighborsPanel",
    "NumbersPanel",
    "SinkhornPanel",
    "StreamControls",
    "TasksPanel",
]
