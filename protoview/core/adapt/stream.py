"""Test streams: the order in which an adaptation run meets the samples, and when it resets.

The settings test-time adaptation papers evaluate, as three independent choices; the
command line's ``--stream`` takes them as a comma-separated list (``continual,dirichlet=0.1``,
``episodic,sorted``), :func:`parse_stream` reads it and :class:`StreamSpec` holds it:

- **reset**: ``online`` (default: the model carries over from batch to batch, one pass as
  papers report it) or ``episodic`` (the adapter is reset to the source model, optimiser
  and memory before every batch, so each batch is adapted on alone);
- **domains**, for data of several shifts or domains (``demo:noise,blur,contrast``,
  ``cifar10c:ROOT:gaussian_noise,shot_noise,fog:5``, ``pacs:ROOT:art_painting,cartoon``):
  ``mixed`` (default: every domain shuffled together, mixed-domain TTA) or ``continual``
  (one domain after another, in the order given, without reset: continual TTA, CoTTA's
  setting). On data of one domain both are the same stream;
- **labels**: ``iid`` (default: shuffled), ``sorted`` (class by class, classes in index
  order: the extreme label-correlated stream) or ``dirichlet=ALPHA`` (label shift drawn from
  a Dirichlet distribution of concentration ``ALPHA`` > 0, as RoTTA and NOTE evaluate: the
  smaller ``ALPHA``, the longer the runs of one class; ``dirichlet`` alone is RoTTA's 0.1).

The order of pass ``k`` with seed ``s`` (every setting is seeded and reproducible):

1. the base order: ``numpy.random.default_rng([s, k]).permutation(N)`` (``0..N-1`` without
   shuffling), exactly the online order the runs used before streams existed;
2. ``continual``: the base order stably sorted by domain; ``sorted``: stably sorted by class
   (by domain, then class, when continual);
3. ``dirichlet``: RoTTA's ``LabelDirichletDomainSequence`` (github.com/BIT-DA/RoTTA,
   ``core/data/ttasampler.py``) applied to the base order, with its NumPy draws from
   ``numpy.random.RandomState([s, k])``: per domain (all samples form one domain when
   ``mixed``), each class's samples are split over ``min(C, 100)`` slots by proportions
   drawn from ``Dirichlet(ALPHA)``, and each slot's class chunks follow in a random order.
   Without shuffling (``shuffle=False``) the order equals RoTTA's sampler on the data in
   dataset order, number for number (``tests/oracles/rotta_sampler.py``). One deviation,
   named: RoTTA counts the classes present (``len(set(labels))``) and reads labels
   ``0..count-1``, so data missing a class lose the samples of the highest classes; here
   ``C`` is the largest label + 1 and no sample is lost (the same when every class occurs).

Label-correlated streams need every sample's label (the order is made from them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protoview.errors import ParameterError

RESETS = ("online", "episodic")
DOMAIN_ORDERS = ("mixed", "continual")
LABEL_ORDERS = ("iid", "sorted", "dirichlet")
#: RoTTA's default concentration (``_C.LOADER.SAMPLER.GAMMA``).
DEFAULT_CONCENTRATION = 0.1
_WHERE = "stream"
_USAGE = (
    "a comma-separated list of online|episodic, mixed|continual and iid|sorted|dirichlet=ALPHA "
    "(e.g. continual,dirichlet=0.1)"
)


@dataclass(frozen=True)
class StreamSpec:
    """One test stream (see the module docstring).

    episodic: reset the adapter before every batch; domains: ``mixed`` | ``continual``;
    labels: ``iid`` | ``sorted`` | ``dirichlet``; concentration: Dirichlet's ALPHA (> 0;
    used with ``dirichlet`` only).
    """

    episodic: bool = False
    domains: str = "mixed"
    labels: str = "iid"
    concentration: float = DEFAULT_CONCENTRATION

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

    @property
    def label_correlated(self) -> bool:
        return self.labels != "iid"

    def text(self) -> str:
        """The canonical ``--stream`` text: the non-default choices (``online`` when none)."""
        words = ["episodic"] if self.episodic else []
        if self.domains != "mixed":
            words.append(self.domains)
        if self.labels == "sorted":
            words.append("sorted")
        elif self.labels == "dirichlet":
            words.append(f"dirichlet={self.concentration:g}")
        return ",".join(words) or "online"

    def describe(self) -> str:
        """For people: ``"continual, Dirichlet label shift (alpha 0.1)"``."""
        parts = ["episodic (reset before every batch)" if self.episodic else "online"]
        if self.domains == "continual":
            parts.append("domains in sequence")
        if self.labels == "sorted":
            parts.append("sorted by class")
        elif self.labels == "dirichlet":
            parts.append(f"Dirichlet label shift (alpha {self.concentration:g})")
        return ", ".join(parts)

    def __str__(self) -> str:
        return self.text()


ONLINE = StreamSpec()


def parse_stream(text: str | StreamSpec | None) -> StreamSpec:
    """A :class:`StreamSpec` from ``--stream`` text (None or ``""``: online).

    Raises :class:`ParameterError` naming ``stream`` for an unknown word, two choices of
    the same kind (``online,episodic``) or a concentration that is not a number > 0.
    """
    if isinstance(text, StreamSpec):
        return text
    if text is None or not str(text).strip():
        return ONLINE
    chosen: dict[str, str] = {}
    concentration = DEFAULT_CONCENTRATION
    for raw in str(text).split(","):
        word = raw.strip().lower()
        if not word:
            raise ParameterError(_WHERE, f"{text!r} has an empty entry; expected {_USAGE}")
        name, sep, value = word.replace(":", "=").partition("=")
        name = name.strip().replace("_", "-")
        name = {"sorted-by-class": "sorted", "class-sorted": "sorted", "i.i.d.": "iid"}.get(name, name)
        kind = next(
            (k for k, names in (("reset", RESETS), ("domains", DOMAIN_ORDERS), ("labels", LABEL_ORDERS))
             if name in names),
            None,
        )
        if kind is None:
            raise ParameterError(_WHERE, f"unknown setting {raw.strip()!r}; expected {_USAGE}")
        if sep and name != "dirichlet":
            raise ParameterError(_WHERE, f"{name} takes no value (got {raw.strip()!r})")
        if kind in chosen and chosen[kind] != name:
            raise ParameterError(
                _WHERE, f"{chosen[kind]} and {name} are both given; choose one {kind} setting"
            )
        chosen[kind] = name
        if name == "dirichlet" and sep:
            try:
                concentration = float(value)
            except ValueError:
                raise ParameterError(
                    _WHERE, f"the Dirichlet concentration must be a number > 0, got {value!r}"
                ) from None
    return StreamSpec(
        episodic=chosen.get("reset") == "episodic",
        domains=chosen.get("domains", "mixed"),
        labels=chosen.get("labels", "iid"),
        concentration=concentration,
    )


def base_order(n: int, seed: int, pass_index: int, shuffle: bool = True) -> np.ndarray:
    """The i.i.d. order of pass ``pass_index``: (n,) int64."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, pass_index]).permutation(n).astype(np.int64)


def stream_order(
    spec: StreamSpec,
    n: int,
    *,
    seed: int,
    pass_index: int,
    shuffle: bool = True,
    labels: np.ndarray | None = None,
    domains: np.ndarray | None = None,
) -> np.ndarray:
    """The sample order (n,) int64 of one pass of the stream ``spec``.

    labels: (n,) int64 (-1 unknown), needed by ``sorted`` and ``dirichlet``; domains: (n,)
    int64 domain index of each sample (None: one domain).
    """
    order = base_order(n, seed, pass_index, shuffle)
    groups = np.zeros(n, np.int64) if domains is None else np.asarray(domains, np.int64)
    continual = spec.domains == "continual"
    if spec.label_correlated:
        labels = _known_labels(labels, n, spec)
    if spec.labels == "dirichlet":
        where = groups[order] if continual else np.zeros(n, np.int64)
        rng = np.random.RandomState([int(seed), int(pass_index)])
        return order[dirichlet_positions(labels[order], where, spec.concentration, rng)]
    if spec.labels == "sorted":
        keys = (labels[order], groups[order]) if continual else (labels[order],)
        return order[np.lexsort(keys)]
    if continual:
        return order[np.argsort(groups[order], kind="stable")]
    return order


def dirichlet_positions(
    labels: np.ndarray, domains: np.ndarray, concentration: float, rng: np.random.RandomState
) -> np.ndarray:
    """RoTTA's Dirichlet label-shift sequence over positions ``0..n-1`` (see the module
    docstring): labels (n,) int64 >= 0, domains (n,) int64; returns (n,) int64 positions.
    ``rng`` plays NumPy's global generator of the released code."""
    labels = np.asarray(labels, np.int64)
    num_class = int(labels.max()) + 1 if labels.size else 0
    num_slots = num_class if num_class <= 100 else 100
    final: list[np.ndarray] = []
    for domain in np.unique(domains):
        indices = np.flatnonzero(domains == domain)
        domain_labels = labels[indices]
        class_indices = [np.argwhere(domain_labels == y).flatten() for y in range(num_class)]
        slot_indices: list[list[np.ndarray]] = [[] for _ in range(num_slots)]
        distribution = rng.dirichlet([concentration] * num_slots, num_class)
        for c_ids, partition in zip(class_indices, distribution, strict=True):
            cuts = (np.cumsum(partition)[:-1] * len(c_ids)).astype(int)
            for s, ids in enumerate(np.split(c_ids, cuts)):
                slot_indices[s].append(ids)
        for s_ids in slot_indices:
            permutation = rng.permutation(range(len(s_ids)))
            chunks = [s_ids[i] for i in permutation]
            ids = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
            final.append(indices[ids.astype(np.int64)])
    return np.concatenate(final).astype(np.int64) if final else np.zeros(0, np.int64)


def first_positions(order: np.ndarray, domains: np.ndarray | None) -> dict[int, int]:
    """{domain: position in ``order`` of its first sample} (one domain 0 when None)."""
    if domains is None or len(order) == 0:
        return {0: 0} if len(order) else {}
    seen = np.asarray(domains, np.int64)[order]
    values, first = np.unique(seen, return_index=True)
    return {int(d): int(p) for d, p in zip(values, first, strict=True)}


def _known_labels(labels: np.ndarray | None, n: int, spec: StreamSpec) -> np.ndarray:
    what = "sorted by class" if spec.labels == "sorted" else "a Dirichlet label shift"
    if labels is None:
        raise ParameterError(_WHERE, f"{what} needs the samples' labels; these data have none")
    labels = np.asarray(labels, np.int64).reshape(-1)
    missing = int(np.count_nonzero(labels < 0))
    if labels.shape[0] != n or missing:
        raise ParameterError(
            _WHERE, f"{what} is made from the labels, but {missing} of the {n} samples have none"
        )
    return labels
