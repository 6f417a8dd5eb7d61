"""Several shifts or domains as one dataset, in the order given, each sample knowing its domain.

Spellings (a comma-separated list where a layout names its shift or domain)::

    demo:noise,blur,contrast[:SEVERITY]
    cifar10c:ROOT:gaussian_noise,shot_noise,fog:SEVERITY   (also cifar100c, imagenetc)
    pacs:ROOT:art_painting,cartoon,sketch                  (also vlcs, officehome, ...)

Corrupted data (``cifar10c``, ``cifar100c``, ``imagenetc``, ``demo``) also take several
severities, a range ``A-B`` in place of ``SEVERITY`` (rising or falling:
``cifar10c:ROOT:fog,snow:1-5``, ``imagenetc:ROOT:fog:5-1``): each corruption at each
severity in turn, corruption by corruption (fog 1, ..., fog 5, snow 1, ..., snow 5: the
toolkit's loop over the domains with the severities inside, ``test_time.py``), each a
domain named ``CORRUPTION:SEVERITY`` (``fog:3``). That is what a ``gradual`` stream needs.

Each entry is opened as its own spec (:func:`expand_spec`) and the parts are joined in
the order written: sample ``i`` of part ``d`` has index ``offset[d] + i`` and domain ``d``.
The dataset carries ``domains`` (N,) int64 and ``domain_names`` (one per part: the shift,
corruption or domain folder), which :mod:`protoview.core.adapt.stream` reads for continual
and mixed-domain streams; corrupted data also carry ``domain_shifts`` (each domain's
corruption) and ``domain_severities`` (its severity), which ``gradual`` and
``reset_each_shift`` read. ``identity()`` joins the parts' identities (so the feature cache
tells ``demo:noise,blur`` from ``demo:blur,noise``). In-memory parts (the demo, CIFAR-C)
become one :class:`ArrayImageDataset` (one tensor op per batch); image folders (ImageNet-C,
DomainBed's) a :class:`ConcatFolderDataset` that reads from its parts (and which the decoded
image cache wraps like any folder).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from protoview.core.data._base import ArrayImageDataset, ProtoviewDataset
from protoview.core.data._corruptions import KINDS, SEVERITIES, parse_corruption_spec
from protoview.core.data._domainbed import parse_domainbed_spec
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError


def shift_field(spec: str) -> tuple[str, str, str] | None:
    """``spec`` as (before, the shift / domain field, after), or None for layouts without
    one (folders, files): ``"demo:noise:3"`` -> ``("demo:", "noise", ":3")``,
    ``"pacs:/d:cartoon"`` -> ``("pacs:/d:", "cartoon", "")``."""
    head, sep, _ = spec.partition(":")
    if head.strip() == "demo":
        fields = spec.split(":")
        return "demo:", fields[1] if len(fields) > 1 else "", "".join(f":{f}" for f in fields[2:])
    if not sep:
        return None
    parsed = parse_corruption_spec(spec)
    if parsed is not None:
        _kind, root, corruption, severity = parsed
        return f"{head}:{root}:", corruption, f":{severity}"
    parsed_db = parse_domainbed_spec(spec)
    if parsed_db is not None:
        _kind, root, domain = parsed_db
        return f"{head}:{root}:", domain, ""
    if head.strip().lower() in ("imagenet-d109", "domainnet126", "imagenet_d109", "domainnet-126",
                                "imagenet-d", "imagenet_d", "imagenetd", "imagenetd109"):
        root, _, domain = spec.partition(":")[2].rpartition(":")
        return f"{head}:{root}:", domain, ""
    return None


_RANGE = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*\Z")


def severity_range(spec: str) -> tuple[str, list[int]] | None:
    """``("cifar10c:ROOT:fog,snow", [1, 2, 3, 4, 5])`` for corrupted data whose severity
    field is a range ``A-B`` (``[5, 4, 3]`` for ``5-3``); None for any other spec.

    Raises DatasetError naming the spec for a severity outside 1..5.
    """
    head = spec.partition(":")[0].strip().lower()
    if head != "demo" and head.replace("-", "").replace("_", "") not in KINDS:
        return None
    prefix, sep, last = spec.rpartition(":")
    match = _RANGE.match(last) if sep and prefix.count(":") >= (1 if head == "demo" else 2) else None
    if match is None:
        return None
    low, high = int(match[1]), int(match[2])
    bad = [s for s in (low, high) if s not in SEVERITIES]
    if bad:
        raise DatasetError(spec, f"severity {bad[0]} does not exist: the severities are 1 to 5 "
                                 f"(a range such as 1-5 opens each of them)")
    step = 1 if high >= low else -1
    return prefix, list(range(low, high + step, step))


def _shift_severity(spec: str) -> tuple[str, int] | None:
    """(corruption, severity) a single spec of corrupted data names, else None."""
    fields = spec.split(":")
    if fields[0].strip() == "demo":  # the demo's own sources say demo:SHIFT:SEVERITY
        if len(fields) == 3 and fields[2].strip().isdigit():
            return fields[1].strip() or "noise", int(fields[2])
        return None
    try:
        parsed = parse_corruption_spec(spec)
    except DatasetError:
        return None
    return None if parsed is None else (parsed[2], parsed[3])


def spec_names(specs: Sequence[str]) -> list[str]:
    """The shift each single spec names (:func:`shift_name`), ``CORRUPTION:SEVERITY`` when
    one corruption comes at several severities (``fog:1``, ``fog:2``)."""
    names = [shift_name(spec) for spec in specs]
    if len(set(names)) == len(names):
        return names
    out = []
    for name, spec in zip(names, specs, strict=True):
        parsed = _shift_severity(spec)
        out.append(f"{name}:{parsed[1]}" if parsed is not None else name)
    return out


def shift_name(spec: str) -> str:
    """The shift / domain a single spec names (``"demo:blur:3"`` -> ``"blur"``; the demo's
    default ``noise``), or the spec itself for layouts without one."""
    parts = shift_field(spec)
    if parts is None:
        return spec
    return parts[1] or ("noise" if parts[0] == "demo:" else spec)


def expand_spec(spec: str) -> list[str] | None:
    """The single specs of a multi-shift ``spec`` (None when it names one shift or domain).

    Raises DatasetError naming the spec for an empty entry or an entry given twice.
    """
    ranged = severity_range(spec)
    if ranged is not None:
        prefix, severities = ranged
        parts = shift_field(f"{prefix}:{severities[0]}")
        if parts is not None:
            before, field, _after = parts
            return [f"{before}{name}:{s}" for name in _names(spec, field or "noise")
                    for s in severities]
    if "," not in spec:
        return None
    parts = shift_field(spec)
    if parts is None or "," not in parts[1]:
        return None
    before, field, after = parts
    return [f"{before}{name}{after}" for name in _names(spec, field)]


def shift_specs(spec: str, shifts: Sequence[str] | None = None) -> list[str]:
    """The single specs of ``spec`` (its own list, or itself), or with its shift / domain
    field replaced by each of ``shifts`` (``shift_specs("demo:noise:3", ["blur", "mix"])``
    is ``["demo:blur:3", "demo:mix:3"]``).

    Raises DatasetError naming the spec when ``shifts`` are given for data without a shift
    or domain field, or a list entry is empty or repeated.
    """
    if not shifts:
        return expand_spec(spec) or [spec]
    ranged = severity_range(spec)
    parts = shift_field(spec if ranged is None else f"{ranged[0]}:{ranged[1][0]}")
    if parts is None:
        raise DatasetError(spec, "names no shift or domain to replace (shifts apply to demo:, "
                                 "cifar10c:, cifar100c:, imagenetc:, pacs:, vlcs:, officehome:, "
                                 "terraincognita: and domainnet: data)")
    before, _field, after = parts
    if ranged is not None:
        return [f"{before}{name}:{s}" for name in _names(spec, ",".join(shifts))
                for s in ranged[1]]
    return [f"{before}{name}{after}" for name in _names(spec, ",".join(shifts))]


def _names(spec: str, field: str) -> list[str]:
    names = [name.strip() for name in field.split(",")]
    if not all(names):
        raise DatasetError(spec, f"the list {field!r} has an empty entry; expected names separated by commas")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetError(spec, f"{twice[0]} is listed twice; each shift or domain can appear once")
    return names


def domain_name(part: Any, spec: str) -> str:
    """The name a part is shown under: its benchmark domain, else the spec's shift field."""
    benchmark = getattr(part, "benchmark", None) or {}
    if benchmark.get("domain"):
        return str(benchmark["domain"])
    fields = spec.split(":")
    if fields[0] == "demo":
        return fields[1] if len(fields) > 1 else "noise"
    return fields[-2] if len(fields) >= 4 else fields[-1]


def concatenate(parts: Sequence[Any], names: Sequence[str], spec: str) -> ProtoviewDataset:
    """One dataset of ``parts`` (opened datasets, same classes) in order, with domains."""
    first = parts[0]
    for part in parts[1:]:
        if list(part.class_names) != list(first.class_names):
            raise DatasetError(spec, f"{part.source} has other classes than {first.source}; "
                                     "the shifts or domains of one dataset must share them")
    located = [_shift_severity(str(getattr(p, "source", "") or "")) for p in parts]
    if all(located) and len(set(names)) < len(names):  # one corruption at several severities
        names = [f"{name}:{where[1]}" for name, where in zip(names, located, strict=True)]
    domains = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p) for p in parts])
    sizes = " → ".join(f"{name} ({len(p)})" for name, p in zip(names, parts, strict=True))
    description = (f"{len(parts)} domains, {len(domains)} images: {sizes}; the first: "
                   f"{first.description}")
    identity = "concat[" + "|".join(p.identity() for p in parts) + "]"
    if all(isinstance(p, ArrayImageDataset) for p in parts):
        dataset: ProtoviewDataset = ArrayImageDataset(
            np.concatenate([p.stored_images for p in parts]),
            np.concatenate([p.labels for p in parts]),
            first.class_names, first.transform, source=spec, description=description,
            identity=identity,
        )
    else:
        dataset = ConcatFolderDataset(parts, source=spec, description=description, identity=identity)
    dataset.domains = domains  # type: ignore[attr-defined]
    dataset.domain_names = tuple(names)  # type: ignore[attr-defined]
    if all(located):  # corrupted data: each domain's corruption and severity (gradual streams)
        dataset.domain_shifts = tuple(w[0] for w in located)  # type: ignore[attr-defined,index]
        dataset.domain_severities = tuple(int(w[1]) for w in located)  # type: ignore[attr-defined,index]
    dataset.suggested_preprocess = first.suggested_preprocess
    references = {getattr(p, "file_order_reference", None) for p in parts}
    if len(references) == 1 and None not in references:  # every part streamed in file order
        dataset.file_order_reference = references.pop()  # type: ignore[attr-defined]
    if all(getattr(p, "stream_order", None) == "file" for p in parts):
        dataset.stream_order = "file"  # type: ignore[attr-defined]
    dataset.notes = tuple(note for p in parts for note in p.notes)
    if first.benchmark:
        dataset.benchmark = {"dataset": first.benchmark.get("dataset"), "domain": ",".join(names)}
    if getattr(first, "head_classes", None) is not None:  # an ImageNet subset (see _variants)
        dataset.head_classes = first.head_classes  # type: ignore[attr-defined]
    if getattr(first, "prediction_map", None) is not None:  # ImageNet-D (see _variants)
        dataset.prediction_map = first.prediction_map  # type: ignore[attr-defined]
    return dataset


class ConcatFolderDataset(ProtoviewDataset):
    """Image datasets read from disk (folders), one after another (see the module docstring).

    Reads go to the part holding the index; ``read_pixels`` / ``read_item`` exist when
    every part has them (image folders), so the decoded-image cache can wrap it.
    """

    def __init__(self, parts: Sequence[Any], *, source: str, description: str, identity: str) -> None:
        self.parts = list(parts)
        self._offsets = np.cumsum([0, *[len(p) for p in self.parts]])
        self.labels = np.concatenate([np.asarray(p.labels, np.int64) for p in self.parts])
        self.class_names = list(self.parts[0].class_names)
        self.transform = self.parts[0].transform
        self.transform_source = self.parts[0].transform_source
        self.source, self.description, self._identity = source, description, identity

    def set_transform(self, transform: TransformSpec, source: str = "") -> None:
        for part in self.parts:
            part.set_transform(transform, source)
        self.transform, self.transform_source = self.parts[0].transform, source

    def identity(self) -> str:
        return self._identity

    def _locate(self, index: int) -> tuple[Any, int]:
        index = self._check_index(int(index))
        d = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self.parts[d], index - int(self._offsets[d])

    def _call(self, name: str, index: int) -> Any:
        part, local = self._locate(index)
        method: Callable[[int], Any] = getattr(part, name)
        return method(local)

    def read_pixels(self, index: int) -> tuple[np.ndarray | None, int, str]:
        """The decoded image before normalisation (as the part's ``read_pixels``)."""
        return self._call("read_pixels", index)

    def read_item(self, index: int) -> tuple[torch.Tensor, int, str]:
        """Like ``self[index]`` but never raises for a bad file (as the part's)."""
        return self._call("read_item", index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self._call("__getitem__", index)
        return item[0], item[1]

    def thumbnail(self, index: int, max_side: int = 96) -> np.ndarray:
        part, local = self._locate(index)
        return part.thumbnail(local, max_side)
