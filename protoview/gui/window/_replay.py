"""A snapshot's replay in the window: the slider over its recorded frames, and the replay
exported as GIF or MP4 (each frame as :class:`~protoview.present.Shown` shows it)."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from protoview.present import derive


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
        self._names: list[str] = []  # a timeline's checkpoint files ([]: steps)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(QtWidgets.QLabel("Replay"))
        layout.addWidget(self.play_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._on_value)
        self.play_button.toggled.connect(self._on_play)

    def set_frames(self, steps: list[int], names: list[str] | None = None) -> None:
        """The frames' steps (and names: a timeline's checkpoint files, each frame labelled
        with its own); the slider stands at the last one (a snapshot opens on its own
        state, the run's end), silently. Play starts from the first."""
        self._steps = list(steps)
        self._names = [n for n in (names or []) if not n.startswith("step ")]
        if len(self._names) != len(self._steps):
            self._names = []
        last = max(0, len(steps) - 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, last)
        self.slider.setValue(last)
        self.slider.blockSignals(False)
        self._label(last)
        self.setVisible(bool(steps))

    def _label(self, i: int) -> None:
        if self._names:
            self.label.setText(f"{self._names[i]}  ({i + 1}/{len(self._steps)})")
        elif self._steps:
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


def _render_frames(view, states: list) -> list[np.ndarray]:
    """Each frame's state drawn by ``view`` offscreen, as (H, W, 3) uint8 RGB arrays."""
    images = []
    for state in states:
        view.set_state(state, animate=False)
        qimg = view.grab().toImage()
        qimg = qimg.convertToFormat(qimg.Format.Format_RGB888)
        _caption(qimg, state)
        w, h = qimg.width(), qimg.height()
        buf = np.frombuffer(qimg.constBits(), np.uint8, count=qimg.bytesPerLine() * h)
        images.append(buf.reshape(h, qimg.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy())
    return images


def _caption(qimg, state) -> None:
    """Burn "step N · accuracy X%" into the bottom-left corner (the legend holds the top)
    of an exported frame, so a replay shown on its own still says where in the run each
    image is (the numbers of the frame as the window shows it)."""
    from protoview.gui.window._caption import burn_caption

    checkpoint = derive.checkpoint_label(state)
    text = checkpoint or f"step {int(state.attrs.get('step', 0))}"
    acc = float(state.metrics.get("accuracy", np.nan))
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


def export_replay(path: str, view, states: list, ms_per_frame: int = 400) -> int:
    """Render each frame's state (:meth:`protoview.present.Shown.frame_states`) and save an animated GIF (``.gif``, Pillow) or an MP4
    (``.mp4``, H.264 through ffmpeg when one is installed; the error says how to get
    one). Returns the number of frames written."""
    from protoview.errors import SnapshotError

    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix not in ("gif", "mp4"):
        raise SnapshotError(path, "choose a file name ending in .gif or .mp4")
    if not states:
        raise SnapshotError(path, "this snapshot holds no timeline to replay")
    encoder = video_encoder() if suffix == "mp4" else None
    if suffix == "mp4" and encoder is None:
        raise SnapshotError(
            path, "MP4 needs an ffmpeg encoder and none is installed: "
            "pip install imageio-ffmpeg (or put ffmpeg on PATH); GIF works without it")
    images = _render_frames(view, states)
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

