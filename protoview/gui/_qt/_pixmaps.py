"""Images as pixmaps (private to :mod:`protoview.gui`): the hover card, the neighbours'
thumbnails and the data panel's preview draw a sample's pixels the same way."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui


def pixmap_from_array(image: np.ndarray, side: int) -> QtGui.QPixmap:
    """uint8 (H, W) or (H, W, 3) -> a QPixmap fitting ``side`` x ``side`` px (nearest
    neighbour: the pixels of small images stay sharp)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    if image.ndim == 2:
        qimg = QtGui.QImage(image.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8)
    else:
        qimg = QtGui.QImage(image.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888)
    pix = QtGui.QPixmap.fromImage(qimg.copy())  # own the bytes: the array may go away
    return pix.scaled(
        side, side, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
        QtCore.Qt.TransformationMode.FastTransformation,
    )
