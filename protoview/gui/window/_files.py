"""File handling of the main window (a mixin): open / export snapshots, export the map as
PNG / SVG / PDF and a replay as GIF, export a selection, recent files, drag and drop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6 import QtWidgets

from protoview.errors import SnapshotError
from protoview.gui.window._export import SUFFIXES as MAP_SUFFIXES
from protoview.gui.window._menus import file_dialog_filter
from protoview.gui.window._open_dialog import OpenDialog
from protoview.gui.window._replay import export_replay
from protoview.present import OpenRequest, compute

MAX_RECENT = 8
SNAPSHOT_SUFFIXES = (".h5", ".hdf5")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


class FileActions:
    """Mixed into MainWindow (uses its worker, view, numbers, settings, status label)."""

    _snapshot_path = ""  # the snapshot file being read or shown

    # ------------------------------------------------------------ dialogs
    def _ask_open(self, kind: str) -> str:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, f"Open {kind}", "", file_dialog_filter(kind))
        return path

    def _ask_save(self, kind: str, default: str) -> str:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, f"Export {kind}", default, file_dialog_filter(kind))
        return path

    def choose_open(self, problem: str = "", needs: tuple[str, ...] = (),
                    base: OpenRequest | None = None) -> OpenDialog:
        """File → Open…: checkpoint, data and the options, in one dialog (not modal)."""
        dialog = OpenDialog(self, base or self.open_request or OpenRequest(), problem, needs)
        dialog.accepted.connect(lambda: self.submit(dialog.request()))
        dialog.finished.connect(dialog.deleteLater)
        self.open_dialog = dialog
        dialog.open()
        return dialog

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
        """File → Export map…: PNG (asks the width in pixels), SVG or PDF (drawings, as
        wide as the map on screen); a name without one of those suffixes gets the
        chosen filter's."""
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export map", "protoview-map.png", file_dialog_filter("map"))
        if not path:
            return
        if Path(path).suffix.lower() not in MAP_SUFFIXES:  # what File → Export map writes
            path += next((s for s in MAP_SUFFIXES if s[1:] in chosen.lower()), ".png")
        if not path.lower().endswith(".png"):  # a drawing: no pixel width to ask
            self._guarded(lambda: self.export_map(path), f"map exported: {path}")
            return
        width, ok = QtWidgets.QInputDialog.getInt(
            self, "Map size", "width of the PNG in pixels", 1920, 200, 16000)
        if ok:
            self._guarded(lambda: self.export_map(path, width), f"map exported: {path}")

    def choose_export_replay(self) -> None:
        if path := self._ask_save("replay", "protoview-replay.gif"):
            if self.snapshot is not None:
                self._guarded(lambda: self.export_replay(path), f"replay exported: {path}")
            else:  # the live run's frames come from the session: written when they arrive
                self.export_replay(path)

    def choose_export_selection(self) -> None:
        if path := self._ask_save("selection", "selection.npy"):
            self._guarded(lambda: self.view.export_selection(path),
                          f"selection exported: {path}")

    def _guarded(self, fn, done: str) -> bool:
        """Run an export; success says ``done`` in the status bar, any failure goes to the
        one error handler (status bar + dialog), never only to stderr."""
        import traceback

        self.status_label.setText(done.replace("exported", "exporting", 1) + "…")
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported like a worker error
            raise_errors, self.raise_errors = self.raise_errors, False
            try:
                self._on_failed(0, exc, traceback.format_exc())
            finally:
                self.raise_errors = raise_errors
            return False
        self.status_label.setText(done)
        return True

    # ------------------------------------------------------------ opening
    def open_files(self, checkpoint: str | None = None, data: str | None = None,
                   preprocess: str | None = None) -> int:
        """Open a checkpoint and/or dataset; the missing one is kept from the last request,
        with its options (a new checkpoint starts without them: they belong to the old one).
        ``preprocess``: a new ``--preprocess`` for the same files ("" = the model's own)."""
        base = self.open_request or OpenRequest()
        if checkpoint and checkpoint != base.checkpoint:
            base = OpenRequest(checkpoint=checkpoint, data=base.data, device=base.device)
        req = replace(base, data=data or base.data)
        if preprocess is not None:
            req = replace(req, preprocess=preprocess or None)
        return self.submit(req)

    def open_snapshot(self, path: str) -> int:
        """Read a snapshot on the worker and show it (no model needed)."""
        self.status_label.setText(f"reading {path}…")
        self._snapshot_path = path
        self._job = self.worker.submit_call("read_snapshot",
                                            lambda _s: compute.read_snapshot(path))
        return self._job

    def _on_call_result(self, res) -> None:
        if res.kind == "read_snapshot":
            self.show_snapshot(res.payload)
            self.add_recent(self._snapshot_path)
        elif res.kind == "write_snapshot":
            self.status_label.setText(f"snapshot written: {res.payload}")
            self.add_recent(str(res.payload))
        elif res.kind == "replay_frames":
            path, states = res.payload
            self._guarded(lambda: self._render_replay(path, states), f"replay exported: {path}")

    def show_snapshot(self, snap, title: str | None = None, class_names: list[str] | None = None,
                      thumbnail=None) -> None:
        """Show a Snapshot object (``shown.show_snapshot``); its timeline (if any) goes to
        the replay slider. ``title``: the window's (default: the file's name);
        ``class_names``, ``thumbnail``: the data's when known (a timeline built here)."""
        self.animate = False
        self.shown.show_snapshot(snap, class_names, thumbnail)
        self.view.fit_view()
        plan = snap.assignment_attrs.get("target") if snap.assignment else None
        self.show_balance(str(plan) if plan else None)  # its own Sinkhorn plan, or none
        self.setWindowTitle(title or f"protoview — snapshot {Path(self._snapshot_path).name}")
        attrs = snap.attrs
        self.data_panel.show_snapshot(str(attrs.get("dataset", "")),
                                      str(attrs.get("preprocess", "") or ""),
                                      str(attrs.get("preprocess_source", "") or ""))
        self.status_label.setText(f"snapshot: {self.shown.state.summary()} · "
                                  f"{len(snap.timeline)} recorded frames")

    # ------------------------------------------------------------ exporting
    def export_snapshot(self, path: str) -> int | None:
        """Write the current state + run (or the open snapshot) atomically, on the worker."""
        snap = self.snapshot
        if snap is not None:
            self._job = self.worker.submit_call(
                "write_snapshot", lambda _session: compute.write_snapshot(path, snap))
        else:
            measured = tuple(self.shown.geometry)  # the Geometry view's measurements too
            self._job = self.worker.submit_call(
                "write_snapshot", lambda session: compute.write_snapshot(
                    path, compute.with_measurements(session.to_snapshot(), measured)),
                needs_session=True)
        return self._job

    def export_map(self, path: str, width: int | None = None) -> str:
        """The map as PNG (``width`` px wide, default 1920, drawn at that size), SVG or PDF
        (by the suffix; vector drawings of the same picture, ``width`` px at 96 dpi,
        default the map's width on screen), with a caption: method, step, accuracy.
        Returns the path written."""
        from protoview.gui.window._export import export_map

        return export_map(self.view, str(path), None if width is None else int(width),
                          self.shown.caption())

    def export_replay(self, path: str) -> int | None:
        """The recorded run as an animated GIF or an MP4 (by the suffix), each frame captioned
        with its step and accuracy: the open snapshot's timeline at once (returns the frames
        written; raises on a problem), or the live run's, fetched from the session first
        (returns None; written when they arrive, a problem goes to the one handler)."""
        if self.snapshot is not None:
            return self._render_replay(path, self.shown.frame_states())
        self._job = self.worker.submit_call(
            "replay_frames", lambda session: (path, compute.replay_states(session.to_snapshot())),
            needs_session=True)
        return None

    def _render_replay(self, path: str, states: list) -> int:
        """Render ``states`` into ``path`` with the map, then show the map as it was."""
        if not states:
            raise SnapshotError(path, "there is no recorded run to replay yet: take a few steps "
                                      "(each one is recorded) or open a snapshot")
        try:
            return export_replay(path, self.view, states)
        finally:
            self.view.set_state(self.shown.state, list(self.shown.class_names), animate=False)

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
        if low.endswith(SNAPSHOT_SUFFIXES) and not compute.is_features_file(path):
            return self.open_snapshot(path)  # a features file is data
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



