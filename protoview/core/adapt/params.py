"""An adaptation method's parameters, declared once beside its class (torch-free).

Each adapter class lists its parameters as a tuple of :class:`Param` (``params``); every
surface reads them: the adapter's ``__init__`` validates through :meth:`Param.check` (the
one place a value is checked), ``protoview adapt --help`` and ``protoview methods`` print
:meth:`Param.describe`, ``--param NAME=VALUE`` goes through :meth:`Param.parse`, and the
window builds a control for each parameter declared with ``window=True``.

The parameters several methods share (``steps``, ``episodic``, ``variant``, a learning rate)
are declared here once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from protoview.errors import ParameterError

Kind = Literal["float", "int", "bool", "choice", "text"]
KINDS: tuple[str, ...] = ("float", "int", "bool", "choice", "text")
#: The variants of a method that has a flaw to correct: the authors' code, or it fixed.
VARIANTS: tuple[str, ...] = ("reference", "corrected")
#: Which parameters a method with a free parameter group (TSD) updates.
UPDATE_CHOICES: tuple[str, ...] = ("all", "affine", "body", "head")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Param:
    """One parameter of an adaptation method.

    Parameters
    ----------
    name:
        The keyword the adapter's ``__init__`` takes (``lr``, ``filter_K``).
    default:
        Its default; must equal the ``__init__`` signature's (a test checks every method).
    help:
        One line saying what it does.
    kind:
        ``float`` (an int is accepted and returned as float), ``int`` (a bool is refused),
        ``bool``, ``choice`` (one of ``choices``) or ``text``.
    low, high:
        Bounds of a number (``None``: unbounded); ``low_open`` / ``high_open`` exclude them.
    choices:
        The words a ``choice`` takes.
    optional:
        ``None`` is allowed (the method's own rule decides, e.g. EATA's ``e_margin``).
    special:
        Values outside the bounds that mean something: ``((-1, "all"),)`` for ``filter_K``.
    casefold:
        A ``choice`` given in any case is taken in lower case (LAME's ``affinity='kNN'``).
    subject:
        How the message names the value (``"the learning rate"``); default: nothing, the
        error's ``where`` names the parameter.
    window:
        Whether the window shows a control for it (the others keep their defaults there).
    window_range:
        The window's spin-box range where the valid range is open or unbounded.
    decimals:
        Decimals of the window's spin box for a ``float`` (its step is ``10**(2 - decimals)``).
    """

    name: str
    default: Any
    help: str
    kind: Kind = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    special: tuple[tuple[float, str], ...] = ()
    casefold: bool = False
    subject: str = ""
    window: bool = False
    window_range: tuple[float, float] | None = None
    decimals: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"{self.name}: a choice (and only a choice) lists its choices")
        self.check(self.default)  # a declaration whose default it refuses is a typo

    # ---- validation -------------------------------------------------------------------------
    def requirement(self) -> str:
        """What a valid value is, as the error message says it (``a finite number > 0``)."""
        specials = "".join(f", or {_number(v)} for {meaning}" for v, meaning in self.special)
        return self._range_text() + specials

    def _range_text(self) -> str:
        if self.kind == "bool":
            return "True or False"
        if self.kind == "text":
            return "a text"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        noun = "an integer" if self.kind == "int" else "a number"
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if math.isinf(high) and math.isinf(low):
            text = "an integer" if self.kind == "int" else "a finite number"
        elif math.isinf(high):
            sign = ">" if self.low_open else ">="
            text = f"{noun if self.kind == 'int' else 'a finite number'} {sign} {_number(low)}"
        elif math.isinf(low):
            sign = "<" if self.high_open else "<="
            text = f"{noun if self.kind == 'int' else 'a finite number'} {sign} {_number(high)}"
        else:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{noun} in {left}{_number(low)}, {_number(high)}{right}"
        return text

    def _in_bounds(self, value: float) -> bool:
        if any(value == v for v, _ in self.special):
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def check(self, value: Any) -> Any:
        """``value`` if valid (a float for ``float``, lower case for a ``casefold`` choice).

        Raises
        ------
        ParameterError
            ``where`` is the parameter's name; the problem says what is valid and what was
            given (``must be an integer >= 1, or -1 for all, got 0``).
        """
        if value is None and self.optional:
            return None
        if self.kind == "choice":
            word = value.lower() if self.casefold and isinstance(value, str) else value
            if word not in self.choices:
                raise ParameterError(
                    self.name, f"unknown choice {word!r}; choose one of {', '.join(self.choices)}"
                )
            return word
        ok = {
            "bool": lambda: isinstance(value, bool),
            "text": lambda: isinstance(value, str),
            "int": lambda: isinstance(value, int) and not isinstance(value, bool),
            "float": lambda: _is_number(value) and math.isfinite(value),
        }[self.kind]()
        if ok and self.kind in ("int", "float"):
            ok = self._in_bounds(value)
        if not ok:
            subject = f"{self.subject} " if self.subject else ""
            raise ParameterError(self.name, f"{subject}must be {self.requirement()}, got {value!r}")
        return float(value) if self.kind == "float" else value

    # ---- text -------------------------------------------------------------------------------
    def parse(self, text: str) -> Any:
        """The value of ``--param NAME=TEXT`` for this parameter, not yet checked.

        ``none`` is None; a ``bool`` takes ``true`` / ``false``, a number its digits (an
        ``int`` parameter given ``2.5`` gets 2.5 and :meth:`check` refuses it with the
        usual message); a ``choice`` or ``text`` is the text.
        """
        text = text.strip()
        if text.lower() == "none":
            return None
        if self.kind in ("choice", "text"):
            return text
        if self.kind == "float":
            try:
                return float(text)
            except ValueError:
                return parse_value(text)
        return parse_value(text)

    def spec(self) -> str:
        """Its type and range for help text: ``float > 0``, ``int >= 1 (-1 = all)``."""
        if self.kind == "bool":
            text = "true|false"
        elif self.kind == "choice":
            text = "|".join(self.choices)
        elif self.kind == "text":
            text = "text"
        else:
            text = self._range_text()
            text = text.replace("an integer", "int").replace("a finite number", "float")
            text = text.replace("a number", "float")
            text += "".join(f" or {_number(v)} = {meaning}" for v, meaning in self.special)
        return text + (" or none" if self.optional else "")

    def describe(self) -> str:
        """One line for help: ``lr (float > 0, default 0.001): Adam's learning rate``."""
        return f"{self.name} ({self.spec()}, default {format_value(self.default)}): {self.help}"


def format_value(value: Any) -> str:
    """A value as the command line writes it: ``none``, ``true``, ``0.0001``, ``rbf``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = _number(value)
        return text if float(text) == value else repr(value)  # 1/3 reads back as 1/3
    return str(value)


def parse_value(text: str) -> Any:
    """A value from text when its parameter is not known: ``true`` / ``false`` -> bool,
    ``none`` -> None, then int, float, else the text itself."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def checked(params: Sequence[Param], **values: Any) -> tuple[Any, ...]:
    """Each of ``values`` through its declared :class:`Param` (in the order given).

    ``self.lr, self.steps = checked(self.params, lr=lr, steps=steps)``: an adapter's one
    place of validation. A name not in ``params`` is a programming error (``KeyError``).
    """
    by_name = {p.name: p for p in params}
    missing = [name for name in values if name not in by_name]
    if missing:
        raise KeyError(f"not declared in params: {', '.join(missing)}")
    return tuple(by_name[name].check(value) for name, value in values.items())


def with_default(param: Param, default: Any, **changes: Any) -> Param:
    """``param`` with another default (and any other field changed)."""
    return dataclasses.replace(param, default=default, **changes)


# ---- parameters several methods share ----------------------------------------------------
LR = Param(
    "lr", 1e-4, "learning rate of the method's optimiser", low=0.0, low_open=True,
    subject="the learning rate", window=True, window_range=(1e-6, 1.0), decimals=6,
)  # fmt: skip
STEPS = Param("steps", 1, "updates per batch", kind="int", low=1)
EPISODIC = Param("episodic", False, "reset to the source model before every batch", kind="bool")
VARIANT = Param(
    "variant", "reference", "reference = the authors' code, corrected = its flaws fixed",
    kind="choice", choices=VARIANTS, window=True,
)  # fmt: skip
FILTER_K = Param(
    "filter_K", 100, "supports kept per class (the lowest-entropy ones)", kind="int", low=1,
    special=((-1, "all"),), window=True, window_range=(-1, 100_000),
)  # fmt: skip
