"""The data panel: which dataset is open, how its images become model inputs, and one
input "as the model sees it" next to the image as stored. Changing the preprocessing asks
the window to open the same files again with it (so the features are extracted anew)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

from protoview.gui._qt import pixmap_from_array

#: What the preprocessing box offers (free text is accepted too: fields such as size=32,...).
PREPROCESS_CHOICES = ("", "none", "imagenet", "domainbed", "cifar10", "cifar100")
PREVIEW_SIDE = 96


class DataPanel(QtWidgets.QGroupBox):
    """Emits ``preprocess_requested(str)`` (``""``: the model's own) when Apply is pressed."""

    preprocess_requested = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__("Data", parent)
        self.name_label = QtWidgets.QLabel("—")
        self.name_label.setObjectName("DataName")
        self.preprocess_label = QtWidgets.QLabel("")
        self.preprocess_label.setObjectName("PreprocessLine")
        self.preprocess_label.setWordWrap(True)
        self.preprocess_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stored_image = self._image_label("the image as stored")
        self.seen_image = self._image_label("the same image as the model's input (normalisation undone)")
        self.range_label = QtWidgets.QLabel("")
        self.range_label.setWordWrap(True)
        self.sample = QtWidgets.QSpinBox()
        self.sample.setToolTip("which sample to preview")
        self.sample.valueChanged.connect(self.show_preview)
        self.preprocess = QtWidgets.QComboBox()
        self.preprocess.setEditable(True)
        self.preprocess.addItems(list(PREPROCESS_CHOICES))
        self.preprocess.lineEdit().setPlaceholderText("the model's own")
        self.preprocess.setToolTip(
            "none (the data are model inputs), a preset, or fields: size=32,mean=0.5,std=0.25, "
            "crop=, resize=exact|short-side, channels=1|3, interpolation=, scale=")
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip("open the same files with this preprocessing (extracts again)")
        self.apply_button.clicked.connect(
            lambda: self.preprocess_requested.emit(self.preprocess.currentText().strip()))
        self._preview: Callable[[int], tuple] | None = None

        images = QtWidgets.QGridLayout()
        images.addWidget(self.stored_image, 0, 0)
        images.addWidget(self.seen_image, 0, 1)
        for column, text in enumerate(("stored", "as the model sees it")):
            caption = QtWidgets.QLabel(text)
            caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignHCenter)
            images.addWidget(caption, 1, column)
        edit = QtWidgets.QHBoxLayout()
        edit.addWidget(self.preprocess, 1)
        edit.addWidget(self.apply_button)
        form = QtWidgets.QFormLayout()
        form.addRow("sample", self.sample)
        form.addRow("preprocess", edit)
        column = QtWidgets.QVBoxLayout(self)
        column.addWidget(self.name_label)
        column.addWidget(self.preprocess_label)
        column.addLayout(images)
        column.addWidget(self.range_label)
        column.addLayout(form)

    @staticmethod
    def _image_label(tip: str) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel()
        label.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        label.setToolTip(tip)
        return label

    # ------------------------------------------------------------ filling
    def show_data(self, name: str, preprocess: str, source: str, option: str | None,
                  preview: Callable[[int], tuple] | None, count: int) -> None:
        """A newly opened dataset: its name, its preprocessing (and where it came from), the
        option it was opened with (None: the model's own) and its preview function."""
        self._set_name(name)
        if preprocess:
            origin = f" (from: {source})" if source else ""
            if source == "default":
                origin += " — nothing says what this model expects: set it below if this is wrong"
            self.preprocess_label.setText(f"preprocessing: {preprocess}{origin}")
        else:
            self.preprocess_label.setText("preprocessing: none here (precomputed features)")
        self.preprocess.setCurrentText(option or "")
        self._preview = preview
        self.sample.blockSignals(True)
        self.sample.setRange(0, max(0, count - 1))
        self.sample.setValue(0)
        self.sample.blockSignals(False)
        self.setEnabled(True)
        self.show_preview(0)

    def show_snapshot(self, name: str, option: str, source: str) -> None:
        """A snapshot: what it records (no images to preview)."""
        self._set_name(name)
        recorded = f"preprocessing: {option}" + (f" (from: {source})" if source else "") if option else (
            "preprocessing: not recorded in this snapshot")
        self.preprocess_label.setText(recorded)
        self._preview = None
        self._clear_images("a snapshot holds no images")
        self.setEnabled(False)

    def _set_name(self, name: str) -> None:
        """The dataset's whole description, wrapped (an elided middle hid the shift)."""
        self.name_label.setWordWrap(True)
        self.name_label.setText(name or "—")
        self.name_label.setToolTip(name)

    def _clear_images(self, why: str) -> None:
        self.stored_image.clear()
        self.seen_image.clear()
        self.range_label.setText(why)

    def show_preview(self, index: int) -> None:
        if self._preview is None:
            self._clear_images("no images to preview (precomputed features)")
            return
        try:
            stored, seen, (low, high) = self._preview(int(index))[:3]
        except Exception as exc:  # noqa: BLE001 - a preview is cosmetic: say why, never fail
            self._clear_images(f"no preview: {type(exc).__name__}: {exc}")
            return
        self.stored_image.setPixmap(pixmap_from_array(stored, PREVIEW_SIDE))
        self.seen_image.setPixmap(pixmap_from_array(seen, PREVIEW_SIDE))
        height, width = seen.shape[:2]
        self.range_label.setText(f"model input {width}x{height}, values {low:.3g} … {high:.3g}")
