"""File handling of the main window (a mixin): open / export snapshots, export the map as
PNG / SVG and a replay as GIF, export a selection, recent files, drag and drop."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

from protoview.core.session import OpenRequest
from protoview.errors import ProtoviewError, SnapshotError
from protoview.gui import _menus
from protoview.gui.replay import export_replay, history_from_snapshot, state_from_snapshot

MAX_RECENT = 8
SNAPSHOT_SUFFIXES = (".h5", ".hdf5")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


def _read(path: str):
    from protoview.core.snapshot import read_snapshot

    return read_snapshot(path)


class FileActions:
    """Mixed into MainWindow (uses its worker, view, numbers, settings, status label)."""

    # ------------------------------------------------------------ dialogs
    def _ask_open(self, kind: str) -> str:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, f"Open {kind}", "", _menus.file_dialog_filter(kind))
        return path

    def _ask_save(self, kind: str, default: str) -> str:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, f"Export {kind}", default, _menus.file_dialog_filter(kind))
        return path

    def choose_checkpoint(self) -> None:
        if path := self._ask_open("checkpoint"):
            self.open_files(checkpoint=path)

    def choose_dataset(self) -> None:
        if path := self._ask_open("dataset"):
            self.open_files(data=path)

    def choose_snapshot(self) -> None:
        if path := self._ask_open("snapshot"):
            self.open_snapshot(path)

    def choose_export_snapshot(self) -> None:
        if path := self._ask_save("snapshot", "protoview-snapshot.h5"):
            self.export_snapshot(path)

    def choose_export_map(self) -> None:
        if not (path := self._ask_save("map", "protoview-map.png")):
            return
        width, ok = QtWidgets.QInputDialog.getInt(
            self, "Map size", "width in pixels (PNG)", 1920, 200, 16000)
        if ok:
            self._guarded(lambda: self.export_map(path, width))

    def choose_export_replay(self) -> None:
        if path := self._ask_save("replay", "protoview-replay.gif"):
            self._guarded(lambda: self.export_replay(path))

    def choose_export_selection(self) -> None:
        if path := self._ask_save("selection", "selection.npy"):
            self._guarded(lambda: self.view.export_selection(path))

    def _guarded(self, fn) -> None:
        try:
            fn()
            self.status_label.setText("exported")
        except ProtoviewError as exc:
            self._on_failed(0, exc, "")

    # ------------------------------------------------------------ opening
    def open_files(self, checkpoint: str | None = None, data: str | None = None) -> int:
        """Open a checkpoint and/or dataset; the missing one is kept from the last request."""
        base = self.open_request or OpenRequest()
        req = OpenRequest(checkpoint=checkpoint or base.checkpoint, data=data or base.data)
        return self.submit(req)

    def open_snapshot(self, path: str) -> int:
        """Read a snapshot on the worker and show it (no model needed)."""
        self.status_label.setText(f"reading {path}…")
        self._snapshot_path = path
        self._job = self.worker.submit_call("read_snapshot", lambda _s: _read(path))
        return self._job

    def _on_call_result(self, res) -> None:
        if res.kind == "read_snapshot":
            self.show_snapshot(res.payload)
            self.add_recent(getattr(self, "_snapshot_path", ""))
        elif res.kind == "write_snapshot":
            self.status_label.setText(f"snapshot written: {res.payload}")
        self.last_call = res

    def show_snapshot(self, snap) -> None:
        """Show a Snapshot object; its timeline (if any) goes to the replay slider."""
        self.snapshot = snap
        self.snapshot_base = state_from_snapshot(snap)
        self.history = history_from_snapshot(snap)
        self.source_accuracy = float(snap.metrics.get("source_accuracy", float("nan")))
        self.state = self.snapshot_base
        self.view.thumbnail = None
        n_classes = len(self.snapshot_base.center_labels)
        self.view.set_state(self.snapshot_base, [str(i) for i in range(n_classes)], animate=False)
        self.view.fit_view()
        if hasattr(self, "map_label"):  # a saved map: not the live one being refreshed
            self.map_label.setText("")
            self.refresh_button.setEnabled(False)
        self._pending_numbers = None  # a live result's charts must not overwrite these
        self.numbers.update_numbers(self.snapshot_base, self.history, self.source_accuracy)
        self.replay_bar.set_frames([int(f.get("step", i)) for i, f in enumerate(snap.timeline)])
        for panel in (self.adapt_panel, self.kmeans_panel, self.sinkhorn_panel):
            panel.setEnabled(False)
        self.setWindowTitle(f"protoview — snapshot {Path(getattr(self, '_snapshot_path', '')).name}")
        self.status_label.setText(
            f"snapshot: {self.snapshot_base.summary()} · {len(snap.timeline)} recorded frames")

    def _leave_snapshot_mode(self) -> None:
        if self.snapshot is None:
            return
        self.snapshot = None
        self.snapshot_base = None
        self.replay_bar.stop()
        self.replay_bar.hide()
        for panel in (self.adapt_panel, self.kmeans_panel, self.sinkhorn_panel):
            panel.setEnabled(True)

    # ------------------------------------------------------------ exporting
    def export_snapshot(self, path: str) -> int | None:
        """Write the current state + run (or the open snapshot) atomically, on the worker."""
        from protoview.core.snapshot import write_snapshot

        if self.snapshot is not None:
            snap = self.snapshot

            def write(_session):
                write_snapshot(path, snap)
                return path
            self._job = self.worker.submit_call("write_snapshot", write)
        else:
            def write(session):
                write_snapshot(path, session.to_snapshot())
                return path
            self._job = self.worker.submit_call("write_snapshot", write, needs_session=True)
        return self._job

    def export_map(self, path: str, width: int = 1920) -> None:
        """The map as PNG (``width`` px wide) or SVG, via pyqtgraph's exporters."""
        import pyqtgraph.exporters as ex

        self.view.finish_animation()
        item = self.view.getPlotItem()
        try:
            if str(path).lower().endswith(".svg"):
                ex.SVGExporter(item).export(str(path))
            else:
                exporter = ex.ImageExporter(item)
                exporter.parameters()["width"] = int(width)
                exporter.export(str(path))
        except OSError as exc:
            raise SnapshotError(path, f"cannot write the image ({exc})") from None
        if not Path(path).is_file():
            raise SnapshotError(path, "the image could not be written (is the folder writable?)")

    def export_replay(self, path: str) -> int:
        """The open snapshot's timeline as an animated GIF or an MP4 (by the suffix)."""
        if self.snapshot is None or not self.snapshot.timeline:
            raise SnapshotError(path, "open a snapshot with a recorded run to export a replay")
        current = self.replay_bar.slider.value()
        n = export_replay(path, self.view, self.snapshot_base, self.snapshot.timeline)
        self.show_frame(current)
        return n

    # ------------------------------------------------------------ recent files, drops
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> None:
        if not path or path.startswith("demo"):
            return
        items = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", items[:MAX_RECENT])
        self.refresh_recent_menu()

    def refresh_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        for path in self.recent_files():
            act = menu.addAction(path)
            act.triggered.connect(lambda _on=False, p=path: self.open_path(p))
        menu.setEnabled(bool(self.recent_files()))

    def open_path(self, path: str) -> int:
        """Open any file by its kind: a snapshot, a checkpoint, or else a dataset."""
        low = path.lower()
        if low.endswith(SNAPSHOT_SUFFIXES):
            from protoview.core.snapshot import hdf5_format

            if hdf5_format(path) != "protoview-features":  # a features file is data
                return self.open_snapshot(path)
        if low.endswith(CHECKPOINT_SUFFIXES):
            return self.open_files(checkpoint=path)
        return self.open_files(data=path)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
        event.acceptProposedAction()



