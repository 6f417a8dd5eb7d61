"""A pass of a test stream, :class:`StreamPlan`: its sample order cut into segments (a
domain, a severity) and where the adapter is reset, made by :func:`stream_plan` from a
:class:`~protoview.core.adapt._stream_spec.StreamSpec` and the data's labels, domains,
shifts and severities (see :mod:`protoview.core.adapt.stream`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protoview.core.adapt._dirichlet import dirichlet_positions
from protoview.core.adapt._stream_spec import _WHERE, GRADUAL_SEVERITIES, StreamSpec
from protoview.errors import ParameterError


def base_order(n: int, seed: int, pass_index: int, shuffle: bool = True) -> np.ndarray:
    """The i.i.d. order of pass ``pass_index``: (n,) int64."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, pass_index]).permutation(n).astype(np.int64)


@dataclass(frozen=True)
class StreamPlan:
    """One pass of a stream: ``order`` (L,) int64 dataset indices (L may differ from N:
    ``samples=N`` leaves some out, ``gradual`` meets some twice), cut into segments
    ``order[bounds[k]:bounds[k + 1]]`` (see the stream docs); ``domains``: the data's
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
