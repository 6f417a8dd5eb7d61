"""The chosen adaptation method's parameter controls, generated from its declared params.

:class:`MethodParamsForm` holds one page per registered method (a stacked widget), each
with a control for every parameter the method declares with ``window=True``
(:mod:`protoview.core.adapt.params`): a spin box with the declared range for a number, a
drop-down for a choice, a check box for a bool, a line edit for text. The window's other
parameters keep their defaults (the CLI's ``--param`` sets any of them). Each page starts
at its method's own defaults and keeps its values while another method is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6 import QtWidgets

from protoview.present.methods import Param, method_names, window_params

_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e9


def _spin_range(param: Param, step: float, limit: float) -> tuple[float, float]:
    """The control's range: ``window_range``, else the declared bounds (open ends moved in
    by one step), the special values included."""
    if param.window_range is not None:
        low, high = param.window_range
    else:
        low = -limit if param.low is None else param.low + (step if param.low_open else 0)
        high = limit if param.high is None else param.high - (step if param.high_open else 0)
    specials = [v for v, _ in param.special]
    return min([low, *specials]), max([high, *specials])


def make_control(param: Param) -> QtWidgets.QWidget:
    """A widget for ``param`` showing its default; an optional number shows ``none`` at
    the bottom of its range (one step below the valid values)."""
    tip = f"{param.name}: {param.help} ({param.spec()})"
    if param.kind in ("float", "int"):
        if param.kind == "float":
            w: Any = QtWidgets.QDoubleSpinBox()
            w.setDecimals(param.decimals)
            step: float = 10.0 ** (2 - param.decimals)
            low, high = _spin_range(param, 10.0**-param.decimals, _FLOAT_LIMIT)
        else:
            w, step = QtWidgets.QSpinBox(), 1
            low, high = (int(v) for v in _spin_range(param, 1, _INT_LIMIT - 1))
        w.setSingleStep(step)
        if param.optional:
            low -= step
            w.setSpecialValueText("none")
        w.setRange(low, high)
        w.setValue(low if param.default is None else param.default)
    elif param.kind == "bool":
        w = QtWidgets.QCheckBox()
        w.setChecked(bool(param.default))
    elif param.kind == "choice":
        w = QtWidgets.QComboBox()
        w.addItems(list(param.choices))
        w.setCurrentText(str(param.default))
    else:  # text: an optional one left empty is none (its placeholder says so)
        w = QtWidgets.QLineEdit("" if param.default is None else str(param.default))
        if param.optional:
            w.setPlaceholderText("none")
    w.setToolTip(tip)
    return w


def control_value(param: Param, w: QtWidgets.QWidget) -> Any:
    """The value ``w`` (made by :func:`make_control`) holds, typed as ``param`` wants it."""
    if isinstance(w, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
        if param.optional and w.value() == w.minimum():
            return None
        return int(w.value()) if param.kind == "int" else float(w.value())
    if isinstance(w, QtWidgets.QCheckBox):
        return w.isChecked()
    if isinstance(w, QtWidgets.QComboBox):
        return w.currentText()
    assert isinstance(w, QtWidgets.QLineEdit)
    text = w.text().strip()
    return None if param.optional and not text else text


class MethodParamsForm(QtWidgets.QWidget):
    """The window parameters of the chosen method (see the module docstring).

    Parameters
    ----------
    methods:
        The methods to build pages for (default: every registered method).
    """

    def __init__(self, methods: Sequence[str] | None = None, parent=None) -> None:
        super().__init__(parent)
        self._stack = QtWidgets.QStackedWidget(self)
        self._labels: list[QtWidgets.QLabel] = []
        self._pages: dict[str, dict[str, tuple[Param, QtWidgets.QWidget]]] = {}
        for name in methods if methods is not None else method_names():
            self._pages[name] = self._add_page(window_params(name))
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._stack)
        fixed = QtWidgets.QSizePolicy.Policy.Fixed
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, fixed)
        self._method = next(iter(self._pages), "")
        if self._method:
            self.set_method(self._method)

    def _add_page(self, params: Sequence[Param]) -> dict[str, tuple[Param, QtWidgets.QWidget]]:
        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(page)
        form.setContentsMargins(0, 0, 0, 0)
        controls = {}
        for param in params:
            controls[param.name] = (param, make_control(param))
            self._labels.append(QtWidgets.QLabel(param.name))
            form.addRow(self._labels[-1], controls[param.name][1])
        if not params:
            note = QtWidgets.QLabel("no parameters to set")
            note.setEnabled(False)
            form.addRow(note)
        self._stack.addWidget(page)
        return controls

    def align_labels(self, outer: QtWidgets.QFormLayout) -> None:
        """One width for the labels of ``outer`` (the form this one is a row of) and of
        every page, so that all controls start at the same x."""
        role = QtWidgets.QFormLayout.ItemRole.LabelRole
        items = [outer.itemAt(row, role) for row in range(outer.rowCount())]
        labels = [i.widget() for i in items if i is not None and i.widget() is not None]
        labels += self._labels
        width = max((label.sizeHint().width() for label in labels), default=0)
        for label in labels:
            label.setMinimumWidth(width)

    def set_method(self, name: str) -> None:
        """Show ``name``'s controls. Raises ``KeyError`` for a method without a page."""
        if name not in self._pages:
            raise KeyError(f"no controls for method {name!r}")
        index = list(self._pages).index(name)
        self._stack.setCurrentIndex(index)
        self._method = name
        # the stack sizes to the shown page only (Qt's stacked layout skips Ignored pages):
        # a method with one control no longer leaves the room of TSD's five below it
        ignored, preferred = QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        for i in range(self._stack.count()):
            policy = preferred if i == index else ignored
            self._stack.widget(i).setSizePolicy(policy, policy)
        self._stack.updateGeometry()
        self.updateGeometry()

    def widget(self, name: str) -> QtWidgets.QWidget | None:
        """The control of parameter ``name`` of the shown method (None if it has none)."""
        entry = self._pages.get(self._method, {}).get(name)
        return entry[1] if entry is not None else None

    def values(self) -> tuple[tuple[str, Any], ...]:
        """``((name, value), ...)`` of the shown method's controls, in declared order."""
        return tuple(
            (name, control_value(param, w))
            for name, (param, w) in self._pages[self._method].items()
        )
