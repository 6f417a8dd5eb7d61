"""File → Open…: a checkpoint and a dataset with the command line's options (``--arch``,
``--split``, ``--nb-proxy``, ``--preprocess``, ``--class-order``; for a self-supervised
encoder ``--features`` and ``--dino-weights``). The window also shows it, with the problem
on top, when a file cannot be opened without one of them (a plain state_dict without its
architecture, a head that cannot be found, proxies that do not fit the data, inputs that
need ``--preprocess none``, ...)."""

from __future__ import annotations

import html
import re
from dataclasses import replace

from PySide6 import QtCore, QtWidgets

from protoview.gui.panels import PREPROCESS_CHOICES
from protoview.gui.window._menus import file_dialog_filter
from protoview.present import OpenRequest

#: ``ProtoviewError.needs`` entries -> the field that can fix them.
FIELDS = ("arch", "split", "nb_proxy", "preprocess")
#: the ``--class-order`` words offered (``pycil:SEED`` and a file can be typed)
CLASS_ORDERS = ("auto", "data", "pycil")


class OpenDialog(QtWidgets.QDialog):
    """Edit an :class:`OpenRequest`; :meth:`request` gives the edited one."""

    def __init__(self, parent: QtWidgets.QWidget | None, base: OpenRequest, problem: str = "",
                 needs: tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.setWindowTitle("protoview — open")
        self.base = base
        self.problem = problem
        self.problem_label = QtWidgets.QLabel()
        self.problem_label.setObjectName("OpenProblem")
        self.problem_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        text = re.sub(r"(--[a-z][a-z-]*)", r'<span style="white-space:nowrap">\1</span>', html.escape(problem))
        self.problem_label.setText(f"<b>Not opened yet.</b> {text}")
        self.problem_label.setWordWrap(True)
        self.problem_label.setVisible(bool(problem))
        self.checkpoint = QtWidgets.QLineEdit(base.checkpoint)
        self.data = QtWidgets.QLineEdit(base.data)
        self.arch = QtWidgets.QLineEdit(base.arch or "")
        self.arch.setPlaceholderText("stored in the checkpoint · resnet18 · timm:NAME · file.py:build_fn")
        self.split = QtWidgets.QLineEdit(base.split or "")
        self.split.setPlaceholderText("found by convention · fc · head.fc")
        self.nb_proxy = QtWidgets.QSpinBox()
        self.nb_proxy.setRange(0, 10000)
        self.nb_proxy.setSpecialValueText("from the checkpoint or the data")
        self.nb_proxy.setValue(base.nb_proxy or 0)
        self.preprocess = QtWidgets.QComboBox()
        self.preprocess.setEditable(True)
        self.preprocess.addItems(list(PREPROCESS_CHOICES))
        self.preprocess.setCurrentText(base.preprocess or "")
        self.preprocess.lineEdit().setPlaceholderText("the model's own")
        self.preprocess.setToolTip(
            "none (the data are model inputs), imagenet, domainbed, cifar10, cifar100, or fields: "
            "size=32,mean=0.5,std=0.25, crop=, resize=exact|short-side, channels=1|3")
        self.class_order = QtWidgets.QComboBox()
        self.class_order.setEditable(True)
        self.class_order.addItems(list(CLASS_ORDERS))
        self.class_order.setCurrentText(base.class_order or "auto")
        self.class_order.setToolTip(
            "the head's class order when it is not the data's: pycil (PyCIL's seeded order, "
            "seed 1993; pycil:SEED for another), a file of class indices, data (the data's "
            "own); auto: pycil for a PyCIL checkpoint, else the data's")
        self.features = QtWidgets.QComboBox()
        self.features.addItems(["backbone", "projection"])
        self.features.setCurrentText(base.features or "backbone")
        self.features.setToolTip(
            "a self-supervised encoder's features: backbone (what its paper evaluates) or "
            "projection (the projection head's output, where SwAV's and DINO's prototypes live)")
        self.dino_weights = QtWidgets.QComboBox()
        self.dino_weights.addItems(["teacher", "student"])
        self.dino_weights.setCurrentText(base.dino_weights or "teacher")
        self.dino_weights.setToolTip("which network of a DINO checkpoint (default: the teacher)")
        form = QtWidgets.QFormLayout()
        form.addRow("checkpoint", self._with_browse(self.checkpoint, "checkpoint"))
        form.addRow("data", self._with_browse(self.data, "dataset", folder=True))
        form.addRow("--arch", self.arch)
        form.addRow("--split", self.split)
        form.addRow("--nb-proxy", self.nb_proxy)
        form.addRow("--preprocess", self.preprocess)
        form.addRow("--class-order", self.class_order)
        form.addRow("--features", self.features)
        form.addRow("--dino-weights", self.dino_weights)
        self.buttons = buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Open | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.problem_label)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 50)
        widgets = {"arch": self.arch, "split": self.split, "nb_proxy": self.nb_proxy,
                   "preprocess": self.preprocess}
        first = next((widgets[n] for n in needs if n in widgets), None)
        if first is not None:
            QtCore.QTimer.singleShot(0, first.setFocus)

    def _with_browse(self, edit: QtWidgets.QLineEdit, kind: str, folder: bool = False) -> QtWidgets.QWidget:
        row = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        browse = QtWidgets.QPushButton("File…")

        def pick_file() -> None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, f"Choose a {kind}", "", file_dialog_filter(kind))
            if path:
                edit.setText(path)

        browse.clicked.connect(pick_file)
        layout.addWidget(browse)
        if folder:
            pick = QtWidgets.QPushButton("Folder…")
            pick.clicked.connect(lambda: edit.setText(
                QtWidgets.QFileDialog.getExistingDirectory(self, "Choose an image folder") or edit.text()))
            layout.addWidget(pick)
        return row

    def request(self) -> OpenRequest:
        """The request as edited (empty fields: not given)."""
        checkpoint = self.checkpoint.text().strip() or self.base.checkpoint
        changed = checkpoint != self.base.checkpoint
        return replace(
            self.base,
            checkpoint=checkpoint,
            data=self.data.text().strip() or self.base.data,
            arch=self.arch.text().strip() or None,
            split=self.split.text().strip() or None,
            nb_proxy=self.nb_proxy.value() or None,
            preprocess=self.preprocess.currentText().strip() or None,
            class_order=self.class_order.currentText().strip() or "auto",
            features=self.features.currentText(),
            dino_weights=None if self.dino_weights.currentText() == "teacher"  # the default
            else self.dino_weights.currentText(),
            trust=False if changed else self.base.trust,
        )
