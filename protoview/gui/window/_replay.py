"""Snapshots in the window: a GeometryState from a snapshot, timeline frames, the replay
slider and the GIF export of a replay."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6 import QtCore, QtWidgets

from protoview.core.session import HistoryRow, rows_from_columns, run_from_snapshot
from protoview.core.state import GeometryState


def _arr(group: dict, key: str, n: int, dtype, fill, width: int | None = None) -> np.ndarray:
    v = group.get(key)
    if v is None:
        shape = (n,) if width is None else (n, width)
        return np.full(shape, fill, dtype)
    return np.asarray(v, dtype)


def state_from_snapshot(snap) -> GeometryState:
    """A GeometryState holding what a :class:`~protoview.core.snapshot.Snapshot` stores;
    missing parts become empty / -1 / NaN (a snapshot needs no model)."""
    s = snap.samples
    emb = np.asarray(s["embedding"], np.float32)
    n = len(emb)
    feats = s.get("features")
    d = 0 if feats is None else np.asarray(feats).shape[1]
    feats = np.zeros((n, 0), np.float32) if feats is None else np.asarray(feats, np.float32)
    assignment = s.get("assignment")
    if assignment is not None and not (np.asarray(assignment) >= 0).any():
        assignment = None

    def small(group: dict, label_key: str | None):
        emb_ = _arr(group, "embedding", 0, np.float32, np.nan, 2).reshape(-1, 2)
        m = len(emb_)
        vec = group.get("vectors")
        vec = np.zeros((m, d), np.float32) if vec is None else np.asarray(vec, np.float32)
        labels = None if label_key is None else _arr(group, label_key, m, np.int64, -1)
        return emb_, vec, labels

    c_emb, c_vec, c_lab = small(snap.centers, "labels")
    p_emb, p_vec, p_cls = small(snap.proxies, "class")
    k_emb, k_vec, _ = small(snap.prototypes, None)
    logits = s.get("logits")
    probs = None
    if logits is not None:
        z = np.asarray(logits, np.float64)
        probs = np.exp(z - z.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
    entropy = (np.full(n, np.nan, np.float32) if probs is None
               else (-(probs * np.log(np.clip(probs, 1e-30, None))).sum(1)).astype(np.float32))
    return GeometryState(
        features=feats, logits=None if logits is None else np.asarray(logits, np.float32),
        labels=_arr(s, "labels", n, np.int64, -1), predictions=_arr(s, "predictions", n, np.int64, -1),
        confidence=_arr(s, "confidence", n, np.float32, np.nan), entropy=entropy,
        centers=c_vec, center_labels=c_lab, proxies=p_vec, proxy_classes=p_cls,
        prototypes=k_vec, prototype_density=_arr(snap.prototypes, "density", len(k_emb), np.float32, np.nan),
        embedding=emb, centers_embedding=c_emb, proxies_embedding=p_emb, prototypes_embedding=k_emb,
        assignment=None if assignment is None else np.asarray(assignment, np.int64),
        metrics={k: float(v) for k, v in snap.metrics.items() if isinstance(v, (int, float))},
        attrs=dict(snap.attrs),
    )


def history_from_snapshot(snap) -> list[HistoryRow]:
    """The snapshot's history (its current run) as rows."""
    return rows_from_columns(snap.history)


def runs_from_snapshot(snap) -> tuple[list, int]:
    """(every run the snapshot holds as RunRecords, the number of the current one; 0: none)."""
    runs = [run_from_snapshot(entry) for entry in getattr(snap, "runs", []) or []]
    current = next((e for e in getattr(snap, "runs", []) or [] if e["attrs"].get("current")), None)
    return runs, int(current["attrs"].get("number", 0)) if current is not None else 0


def frame_state(base: GeometryState, frame: dict) -> GeometryState:
    """``base`` with the positions (and predictions) of one timeline ``frame``."""
    def pick(key: str, current: np.ndarray) -> np.ndarray:
        v = frame.get(key)
        return current if v is None or np.shape(v) != np.shape(current) else np.asarray(v, current.dtype)

    # a frame shows only what was measured at its step: the snapshot's other numbers
    # (NMI / ARI of a later k-means, the final center loss) only on the frame of the
    # snapshot's own step
    final = int(frame.get("step", -1)) == int(base.attrs.get("step", -2) or -2)
    metrics = dict(base.metrics) if final else {}
    if np.isfinite(frame.get("accuracy", np.nan)):
        metrics["accuracy"] = float(frame["accuracy"])
    protos = frame.get("prototypes_embedding")
    if protos is not None and np.shape(protos) != np.shape(base.prototypes_embedding):
        # recorded before (or with other) k-means prototypes: show none rather than the
        # final prototypes beside samples of an earlier step
        d = base.features.shape[1] if base.features.ndim == 2 else 0
        base = replace(
            base, prototypes=np.zeros((0, d), np.float32),
            prototypes_embedding=np.zeros((0, 2), np.float32),
            prototype_density=np.zeros(0, np.float32),
            assignment=None,  # nor the assignment made after this frame
        )
    attrs = dict(base.attrs)
    attrs["step"] = int(frame.get("step", attrs.get("step", 0)) or 0)
    return replace(
        base, attrs=attrs, embedding=pick("embedding", base.embedding),
        predictions=pick("predictions", base.predictions),
        centers_embedding=pick("centers_embedding", base.centers_embedding),
        proxies_embedding=pick("proxies_embedding", base.proxies_embedding),
        prototypes_embedding=pick("prototypes_embedding", base.prototypes_embedding),
        metrics=metrics,
    )


class ReplayBar(QtWidgets.QWidget):
    """A timeline slider over a snapshot's recorded frames. Emits ``frame_changed(int)``."""

    frame_changed = QtCore.Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.label = QtWidgets.QLabel("")
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setCheckable(True)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(400)
        self._timer.timeout.connect(self._advance)
        self._steps: list[int] = []
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(QtWidgets.QLabel("Replay"))
        layout.addWidget(self.play_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._on_value)
        self.play_button.toggled.connect(self._on_play)

    def set_frames(self, steps: list[int]) -> None:
        self._steps = list(steps)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(steps) - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._label(0)
        self.setVisible(bool(steps))

    def _label(self, i: int) -> None:
        if self._steps:
            self.label.setText(f"step {self._steps[i]}  ({i + 1}/{len(self._steps)})")

    def _on_value(self, i: int) -> None:
        self._label(i)
        self.frame_changed.emit(i)

    def _on_play(self, on: bool) -> None:
        if on:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.play_button.setChecked(False)
            return
        self.slider.setValue(self.slider.value() + 1)

    def stop(self) -> None:
        self.play_button.setChecked(False)
        self._timer.stop()


def _render_frames(view, base: GeometryState, frames: list[dict]) -> list[np.ndarray]:
    """Each timeline frame drawn by ``view`` offscreen, as (H, W, 3) uint8 RGB arrays."""
    images = []
    for frame in frames:
        view.set_state(frame_state(base, frame), animate=False)
        qimg = view.grab().toImage()
        qimg = qimg.convertToFormat(qimg.Format.Format_RGB888)
        _caption(qimg, frame)
        w, h = qimg.width(), qimg.height()
        buf = np.frombuffer(qimg.constBits(), np.uint8, count=qimg.bytesPerLine() * h)
        images.append(buf.reshape(h, qimg.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy())
    return images


def _caption(qimg, frame: dict) -> None:
    """Burn "step N · accuracy X%" into the bottom-left corner (the legend holds the top)
    of an exported frame, so a replay shown on its own still says where in the run each
    image is."""
    from protoview.gui.window._export import burn_caption

    text = f"step {int(frame.get('step', 0))}"
    acc = float(frame.get("accuracy", np.nan))
    if np.isfinite(acc):
        text += f"  ·  accuracy {100 * acc:.1f}%"
    burn_caption(qimg, text)


def video_encoder() -> str | None:
    """Path of an ffmpeg for MP4: imageio-ffmpeg's bundled one, else ``ffmpeg`` on PATH."""
    import shutil

    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def export_replay(path: str, view, base: GeometryState, frames: list[dict],
                  ms_per_frame: int = 400) -> int:
    """Render each timeline frame and save an animated GIF (``.gif``, Pillow) or an MP4
    (``.mp4``, H.264 through ffmpeg when one is installed; the error says how to get
    one). Returns the number of frames written."""
    from protoview.errors import SnapshotError

    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix not in ("gif", "mp4"):
        raise SnapshotError(path, "choose a file name ending in .gif or .mp4")
    if not frames:
        raise SnapshotError(path, "this snapshot holds no timeline to replay")
    encoder = video_encoder() if suffix == "mp4" else None
    if suffix == "mp4" and encoder is None:
        raise SnapshotError(
            path, "MP4 needs an ffmpeg encoder and none is installed: "
            "pip install imageio-ffmpeg (or put ffmpeg on PATH); GIF works without it")
    images = _render_frames(view, base, frames)
    try:
        if suffix == "gif":
            from PIL import Image

            pics = [Image.fromarray(im) for im in images]
            pics[0].save(path, save_all=True, append_images=pics[1:], duration=ms_per_frame,
                         loop=0)
        else:
            _write_mp4(path, encoder, images, 1000.0 / ms_per_frame)
    except OSError as exc:
        raise SnapshotError(path, f"cannot write the {suffix.upper()} ({exc.strerror or exc})") from None
    return len(images)


def _write_mp4(path: str, ffmpeg: str, images: list[np.ndarray], fps: float) -> None:
    """H.264 (yuv420p, even sizes) by piping raw RGB frames into ffmpeg."""
    import subprocess

    h, w = images[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-", "-an", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path)]
    proc = subprocess.run(cmd, input=b"".join(np.ascontiguousarray(im[:h, :w]).tobytes()
                                              for im in images), capture_output=True)
    if proc.returncode != 0:
        raise OSError(proc.returncode, proc.stderr.decode(errors="replace").strip()[:300]
                      or "ffmpeg failed")

