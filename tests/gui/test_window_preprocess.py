"""The window's side of issue 13: the preprocessing line and preview, changing it, and the
open dialog that asks for --arch / --split / --nb-proxy / --preprocess when a file needs them."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from protoview.errors import CheckpointError, DatasetError
from protoview.present import OpenRequest
from tests.gui.fakes import FakeDataset, FakeSession


class _Transform:
    def describe(self) -> str:
        return "cifar10: resize to 32x32 (bilinear), RGB, mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.201)"


class _ImagesDataset(FakeDataset):
    """A fake dataset with a transform and a preview, as the real image datasets have."""

    transform = _Transform()
    transform_source = "option"

    def preview(self, index: int):
        stored = np.full((8, 8), 40 * (index % 5), np.uint8)
        seen = np.random.default_rng(index).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        return stored, seen, (-1.9, 2.4)


class _Session(FakeSession):
    opened_requests: list = []

    def __init__(self, n: int = 300) -> None:
        super().__init__(n)
        self.dataset = _ImagesDataset(n)

    @classmethod
    def open(cls, req, progress=None, cancel=None, preview=False):
        if req.checkpoint == "plain.pt" and req.arch is None:
            raise CheckpointError(req.checkpoint, "a plain state_dict does not say which architecture "
                                  "it is for; pass --arch", needs=("arch",))
        if req.data == "inputs.npz" and req.preprocess != "none":
            raise DatasetError(req.data, "holds float images with values in [-2.1, 2.6], outside [0, 1] "
                               "(pixels); if they are already the model's inputs, pass --preprocess none",
                               needs=("preprocess",))
        return super().open(req, progress, cancel, preview)


@pytest.fixture
def win(qtbot, tmp_path):
    from protoview.gui.window import MainWindow

    session = type("S", (_Session,), {"opened_requests": []})
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, open_session=session.open, warm_up=None, raise_errors=True)
    w.session_cls = session
    qtbot.addWidget(w)
    w.resize(1400, 860)
    w.show()
    with qtbot.waitSignal(w.worker.result, timeout=5000):
        w.submit(OpenRequest(checkpoint="model.pt", data="data.npz", preprocess="cifar10"))
    yield w
    w.close()


def test_the_data_panel_shows_the_preprocessing_and_the_input_as_the_model_sees_it(win, qtbot, tmp_path):
    panel = win.data_panel
    assert panel.preprocess_label.text().startswith("preprocessing: cifar10: resize to 32x32")
    assert panel.preprocess_label.text().endswith("(from: option)")
    assert panel.preprocess.currentText() == "cifar10"
    assert not panel.stored_image.pixmap().isNull() and not panel.seen_image.pixmap().isNull()
    assert "model input 32x32, values -1.9 … 2.4" == panel.range_label.text()
    panel.sample.setValue(3)  # another sample, another preview
    assert panel.seen_image.pixmap().toImage() != panel.stored_image.pixmap().toImage()
    win.grab().save(str(tmp_path / "data-panel.png"))


def test_changing_the_preprocessing_opens_the_same_files_again(win, qtbot):
    panel = win.data_panel
    panel.preprocess.setCurrentText("size=32,mean=0.5,std=0.25")
    with qtbot.waitSignal(win.worker.result, timeout=5000):
        panel.apply_button.click()
    last = win.session_cls.opened_requests[-1]
    assert (last.checkpoint, last.data, last.preprocess) == ("model.pt", "data.npz", "size=32,mean=0.5,std=0.25")
    assert win.open_request == last
    panel.preprocess.setCurrentText("")  # back to the model's own
    with qtbot.waitSignal(win.worker.result, timeout=5000):
        panel.apply_button.click()
    assert win.session_cls.opened_requests[-1].preprocess is None


def test_a_checkpoint_without_its_architecture_asks_for_it(win, qtbot, tmp_path):
    state = win.state
    win.open_files(checkpoint="plain.pt")
    qtbot.waitUntil(lambda: getattr(win, "open_dialog", None) is not None and win.open_dialog.isVisible(),
                    timeout=5000)
    dialog = win.open_dialog
    assert "plain.pt" in dialog.problem and "--arch" in dialog.problem and dialog.problem_label.isVisible()
    assert dialog.checkpoint.text() == "plain.pt" and dialog.data.text() == "data.npz"
    assert dialog.preprocess.currentText() == ""  # options belong to the old checkpoint
    assert win.state is state and not win.error_box.isVisible()
    dialog.grab().save(str(tmp_path / "open-dialog.png"))
    dialog.arch.setText("my_arch.py:build")
    dialog.nb_proxy.setValue(2)
    with qtbot.waitSignal(win.worker.result, timeout=5000):
        dialog.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Open).click()
    last = win.session_cls.opened_requests[-1]
    assert (last.checkpoint, last.arch, last.nb_proxy) == ("plain.pt", "my_arch.py:build", 2)


def test_model_inputs_ask_for_preprocess_none(win, qtbot):
    win.open_files(data="inputs.npz")
    qtbot.waitUntil(lambda: getattr(win, "open_dialog", None) is not None and win.open_dialog.isVisible(),
                    timeout=5000)
    dialog = win.open_dialog
    assert "--preprocess none" in dialog.problem and dialog.problem_label.isVisible()
    assert dialog.preprocess.currentText() == "cifar10"  # the same checkpoint keeps its options
    dialog.preprocess.setCurrentText("none")
    with qtbot.waitSignal(win.worker.result, timeout=5000):
        dialog.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Open).click()
    assert win.session_cls.opened_requests[-1].preprocess == "none"
    assert win.data_panel.preprocess.currentText() == "none"


def test_file_open_dialog_from_the_menu_and_cancel(win, qtbot):
    before = len(win.session_cls.opened_requests)
    win.menus.actions["open_with_options"].trigger()
    dialog = win.open_dialog
    assert dialog.isVisible() and not dialog.problem_label.isVisible()
    dialog.reject()
    qtbot.wait(50)
    assert len(win.session_cls.opened_requests) == before


def test_the_window_command_line_opens_with_its_options():
    from protoview.gui.window import initial_request

    req = initial_request("a.pt", "b.npz", arch="resnet18", split=None, nb_proxy=2, preprocess="none")
    assert (req.arch, req.split, req.nb_proxy, req.preprocess) == ("resnet18", None, 2, "none")
    assert initial_request() == OpenRequest()



def test_a_snapshot_shows_the_preprocessing_it_recorded(win, tmp_path):
    from protoview.core.snapshot import read_snapshot, write_snapshot
    from tests._snapshot_writer import make_snapshot

    snap = make_snapshot(1, 30, 4)
    snap.attrs.update(dataset="cifar10 test split", preprocess="cifar10", preprocess_source="option")
    write_snapshot(tmp_path / "run.h5", snap)
    win.show_snapshot(read_snapshot(tmp_path / "run.h5"))
    panel = win.data_panel
    assert panel.preprocess_label.text() == "preprocessing: cifar10 (from: option)"
    assert not panel.isEnabled() and panel.stored_image.pixmap().isNull()
    old = make_snapshot(2, 30, 4)  # written before the preprocessing was recorded
    write_snapshot(tmp_path / "old.h5", old)
    win.show_snapshot(read_snapshot(tmp_path / "old.h5"))
    assert panel.preprocess_label.text() == "preprocessing: not recorded in this snapshot"


def test_the_open_dialog_takes_the_class_order_and_an_encoders_options(qtbot) -> None:
    """File → Open… offers --class-order, --features and --dino-weights, as the command line
    does; the request carries what was chosen, and the defaults change nothing."""
    from protoview.gui.window._open_dialog import OpenDialog
    from protoview.present import OpenRequest

    base = OpenRequest(checkpoint="swav.pth.tar", data="demo:noise:3")
    dialog = OpenDialog(None, base)
    qtbot.addWidget(dialog)
    plain = dialog.request()
    assert (plain.class_order, plain.features, plain.dino_weights) == ("auto", "backbone", None)
    dialog.class_order.setCurrentText("pycil:7")
    dialog.features.setCurrentText("projection")
    dialog.dino_weights.setCurrentText("student")
    chosen = dialog.request()
    assert (chosen.class_order, chosen.features, chosen.dino_weights) == (
        "pycil:7", "projection", "student")
    again = OpenDialog(None, chosen)  # reopened on the last request: the choices are kept
    qtbot.addWidget(again)
    assert again.request() == chosen
