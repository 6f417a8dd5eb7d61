"""Screenshots of the window at 1,000,000 samples (issue 24): zoomed out, hovering a single
sample, zoomed in to single dots, a lasso. Under X:
``DISPLAY=:77 QT_QPA_PLATFORM=xcb python bench/big_map_shots.py OUT_DIR [N]``.

The window runs on a fake session (``tests/gui/fakes.py``) whose state has N samples in
blobs (no features: nothing but the map is computed for them)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> int:
    from PySide6 import QtCore, QtTest, QtWidgets

    from bench.big_map import big_state
    from protoview.gui.window import MainWindow
    from tests.gui.fakes import FakeDataset, FakeSession

    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    n = int(argv[1]) if len(argv) > 1 else 1_000_000

    class Big(FakeSession):
        def __init__(self) -> None:
            super().__init__(n=300)
            self.state = self.source_state = big_state(n)
            self.dataset = FakeDataset(n)

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["shots"])
    settings = QtCore.QSettings(str(out / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=Big.open, warm_up=None, raise_errors=True)
    w.resize(1500, 950)
    w.show()
    t0 = time.perf_counter()
    w.open_demo()
    while w.state is None and time.perf_counter() - t0 < 120:
        app.processEvents()
        time.sleep(0.02)
    print(f"opened {n:,} samples in {time.perf_counter() - t0:.1f} s")

    def settle(s: float = 0.5) -> None:
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.01)

    view = w.view
    settle(1.0)
    w.grab().save(str(out / "zoomed_out.png"))
    emb = np.asarray(w.state.embedding, np.float64)

    def hover(i: int, name: str) -> None:
        x, y = emb[i]
        pos = view.mapFromScene(view.getViewBox().mapViewToScene(QtCore.QPointF(x, y)))
        QtTest.QTest.mouseMove(view.viewport(), pos)
        settle(0.3)
        view._on_mouse_moved(view.mapToScene(pos))  # the same as a real move under X
        settle(0.3)
        print(f"{name}: hovered {view._hover_index} (wanted near {i}); card "
              f"{'shown' if view.hover_card.isVisible() else 'hidden'}")
        w.grab().save(str(out / f"{name}.png"))

    hover(12345, "hover_zoomed_out")
    x, y = emb[12345]
    for half in (1.2, 0.6):  # the image with fewer samples per pixel, then the dots
        view.getViewBox().setRange(xRange=(x - half, x + half),
                                   yRange=(y - 0.64 * half, y + 0.64 * half), padding=0.0)
        view.settle()
        settle(0.3)
        print(f"half width {half}: {len(view.layers.big.shown):,} dots, image "
              f"{'shown' if view.items['density'].isVisible() else 'hidden'}")
        w.grab().save(str(out / f"zoom_{half}.png"))
    view.getViewBox().setRange(xRange=(x - 0.25, x + 0.25), yRange=(y - 0.16, y + 0.16),
                               padding=0.0)
    view.settle()
    settle(0.5)
    print(f"zoomed in: {len(view.layers.big.shown):,} dots, image "
          f"{'shown' if view.items['density'].isVisible() else 'hidden'}")
    w.grab().save(str(out / "zoomed_in.png"))
    hover(12345, "hover_zoomed_in")
    view.fit_view()
    view.settle()
    c = np.asarray(w.state.centers_embedding[2], np.float64)
    theta = np.linspace(0, 2 * np.pi, 90)
    t0 = time.perf_counter()
    sel = view.select_polygon(np.c_[c[0] + 2.5 * np.cos(theta), c[1] + 1.5 * np.sin(theta)])
    print(f"lasso: {sel.size:,} samples in {time.perf_counter() - t0:.2f} s")
    settle(0.5)
    w.grab().save(str(out / "lasso.png"))
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
