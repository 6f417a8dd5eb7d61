"""A test stream's settings, :class:`StreamSpec`, and the ``--stream`` text that names them
(:func:`parse_stream`), the toolkit's setting names included (:data:`TOOLKIT_SETTINGS`).
What each setting means: :mod:`protoview.core.adapt.stream`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from protoview.errors import ParameterError

RESETS = ("online", "episodic", "reset_each_shift")
DOMAIN_ORDERS = ("mixed", "continual", "gradual")
LABEL_ORDERS = ("iid", "sorted", "dirichlet")
#: The toolkit's severities of each corruption in its gradual setting (``test_time.py`` l. 62).
GRADUAL_SEVERITIES = (1, 2, 3, 4, 5, 4, 3, 2, 1)
#: RoTTA's default concentration (``_C.LOADER.SAMPLER.GAMMA``).
DEFAULT_CONCENTRATION = 0.1
#: The toolkit's ``cfg.SETTING`` names and the ``--stream`` words they stand for (words in
#: parentheses hold unless the text names another choice of their kind).
TOOLKIT_SETTINGS: dict[str, tuple[str, ...]] = {
    "continual": ("continual",),
    "mixed_domains": ("mixed",),
    "gradual": ("gradual",),
    "correlated": ("(continual)", "(sorted)"),
    "mixed_domains_correlated": ("mixed", "(sorted)"),
    "gradual_correlated": ("gradual", "(sorted)"),
    "reset_each_shift": ("reset_each_shift", "(continual)"),
    "reset_each_shift_correlated": ("reset_each_shift", "(continual)", "(sorted)"),
}
_WHERE = "--stream"
_USAGE = (
    "a comma-separated list of online|episodic|reset_each_shift, mixed|continual|gradual, "
    "iid|sorted|dirichlet=ALPHA and samples=N, or a setting of the toolkit (correlated, "
    "gradual_correlated, reset_each_shift_correlated, ...; e.g. continual,dirichlet=0.1)"
)
_SPELLINGS = {"sorted_by_class": "sorted", "class_sorted": "sorted", "i.i.d.": "iid",
              "num_ex": "samples"}


@dataclass(frozen=True)
class StreamSpec:
    """One test stream (see :mod:`protoview.core.adapt.stream`).

    episodic: reset the adapter before every batch; reset_each_shift: before the first batch
    of every shift (needs ``continual`` or ``gradual``); domains: ``mixed`` | ``continual``
    | ``gradual``; labels: ``iid`` | ``sorted`` | ``dirichlet``; concentration: Dirichlet's
    ALPHA (> 0; used with ``dirichlet`` only); samples: at most this many samples of each
    segment (None: all).
    """

    episodic: bool = False
    domains: str = "mixed"
    labels: str = "iid"
    concentration: float = DEFAULT_CONCENTRATION
    reset_each_shift: bool = False
    samples: int | None = None

    def __post_init__(self) -> None:
        if self.domains not in DOMAIN_ORDERS:
            raise ParameterError(_WHERE, f"unknown domain order {self.domains!r}; {_USAGE}")
        if self.labels not in LABEL_ORDERS:
            raise ParameterError(_WHERE, f"unknown label order {self.labels!r}; {_USAGE}")
        alpha = self.concentration
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
            math.isfinite(alpha) and alpha > 0
        ):
            raise ParameterError(
                _WHERE, f"the Dirichlet concentration must be a finite number > 0, got {alpha!r}"
            )
        if self.episodic and self.reset_each_shift:
            raise ParameterError(_WHERE, "episodic and reset_each_shift are both given; "
                                         "choose one reset setting")
        if self.reset_each_shift and self.domains == "mixed":
            raise ParameterError(
                _WHERE, "reset_each_shift resets the model where the shift changes, which a "
                        "mixed stream never does; take the shifts in sequence (continual or "
                        "gradual)")
        n = self.samples
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ParameterError(_WHERE, f"samples must be a whole number >= 1, got {n!r}")

    @property
    def reset(self) -> str:
        """``online`` | ``episodic`` | ``reset_each_shift``."""
        return "episodic" if self.episodic else (
            "reset_each_shift" if self.reset_each_shift else "online")

    @property
    def label_correlated(self) -> bool:
        return self.labels != "iid"

    @property
    def in_sequence(self) -> bool:
        """The domains come one after another (``continual`` or ``gradual``)."""
        return self.domains != "mixed"

    def text(self) -> str:
        """The canonical ``--stream`` text: the non-default choices (``online`` when none)."""
        words = [] if self.reset == "online" else [self.reset]
        if self.domains != "mixed":
            words.append(self.domains)
        if self.labels == "sorted":
            words.append("sorted")
        elif self.labels == "dirichlet":
            words.append(f"dirichlet={self.concentration:g}")
        if self.samples is not None:
            words.append(f"samples={self.samples}")
        return ",".join(words) or "online"

    def describe(self) -> str:
        """For people: ``"continual, Dirichlet label shift (alpha 0.1)"``."""
        parts = [{"online": "online", "episodic": "episodic (reset before every batch)",
                  "reset_each_shift": "reset at each shift"}[self.reset]]
        if self.domains == "continual":
            parts.append("domains in sequence")
        elif self.domains == "gradual":
            parts.append("gradual severities 1-5-1 per corruption")
        if self.labels == "sorted":
            parts.append("sorted by class")
        elif self.labels == "dirichlet":
            parts.append(f"Dirichlet label shift (alpha {self.concentration:g})")
        if self.samples is not None:
            parts.append(f"at most {self.samples} samples per domain")
        return ", ".join(parts)

    def __str__(self) -> str:
        return self.text()


ONLINE = StreamSpec()


def _words(text: str) -> list[tuple[str, str, str, str]]:
    """(typed word, name, has "=", value) of each entry of a ``--stream`` text."""
    words = []
    for raw in str(text).split(","):
        typed = raw.strip()
        if not typed:
            raise ParameterError(_WHERE, f"{text!r} has an empty entry; expected {_USAGE}")
        name, sep, value = typed.lower().replace(":", "=").partition("=")
        name = name.strip().replace("-", "_")
        words.append((typed, _SPELLINGS.get(name, name), sep, value.strip()))
    return words


def _kind(name: str) -> str | None:
    for kind, names in (("reset", RESETS), ("domains", DOMAIN_ORDERS), ("labels", LABEL_ORDERS)):
        if name in names:
            return kind
    return "samples" if name == "samples" else None


def names_domain_order(text: str | StreamSpec | None) -> bool:
    """Whether ``--stream`` text names an order of the domains (``mixed``, ``continual``,
    ``gradual``, or a setting of the toolkit, each of which implies one), e.g. for
    ``protoview compare``, which then runs over all shifts together."""
    if isinstance(text, StreamSpec):
        return text.in_sequence
    if text is None or not str(text).strip():
        return False
    return any(_kind(name) == "domains" or name in TOOLKIT_SETTINGS
               for _typed, name, _sep, _value in _words(text))


def parse_stream(text: str | StreamSpec | None) -> StreamSpec:
    """A :class:`StreamSpec` from ``--stream`` text (None or ``""``: online).

    Raises :class:`ParameterError` naming ``--stream`` for an unknown word, two choices of
    the same kind (``online,episodic``), a concentration that is not a number > 0, a
    sample count that is not a whole number >= 1, or ``reset_each_shift`` with ``mixed``.
    """
    if isinstance(text, StreamSpec):
        return text
    if text is None or not str(text).strip():
        return ONLINE
    chosen: dict[str, tuple[str, str]] = {}  # kind -> (choice, the word that chose it)
    implied: dict[str, tuple[str, str]] = {}
    concentration, samples = DEFAULT_CONCENTRATION, None
    for typed, name, sep, value in _words(text):
        kind = _kind(name)
        if kind is None and name not in TOOLKIT_SETTINGS:
            raise ParameterError(_WHERE, f"unknown setting {typed!r}; expected {_USAGE}")
        if sep and name not in ("dirichlet", "samples"):
            raise ParameterError(_WHERE, f"{name} takes no value (got {typed!r})")
        if name == "samples":
            if not sep:
                raise ParameterError(_WHERE, "samples needs a count: samples=N (N >= 1)")
            try:
                samples = int(value)
            except ValueError:
                raise ParameterError(
                    _WHERE, f"samples must be a whole number >= 1, got {value!r}") from None
            continue
        if name == "dirichlet" and sep:
            try:
                concentration = float(value)
            except ValueError:
                raise ParameterError(
                    _WHERE, f"the Dirichlet concentration must be a number > 0, got {value!r}"
                ) from None
        for word in TOOLKIT_SETTINGS.get(name, (name,)) if kind != "domains" else (name,):
            weak = word.startswith("(")
            word = word.strip("()")
            word_kind = _kind(word)
            assert word_kind is not None
            if weak:
                implied.setdefault(word_kind, (word, name))
                continue
            if word_kind in chosen and chosen[word_kind][0] != word:
                raise ParameterError(
                    _WHERE, f"{chosen[word_kind][1]} and {name} are both given; choose one "
                            f"{word_kind} setting")
            chosen[word_kind] = (word, name)
    labels = chosen.get("labels", implied.get("labels", ("iid", "")))[0]
    if "labels" in implied and chosen.get("labels", ("",))[0] == "iid":
        raise ParameterError(_WHERE, f"{implied['labels'][1]} (sorted by class) and "
                                     f"{chosen['labels'][1]} are both given; choose one "
                                     "labels setting")
    reset = chosen.get("reset", ("online", ""))[0]
    return StreamSpec(
        episodic=reset == "episodic",
        reset_each_shift=reset == "reset_each_shift",
        domains=chosen.get("domains", implied.get("domains", ("mixed", "")))[0],
        labels=labels,
        concentration=concentration,
        samples=samples,
    )
