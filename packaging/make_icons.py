"""Render the application icon (resources/icons/protoview.svg) to PNG sizes.

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py

Writes resources/icons/protoview-<size>.png for the sizes desktops ask for (the .desktop
file and the bundle use them; Qt itself reads the SVG).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtGui, QtSvg

    app = QtGui.QGuiApplication.instance() or QtGui.QGuiApplication(sys.argv[:1])
    icons = Path(__file__).resolve().parent.parent / "resources" / "icons"
    renderer = QtSvg.QSvgRenderer(str(icons / "protoview.svg"))
    if not renderer.isValid():
        print(f"{icons / 'protoview.svg'}: not a valid SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32)
        image.fill(QtCore.Qt.GlobalColor.transparent)
        painter = QtGui.QPainter(image)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(icons / f"protoview-{size}.png"))
    del app
    print(f"wrote {len(SIZES)} PNG icons to {icons}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
