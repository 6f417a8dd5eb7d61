"""Test streams: the order in which an adaptation run meets the samples, and when it resets.

The settings test-time adaptation papers evaluate, as independent choices; the command
line's ``--stream`` takes them as a comma-separated list (``continual,dirichlet=0.1``,
``episodic,sorted``, ``gradual``), :func:`parse_stream` reads it and :class:`StreamSpec`
holds it:

- **reset**: ``online`` (default: the model carries over from batch to batch, one pass as
  papers report it), ``episodic`` (the adapter is reset to the source model, optimiser
  and memory before every batch, so each batch is adapted on alone) or
  ``reset_each_shift`` (reset before the first batch of every shift, the first one
  included, carried over within it: mariodoebler/test-time-adaptation's setting of that
  name). A shift is a corruption or a domain: the severities of one corruption are one
  shift (the toolkit resets in its loop over the domains, ``test_time.py`` lines 72-75, and
  visits the severities inside it). It needs the shifts in sequence, so it implies
  ``continual`` unless ``gradual`` is named;
- **domains**, for data of several shifts or domains (``demo:noise,blur,contrast``,
  ``cifar10c:ROOT:gaussian_noise,shot_noise,fog:5``, ``pacs:ROOT:art_painting,cartoon``;
  several severities: ``cifar10c:ROOT:fog,snow:1-5``): ``mixed`` (default: every domain
  shuffled together, mixed-domain TTA), ``continual`` (one domain after another, in the
  order the data name them, without reset: continual TTA, CoTTA's setting) or ``gradual``
  (each corruption in turn, its severities in the order 1, 2, 3, 4, 5, 4, 3, 2, 1, without
  reset: the toolkit's gradual setting, ``test_time.py`` lines 60-63: data opened with the
  five severities of each corruption, e.g. ``cifar10c:ROOT:fog,snow:1-5``; severities 1 to
  4 are met twice, in the same order both times). On data of one domain mixed and
  continual are the same stream;
- **labels**: ``iid`` (default: shuffled), ``sorted`` (class by class, classes in index
  order: the extreme label-correlated stream) or ``dirichlet=ALPHA`` (label shift drawn from
  a Dirichlet distribution of concentration ``ALPHA`` > 0, as RoTTA and NOTE evaluate: the
  smaller ``ALPHA``, the longer the runs of one class; ``dirichlet`` alone is RoTTA's 0.1);
- **samples=N**: at most ``N`` samples of each domain (of each segment, below), the
  toolkit's ``CORRUPTION.NUM_EX``; default all of them.

The toolkit's setting names (``cfg.SETTING``) are accepted and stand for these words:

=============================  ==================================
``continual``                  ``continual``
``mixed_domains``              ``mixed``
``gradual``                    ``gradual``
``correlated``                 ``continual,sorted``
``mixed_domains_correlated``   ``mixed,sorted``
``gradual_correlated``         ``gradual,sorted``
``reset_each_shift``           ``reset_each_shift,continual``
``reset_each_shift_correlated`` ``reset_each_shift,continual,sorted``
=============================  ==================================

A ``*correlated`` name sorts by class (the toolkit's default ``TEST.DELTA_DIRICHLET = 0``);
with ``dirichlet=ALPHA`` in the same text its classes follow a Dirichlet label shift instead
(the toolkit's ``DELTA_DIRICHLET = ALPHA``), drawn by RoTTA's sampler (below), not the
toolkit's ``sort_by_dirichlet`` (NOTE's, ``datasets/data_loading.py``): the same idea, other
draws. ``correlated`` and ``reset_each_shift`` take the domains in sequence (``continual``)
unless the text names another order (``correlated,mixed`` is ``mixed_domains_correlated``).

**Segments.** A pass is a sequence of segments, the toolkit's test loaders (one
``get_test_loader`` per domain and severity, ``test_time.py`` lines 81-98): ``continual``
one per domain, in the data's order; ``gradual`` one per (corruption, severity) in the order
above; ``mixed`` one holding everything, or, on data of several severities, one per
severity holding all corruptions at it (the toolkit's mixed_domains loops over its
severities and mixes the corruptions of each). Batches are cut per segment, so no batch
holds two domains and a segment's last batch may be short (the toolkit's loaders keep it,
``drop_last=False``; :class:`~protoview.core.adapt.run.AdaptRun` says how it treats a last
batch of one sample).

The order of pass ``k`` with seed ``s`` (every setting is seeded and reproducible):

1. the base order: ``numpy.random.default_rng([s, k]).permutation(N)`` (``0..N-1`` without
   shuffling), exactly the online order the runs used before streams existed;
2. ``samples=N``: each segment keeps ``N`` of its samples, the same for every pass: its
   samples in dataset order at the positions
   ``default_rng(SeedSequence(s, spawn_key=(1,))).permutation(size)[:N]`` (the first ``N``
   without shuffling). Segments of one size keep the same positions, as the toolkit's
   ``random.sample`` seeded alike for each loader does: on CIFAR-10-C the same test images
   at every corruption and severity, and a domain met twice (gradual) keeps its samples;
3. each segment's samples in the base order; ``sorted``: stably sorted by class;
4. ``dirichlet``: RoTTA's ``LabelDirichletDomainSequence`` (github.com/BIT-DA/RoTTA,
   ``core/data/ttasampler.py``) applied to each segment in turn, with its NumPy draws from
   one ``numpy.random.RandomState([s, k])``: each class's samples are split over
   ``min(C, 100)`` slots by proportions drawn from ``Dirichlet(ALPHA)``, and each slot's
   class chunks follow in a random order. Without shuffling (``shuffle=False``) the order
   equals RoTTA's sampler on the data in dataset order, number for number
   (``tests/oracles/rotta_sampler.py``). One deviation, named: RoTTA counts the classes
   present (``len(set(labels))``) and reads labels ``0..count-1``, so data missing a class
   lose the samples of the highest classes; here ``C`` is the largest label + 1 and no
   sample is lost (the same when every class occurs).

Label-correlated streams need every sample's label (the order is made from them).
Where the toolkit differs in what is not the setting itself: it shuffles each loader with
Python's ``random`` reseeded to the same seed (so every loader of one size has the same
permutation), here one NumPy permutation per pass orders every segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    """One test stream (see the module docstring).

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


def fixed_order(dataset: Any) -> bool:
    """The data allow no order but their own (CCC: ``stream_order == "file"``, the order on
    disk is the benchmark)."""
    return getattr(dataset, "stream_order", None) == "file"


def run_order(dataset: Any, shuffle: bool | None, seed: int) -> tuple[bool, str]:
    """Whether a run on ``dataset`` shuffles, and the line that says its order.

    ``shuffle=None`` takes the data's own default: the file order where the benchmark's
    reference scripts keep it (``dataset.file_order_reference`` names them: RobustBench's
    ``load_cifar10c`` and tent's CIFAR-10-C scripts), shuffled with ``seed`` otherwise (TSD,
    the toolkit and every ImageNet-C script shuffle: those files lie sorted by class). CCC
    (``stream_order == "file"``) always keeps its order: its order is the benchmark.
    """
    if fixed_order(dataset):
        return False, "file order, the benchmark's own stream"
    if shuffle is None:
        reference = getattr(dataset, "file_order_reference", None)
        if reference:
            return False, f"file order, as {reference}"
        shuffle = True
    return bool(shuffle), f"shuffled, seed {seed}" if shuffle else "file order"


def base_order(n: int, seed: int, pass_index: int, shuffle: bool = True) -> np.ndarray:
    """The i.i.d. order of pass ``pass_index``: (n,) int64."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, pass_index]).permutation(n).astype(np.int64)


@dataclass(frozen=True)
class StreamPlan:
    """One pass of a stream: ``order`` (L,) int64 dataset indices (L may differ from N:
    ``samples=N`` leaves some out, ``gradual`` meets some twice), cut into segments
    ``order[bounds[k]:bounds[k + 1]]`` (see the module docstring); ``domains``: the data's
    domain of each segment (-1: it holds several, or the data have none); ``resets``: the
    segments before whose first batch the adapter is reset (``reset_each_shift``)."""

    order: np.ndarray
    bounds: tuple[int, ...]
    domains: tuple[int, ...]
    resets: tuple[int, ...] = ()

    @property
    def segments(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each segment in ``order``."""
        return list(zip(self.bounds[:-1], self.bounds[1:], strict=True))


def stream_plan(
    spec: StreamSpec,
    n: int,
    *,
    seed: int,
    pass_index: int,
    shuffle: bool = True,
    labels: np.ndarray | None = None,
    domains: np.ndarray | None = None,
    shifts: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
) -> StreamPlan:
    """The :class:`StreamPlan` of pass ``pass_index`` of the stream ``spec``.

    labels: (n,) int64 (-1 unknown), needed by ``sorted`` and ``dirichlet``; domains: (n,)
    int64 domain index of each sample (None: one domain); shifts: the shift (corruption or
    domain name) of each domain, several domains may share one (its severities); None: each
    domain its own shift; severities: each domain's severity (None: the data have none),
    needed by ``gradual``. Raises :class:`ParameterError` naming ``--stream`` when the data
    cannot make the stream.
    """
    order = base_order(n, seed, pass_index, shuffle)
    groups = None if domains is None else np.asarray(domains, np.int64).reshape(-1)
    if spec.label_correlated:
        labels = _known_labels(labels, n, spec)
    members, seg_domains = _segments(spec, n, groups, shifts, severities)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    rng = np.random.RandomState([int(seed), int(pass_index)]) if spec.labels == "dirichlet" else None
    num_class = int(labels.max()) + 1 if labels is not None and labels.size else 0
    chunks, bounds = [], [0]
    for m in members:
        if spec.samples is not None and len(m) > spec.samples:
            m = m[_kept(len(m), spec.samples, seed, shuffle)]
        m = m[np.argsort(rank[m], kind="stable")]  # the base order inside the segment
        if spec.labels == "sorted":
            m = m[np.argsort(labels[m], kind="stable")]
        elif rng is not None:
            m = m[dirichlet_positions(labels[m], np.zeros(len(m), np.int64),
                                      spec.concentration, rng, num_class=num_class)]
        chunks.append(m)
        bounds.append(bounds[-1] + len(m))
    resets: tuple[int, ...] = ()
    if spec.reset_each_shift:
        names = _shift_names(groups, shifts)
        keys = [names[d] if d >= 0 else None for d in seg_domains]
        resets = tuple(k for k in range(len(keys)) if k == 0 or keys[k] != keys[k - 1])
    flat = np.concatenate(chunks).astype(np.int64) if chunks else np.zeros(0, np.int64)
    return StreamPlan(flat, tuple(bounds), tuple(seg_domains), resets)


def stream_order(
    spec: StreamSpec,
    n: int,
    *,
    seed: int,
    pass_index: int,
    shuffle: bool = True,
    labels: np.ndarray | None = None,
    domains: np.ndarray | None = None,
    shifts: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
) -> np.ndarray:
    """The sample order (L,) int64 of one pass of the stream ``spec`` (:func:`stream_plan`'s
    ``order``; a permutation of ``0..n-1`` unless ``samples`` or ``gradual``)."""
    return stream_plan(spec, n, seed=seed, pass_index=pass_index, shuffle=shuffle,
                       labels=labels, domains=domains, shifts=shifts,
                       severities=severities).order


def _kept(size: int, count: int, seed: int, shuffle: bool) -> np.ndarray:
    """Positions (count,) of the samples a segment of ``size`` keeps (``samples=N``)."""
    if not shuffle:
        return np.arange(count, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(1,)))
    return np.sort(rng.permutation(size)[:count]).astype(np.int64)


def _shift_names(groups: np.ndarray | None, shifts: Sequence[str] | None) -> list[str]:
    count = int(groups.max()) + 1 if groups is not None and groups.size else 1
    if shifts is None:
        return [str(d) for d in range(count)]
    names = [str(s) for s in shifts]
    if len(names) < count:
        raise ParameterError(_WHERE, f"the data name {len(names)} shifts for {count} domains")
    return names


def _segments(
    spec: StreamSpec, n: int, groups: np.ndarray | None, shifts: Sequence[str] | None,
    severities: Sequence[int] | None,
) -> tuple[list[np.ndarray], list[int]]:
    """Each segment's samples (dataset order) and its domain (-1: several or none)."""
    if spec.domains == "gradual":
        return _gradual_segments(groups, shifts, severities)
    if groups is None:
        return [np.arange(n, dtype=np.int64)], [-1]
    count = int(groups.max()) + 1 if groups.size else 0
    by_domain = [np.flatnonzero(groups == d) for d in range(count)]
    if spec.domains == "continual":
        return by_domain, list(range(count))
    if severities is not None and len(set(int(s) for s in list(severities)[:count])) > 1:
        order = list(dict.fromkeys(int(s) for s in list(severities)[:count]))
        sev = np.asarray(list(severities)[:count], np.int64)
        return ([np.flatnonzero(np.isin(groups, np.flatnonzero(sev == s))) for s in order],
                [-1] * len(order))
    return [np.arange(n, dtype=np.int64)], [-1]


def _gradual_segments(
    groups: np.ndarray | None, shifts: Sequence[str] | None, severities: Sequence[int] | None
) -> tuple[list[np.ndarray], list[int]]:
    how = ("open the five severities of each corruption, e.g. cifar10c:ROOT:gaussian_noise,"
           "fog:1-5 (imagenetc:, cifar100c:, demo:noise,blur:1-5 alike)")
    if groups is None:
        raise ParameterError(_WHERE, f"gradual takes each corruption through severities "
                                     f"1-5-1, but these data hold one domain; {how}")
    count = int(groups.max()) + 1 if groups.size else 0
    if severities is None:
        raise ParameterError(_WHERE, f"gradual takes each corruption through severities "
                                     f"1-5-1, but these data's domains have no severity; {how}")
    names = _shift_names(groups, shifts)[:count]
    where: dict[tuple[str, int], int] = {}
    for d in range(count):
        where.setdefault((names[d], int(severities[d])), d)
    members, seg_domains = [], []
    for shift in dict.fromkeys(names):
        missing = [s for s in sorted(set(GRADUAL_SEVERITIES)) if (shift, s) not in where]
        if missing:
            have = sorted(s for (name, s) in where if name == shift)
            raise ParameterError(
                _WHERE, f"gradual takes each corruption through severities "
                        f"{','.join(map(str, GRADUAL_SEVERITIES))} (the toolkit's), but {shift} "
                        f"is open at severit{'y' if len(have) == 1 else 'ies'} "
                        f"{', '.join(map(str, have))} only; {how}")
        for s in GRADUAL_SEVERITIES:
            d = where[(shift, s)]
            members.append(np.flatnonzero(groups == d))
            seg_domains.append(d)
    return members, seg_domains


def dirichlet_positions(
    labels: np.ndarray, domains: np.ndarray, concentration: float, rng: np.random.RandomState,
    *, num_class: int | None = None,
) -> np.ndarray:
    """RoTTA's Dirichlet label-shift sequence over positions ``0..n-1`` (see the module
    docstring): labels (n,) int64 >= 0, domains (n,) int64; returns (n,) int64 positions.
    ``rng`` plays NumPy's global generator of the released code; ``num_class``: the classes
    of the whole data (default: the largest label here + 1)."""
    labels = np.asarray(labels, np.int64)
    if num_class is None:
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
