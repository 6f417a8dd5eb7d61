"""File → Open checkpoints…: the checkpoints of a training run (files picked, or a glob
typed), the data they are seen on and the command line's options, for a timeline
(:class:`~protoview.present.timeline.TimelineRequest`)."""

from __future__ import annotations

import os
from dataclasses import replace

from PySide6 import QtCore, QtWidgets

from protoview.gui.panels import PREPROCESS_CHOICES
from protoview.gui.window._menus import file_dialog_filter
from protoview.present import timeline as present_timeline
from protoview.present.timeline import TimelineRequest

CHECKPOINT_FILTER = ("Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors *.pkl *.pth.tar);;"
                     "All files (*)")
#: files named in the summary line before "…"
SHOWN_NAMES = 4


class TimelineDialog(QtWidgets.QDialog):
    """Edit a :class:`TimelineRequest`; :meth:`request` gives the edited one. The line
    under the checkpoints says which files the timeline takes, in its order, as they are
    picked or typed (or that a glob matches no file)."""

    def __init__(self, parent: QtWidgets.QWidget | None, base: TimelineRequest) -> None:
        super().__init__(parent)
        self.setWindowTitle("protoview — open checkpoints")
        self.base = base
        globs = [c for c in base.checkpoints if any(ch in c for ch in "*?[")][:1]
        self.files = QtWidgets.QListWidget()
        self.files.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.files.addItems([c for c in base.checkpoints if c not in globs])
        lines = self.fontMetrics().lineSpacing()
        self.files.setMinimumHeight(5 * lines)
        self.glob = QtWidgets.QLineEdit(globs[0] if globs else "")
        self.glob.setPlaceholderText("or a glob: runs/epoch_*.pt")
        self.glob.setToolTip("files matching it, in natural order (epoch_2 before epoch_10)")
        self.keep_order = QtWidgets.QCheckBox("keep the order given (else natural order: "
                                              "epoch_2 before epoch_10)")
        self.keep_order.setChecked(base.keep_order)
        self.found = QtWidgets.QLabel("")
        self.found.setObjectName("TimelineFound")
        self.found.setWordWrap(True)
        add = QtWidgets.QPushButton("Add files…")
        add.clicked.connect(self._add_files)
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_selected)
        clear = QtWidgets.QPushButton("Clear")
        clear.clicked.connect(self.files.clear)
        buttons_col = QtWidgets.QVBoxLayout()
        for b in (add, self.remove_button, clear):
            buttons_col.addWidget(b)
        buttons_col.addStretch(1)
        files_row = QtWidgets.QHBoxLayout()
        files_row.addWidget(self.files, 1)
        files_row.addLayout(buttons_col)
        self.data = QtWidgets.QLineEdit(base.data)
        self.data.setPlaceholderText("demo · a folder of images · data.npz")
        self.arch = QtWidgets.QLineEdit(base.arch or "")
        self.arch.setPlaceholderText("stored in the checkpoint · resnet18 · timm:NAME · file.py:build_fn")
        self.preprocess = QtWidgets.QComboBox()
        self.preprocess.setEditable(True)
        self.preprocess.addItems(list(PREPROCESS_CHOICES))
        self.preprocess.setCurrentText(base.preprocess or "")
        self.preprocess.lineEdit().setPlaceholderText("the model's own")
        self.nb_proxy = QtWidgets.QSpinBox()
        self.nb_proxy.setRange(0, 10000)
        self.nb_proxy.setSpecialValueText("from the checkpoint or the data")
        self.nb_proxy.setValue(base.nb_proxy or 0)
        self.split = QtWidgets.QLineEdit(base.split or "")
        self.split.setPlaceholderText("found by convention · fc · head.fc")
        self.k = QtWidgets.QSpinBox()
        self.k.setRange(1, 200)
        self.k.setValue(int(base.k))
        self.k.setToolTip("neighbours per sample in feature space, for the movers")
        form = QtWidgets.QFormLayout()
        form.addRow("checkpoints", files_row)
        form.addRow("", self.glob)
        form.addRow("", self.keep_order)
        form.addRow("", self.found)
        form.addRow("data", self._data_row())
        form.addRow("--arch", self.arch)
        form.addRow("--preprocess", self.preprocess)
        form.addRow("--nb-proxy", self.nb_proxy)
        form.addRow("--split", self.split)
        form.addRow("movers' k", self.k)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        self.build_button = self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        intro = QtWidgets.QLabel(
            "The checkpoints of one training run, seen on one dataset: each one's map "
            "aligned from the one before, its accuracy, and the samples that moved.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 50)
        model = self.files.model()
        # bound slots, not lambdas: Qt drops them with the dialog (a list emptied while it
        # is destroyed must not call back into it)
        for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset,
                       self.glob.textChanged, self.keep_order.toggled):
            signal.connect(self._show_found)
        self._show_found()

    def _data_row(self) -> QtWidgets.QWidget:
        row = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.data, 1)
        pick_file = QtWidgets.QPushButton("File…")
        pick_file.clicked.connect(lambda: self._set_if(self.data, QtWidgets.QFileDialog.getOpenFileName(
            self, "Choose a dataset", "", file_dialog_filter("dataset"))[0]))
        pick_folder = QtWidgets.QPushButton("Folder…")
        pick_folder.clicked.connect(lambda: self._set_if(
            self.data, QtWidgets.QFileDialog.getExistingDirectory(self, "Choose an image folder")))
        layout.addWidget(pick_file)
        layout.addWidget(pick_folder)
        return row

    @staticmethod
    def _set_if(edit: QtWidgets.QLineEdit, text: str) -> None:
        if text:
            edit.setText(text)

    def _add_files(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Choose checkpoints", "", CHECKPOINT_FILTER)
        self.add_files(paths)

    def add_files(self, paths: list[str]) -> None:
        """Add checkpoint files (each once)."""
        have = set(self.file_list())
        new = [p for p in dict.fromkeys(paths) if p not in have]
        self.files.addItems(new)

    def _remove_selected(self) -> None:
        for item in self.files.selectedItems():
            self.files.takeItem(self.files.row(item))

    def file_list(self) -> list[str]:
        return [self.files.item(i).text() for i in range(self.files.count())]

    def specs(self) -> list[str]:
        """The files and the glob, as given."""
        glob = self.glob.text().strip()
        return self.file_list() + ([glob] if glob else [])

    @QtCore.Slot()
    def _show_found(self, *_args) -> None:
        """Which files the timeline takes, in order (or what is wrong); Ok only with some."""
        specs = self.specs()
        if not specs:
            text, ok = "Add checkpoint files or type a glob.", False
        else:
            paths, problem = present_timeline.expand(specs, self.keep_order.isChecked())
            ok = bool(paths)
            if problem:
                text = problem
            else:
                names = [os.path.basename(p) for p in paths]
                shown = ", ".join(names[:SHOWN_NAMES]) + (
                    f", … {names[-1]}" if len(names) > SHOWN_NAMES else "")
                text = f"{len(names)} checkpoint{'s' if len(names) != 1 else ''}, in this order: {shown}"
        self.found.setText(text)
        self.build_button.setText("Build timeline")
        self.build_button.setEnabled(ok)

    def request(self) -> TimelineRequest:
        """The request as edited (empty fields: not given)."""
        return replace(
            self.base,
            checkpoints=tuple(self.specs()),
            data=self.data.text().strip() or self.base.data,
            arch=self.arch.text().strip() or None,
            preprocess=self.preprocess.currentText().strip() or None,
            nb_proxy=self.nb_proxy.value() or None,
            split=self.split.text().strip() or None,
            k=int(self.k.value()),
            keep_order=self.keep_order.isChecked(),
        )
