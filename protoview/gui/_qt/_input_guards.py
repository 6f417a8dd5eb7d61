"""Keyboard and wheel guards of the main window (private).

- :class:`SingleKeyShortcuts`: the window's one-key shortcuts (Space steps, L cycles the
  colouring, ...) must work while a spin box or a drop-down has the focus. Qt gives a
  focused editor the first say on every printable key (a ``ShortcutOverride`` event), so
  a spin box would swallow Space and L although it cannot use them. The filter refuses
  that override for those keys when the focus is in a widget that takes no such text.
- :class:`WheelGuard`: the wheel over the Controls panel scrolls the panel; it changes a
  spin box or a drop-down only when that widget has the keyboard focus (clicked first).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

_Key = QtCore.Qt.Key
# the one-key shortcuts of the window (SHORTCUTS in gui/window/_menus.py); digits are left
# alone: a spin box needs them
SINGLE_KEYS = frozenset({_Key.Key_Space, _Key.Key_L, _Key.Key_R, _Key.Key_F, _Key.Key_N,
                         _Key.Key_B})


def _takes_no_text(widget: QtCore.QObject | None) -> bool:
    """A focused widget for which Space and letters mean nothing: a spin box (or its
    line edit), a line edit that accepts digits only, a drop-down that is not editable."""
    if isinstance(widget, QtWidgets.QLineEdit) and isinstance(
            widget.parentWidget(), QtWidgets.QAbstractSpinBox):
        return True
    if isinstance(widget, QtWidgets.QAbstractSpinBox):
        return True
    if isinstance(widget, QtWidgets.QLineEdit):
        return isinstance(widget.validator(), QtGui.QIntValidator)
    if isinstance(widget, QtWidgets.QComboBox):
        return not widget.isEditable()
    return False


class SingleKeyShortcuts(QtCore.QObject):
    """Installed on the QApplication by the window (removed when it closes)."""

    def __init__(self, window: QtWidgets.QWidget) -> None:
        super().__init__(window)
        self._window = window

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() != QtCore.QEvent.Type.ShortcutOverride:
            return False
        if event.key() not in SINGLE_KEYS:
            return False
        mods = event.modifiers() & ~QtCore.Qt.KeyboardModifier.KeypadModifier
        if mods != QtCore.Qt.KeyboardModifier.NoModifier:
            return False
        if not isinstance(obj, QtWidgets.QWidget) or obj.window() is not self._window:
            return False
        if not _takes_no_text(obj):
            return False
        event.ignore()
        return True  # the override is refused: the window's shortcut runs


class WheelGuard(QtCore.QObject):
    """Install on each spin box / drop-down of a scrolled panel (:func:`guard_wheel`)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() != QtCore.QEvent.Type.Wheel or obj.hasFocus():
            return False
        area = obj.parentWidget()
        while area is not None and not isinstance(area, QtWidgets.QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:
            QtWidgets.QApplication.sendEvent(area.verticalScrollBar(), event)
        event.accept()
        return True  # never delivered to the unfocused spin box


def guard_wheel(panel: QtWidgets.QWidget) -> WheelGuard:
    """Spin boxes and drop-downs in ``panel`` take focus by click or Tab only (not by
    the wheel) and ignore the wheel until focused; the wheel scrolls the panel instead."""
    guard = WheelGuard(panel)
    for w in panel.findChildren(QtWidgets.QAbstractSpinBox) + panel.findChildren(
            QtWidgets.QComboBox):
        w.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        w.installEventFilter(guard)
    return guard
