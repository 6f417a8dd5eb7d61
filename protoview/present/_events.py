"""Change events without Qt (as napari's ``EventedModel``, much smaller): an :class:`Event`
per field calls its callbacks with the new value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class Event:
    """Callbacks called, in the order connected, with a field's new value."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[Any], None]] = []

    def connect(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[Any], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: Any) -> None:
        for callback in list(self._callbacks):
            callback(value)


class Events:
    """One :class:`Event` per name: ``events.state.connect(...)``."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._events = {name: Event(name) for name in names}

    def __getattr__(self, name: str) -> Event:
        try:
            return self.__dict__["_events"][name]
        except KeyError:
            raise AttributeError(f"no event {name!r}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._events)


_PLAIN = (str, int, float, bool, type(None))


def changed(old: Any, new: Any) -> bool:
    """Whether a field changed: values compare by value (numbers, text, tuples of them,
    arrays by their elements), everything else (states, lists of rows) by identity, so
    that comparing never costs more than a glance and never meets an array's truth value."""
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return not (isinstance(old, np.ndarray) and isinstance(new, np.ndarray)
                    and old.shape == new.shape and np.array_equal(old, new))
    if isinstance(old, _PLAIN) and isinstance(new, _PLAIN):
        return old != new and not (old != old and new != new)  # NaN == NaN here
    if isinstance(old, tuple) and isinstance(new, tuple) and all(
            isinstance(v, _PLAIN) for v in (*old, *new)):
        return old != new
    return old is not new
