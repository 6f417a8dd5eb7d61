"""Methods x shifts: the accuracy table test-time adaptation papers print, seeded and reproducible.

:func:`compare_methods` runs each method over each shift from the source checkpoint and
returns a :class:`CompareTable` (online accuracy over one pass, as papers report it;
optionally the full-set accuracy after it; the mean over the shifts), which prints as
text, CSV or Markdown. ``protoview compare`` is its command line.

- Each entry of ``methods`` is a method name, optionally with its variant:
  ``tsd:corrected`` (``variant=corrected``); ``params`` maps an entry (or ``"*"``, every
  entry that takes the parameter) to parameters of :func:`~protoview.core.adapt.make_adapter`.
- Shifts are single data specs (``demo:noise:3``, ``cifar10c:ROOT:fog:5``, see
  :func:`protoview.core.data.shift_specs`). By default each shift is its own run from the
  source model (the per-corruption table). With ``together=True`` (the command line's
  ``--stream continual`` or ``mixed``) the shifts form one dataset and one run per method
  goes through the stream (continual: one shift after another without reset); a shift's
  cell is then the online accuracy over its samples in that run (CoTTA's continual table).
- Reproducible: every run uses the same ``seed`` for its batch order and for torch
  (``torch.manual_seed(seed)`` before each run).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview.core.runs import online_accuracy_by_domain
from protoview.errors import ParameterError, ProtoviewError

Progress = Callable[[str], None] | None


@dataclass
class CompareTable:
    """rows: method entries; shifts: column names; online, full: (rows, shifts) float
    accuracies in [0, 1] (NaN: diverged or no labels; ``full`` None when not asked);
    seconds: (rows, shifts) per run (together: the run's time in each row's first cell);
    notes: what happened on the way (a diverged run, ...); settings: one line."""

    rows: list[str]
    shifts: list[str]
    online: np.ndarray
    full: np.ndarray | None = None
    seconds: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    settings: str = ""

    def means(self, values: np.ndarray) -> np.ndarray:
        """(rows,) mean over the shifts (NaN when a cell is NaN, as a table should show)."""
        return values.mean(axis=1) if values.size else np.zeros(len(self.rows))

    def _cell(self, i: int, j: int | None) -> str:
        online = self.online[i, j] if j is not None else self.means(self.online)[i]
        text = _pct(online)
        if self.full is not None:
            full = self.full[i, j] if j is not None else self.means(self.full)[i]
            if _pct(full) != text:  # the README's habit: one number when both agree
                text += f" / {_pct(full)}"
        return text

    def text(self) -> str:
        """An aligned plain-text table (percent, one decimal)."""
        head = ["method", *self.shifts, "mean"]
        body = [[row, *(self._cell(i, j) for j in range(len(self.shifts))), self._cell(i, None)]
                for i, row in enumerate(self.rows)]
        widths = [max(len(r[k]) for r in [head, *body]) for k in range(len(head))]
        lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                           for k, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in [head, *body]]
        what = "online accuracy over one pass" + (" / full-set accuracy after it"
                                                  if self.full is not None else "")
        return "\n".join([f"{what} (%); {self.settings}", *lines])

    def markdown(self) -> str:
        """A Markdown table, cells as in :meth:`text`."""
        head = ["method", *self.shifts, "mean"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, row in enumerate(self.rows):
            cells = [row, *(self._cell(i, j) for j in range(len(self.shifts))), self._cell(i, None)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """CSV: ``method``, one column per shift and ``mean`` (online accuracy in percent,
        two decimals), then ``<shift> full`` ... ``mean full`` when the full set was
        evaluated; a diverged run is empty."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        head = ["method", *self.shifts, "mean"]
        if self.full is not None:
            head += [f"{s} full" for s in [*self.shifts, "mean"]]
        writer.writerow(head)
        for i, row in enumerate(self.rows):
            values = [*self.online[i], self.means(self.online)[i]]
            if self.full is not None:
                values += [*self.full[i], self.means(self.full)[i]]
            writer.writerow([row, *(f"{100 * v:.2f}" if math.isfinite(v) else "" for v in values)])
        return out.getvalue()


def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "n/a"


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """Method entries from ``"none,bn,tsd:corrected"`` (checked: a known method, a known
    variant, no entry twice). Raises ParameterError naming ``methods``."""
    from protoview.core.adapt.params import VARIANTS
    from protoview.core.adapt.registry import method_names

    known = method_names()
    entries = [e.strip() for e in (text.split(",") if isinstance(text, str) else text)]
    if not entries or not all(entries):
        raise ParameterError("methods", f"expected method names separated by commas, got {text!r}")
    for entry in entries:
        name, _, variant = entry.partition(":")
        if name not in known:
            where = f" in {entry!r}" if entry != name else ""
            raise ParameterError("methods", f"unknown method {name!r}{where}; choose from "
                                            f"{', '.join(known)}")
        if variant and variant not in VARIANTS:
            raise ParameterError("methods", f"unknown variant {variant!r} in {entry!r}; "
                                            f"choose {' or '.join(VARIANTS)}")
    twice = sorted({e for e in entries if entries.count(e) > 1})
    if twice:
        raise ParameterError("methods", f"{twice[0]} is listed twice")
    return entries


def method_params(entries: Sequence[str], params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Each entry's parameters: its variant, the ``"*"`` ones it accepts, then its own.

    Raises ParameterError naming the parameter when an entry's own parameter is not one
    of its method's or a value its declaration refuses, when a ``"*"`` parameter fits no
    method, or a key names no entry.
    """
    from protoview.core.adapt.registry import check_params, method_defaults

    for key in params:
        if key != "*" and key not in entries:
            raise ParameterError("param", f"{key!r} is not one of the methods compared "
                                          f"({', '.join(entries)})")
    out: dict[str, dict] = {}
    shared = dict(params.get("*", {}))
    used: set[str] = set()
    for entry in entries:
        name, _, variant = entry.partition(":")
        accepted = method_defaults(name)
        chosen = {k: v for k, v in shared.items() if k in accepted}
        used |= set(chosen)
        if variant:
            if "variant" not in accepted:
                raise ParameterError("methods", f"{name} has no variants (in {entry!r})")
            chosen["variant"] = variant
        chosen.update(params.get(entry, {}))
        check_params(name, **chosen)  # a parameter the method does not take, a bad value
        out[entry] = chosen
    unused = sorted(set(shared) - used)
    if unused:
        raise ParameterError(unused[0], f"no compared method takes it ({', '.join(entries)})")
    return out


def compare_methods(
    checkpoint: str,
    shifts: Sequence[str],
    methods: Sequence[str],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 64,
    seed: int = 0,
    shuffle: bool = True,
    stream: str = "online",
    together: bool = False,
    full_set: bool = False,
    open_options: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
    device: str | None = None,
    progress: Progress = None,
    cancel: Callable[[], bool] | None = None,
) -> CompareTable:
    """The methods x shifts accuracy table (see the module docstring).

    checkpoint: a file or ``demo:...``; shifts: single data specs, one per column (``names``:
    their column names, default the specs); methods: entries (:func:`parse_methods`);
    params: ``{entry or "*": {name: value}}``; batch_size, seed, shuffle, stream: every run's;
    together: one run over all shifts per method (see the module docstring); full_set: also
    the full-set accuracy after the pass (per shift); open_options: ``arch``, ``trust``,
    ``nb_proxy``, ``split``, ``preprocess`` as :func:`protoview.core.opening.open_model_and_data`
    takes them; device: where the model runs (default: the best available, as
    :func:`protoview.core.device.pick_device`); progress(message) after each run;
    cancel() -> True stops between runs.
    """
    # Long on purpose: one loop over methods x shifts that restores the source weights, runs
    # one pass and scores each cell (a diverged run is a note), with the shared set-up (the
    # model opened once, its source weights, the data groups) around it.
    from protoview.core.adapt.stream import parse_stream
    from protoview.core.data import concatenate_datasets, decoded_images

    entries = parse_methods(list(methods))
    chosen = method_params(entries, params or {})
    spec = parse_stream(stream)
    shifts = list(shifts)
    if not shifts:
        raise ParameterError("shifts", "no shift to compare on")
    columns = list(names) if names is not None else shifts
    from protoview.core.device import pick_device

    model, datasets = _open_all(checkpoint, shifts, dict(open_options or {}))
    model.to(pick_device(device))
    source = copy.deepcopy(model.state_dict())
    rows, cols = len(entries), len(shifts)
    online = np.full((rows, cols), np.nan)
    full = np.full((rows, cols), np.nan) if full_set else None
    seconds = np.full((rows, cols), np.nan)
    notes: list[str] = []
    if together:
        data = concatenate_datasets(datasets, columns, ",".join(shifts))
        groups = [(slice(None), decoded_images(data))]
    else:
        groups = [(j, decoded_images(d)) for j, d in enumerate(datasets)]
    for i, entry in enumerate(entries):
        for where, dataset in groups:
            if cancel is not None and cancel():
                from protoview.errors import CancelledError

                raise CancelledError(f"cancelled at {entry}")
            model.load_state_dict(source)
            started = time.perf_counter()
            try:
                cells, after = _one_pass(model, entry, chosen[entry], dataset, batch_size,
                                         seed, shuffle, spec, full_set,
                                         len(shifts) if together else 1)
            except ProtoviewError as exc:
                if exc.where != "lr":  # a diverged run is a result, not a failure
                    raise
                notes.append(f"{entry} on {columns[where] if isinstance(where, int) else 'the stream'}: {exc}")
                cells, after = [np.nan], [np.nan]
            online[i, where] = cells[0] if isinstance(where, int) else cells
            if full is not None:
                full[i, where] = after[0] if isinstance(where, int) else after
            seconds[i, where if isinstance(where, int) else 0] = time.perf_counter() - started
            if progress is not None:
                shown = columns[where] if isinstance(where, int) else "all shifts"
                progress(f"{entry} on {shown}: online {_pct(float(np.nanmean(cells)))}")
    model.load_state_dict(source)
    settings = (f"batch {batch_size}, seed {seed}{'' if shuffle else ', no shuffle'}, "
                f"stream {spec.text()}"
                f"{' over all shifts together' if together else ', each shift from the source model'}")
    return CompareTable(entries, columns, online, full, seconds, notes, settings)


def _open_all(checkpoint: str, shifts: Sequence[str], options: dict[str, Any]):
    """The model (opened with the first shift) and every shift's dataset, fitted to it."""
    from protoview.core.data import fit_classes, open_dataset
    from protoview.core.opening import open_model_and_data

    model, first = open_model_and_data(checkpoint, shifts[0], **options)
    transform = getattr(first, "transform", None)
    if transform is None:
        raise ParameterError("data", f"{shifts[0]} holds precomputed features: adaptation "
                                     "needs the images")
    datasets = [first]
    for spec in shifts[1:]:  # the same preprocessing as the first (chosen once, as there)
        dataset = open_dataset(spec, transform)
        dataset.transform_source = first.transform_source
        fit_classes(dataset, model.info.head.num_classes)
        datasets.append(dataset)
    return model, datasets


def _one_pass(model, entry: str, params: dict, dataset, batch_size: int, seed: int,
              shuffle: bool, spec, full_set: bool, n_domains: int) -> tuple[list[float], list[float]]:
    """One pass of ``entry`` over ``dataset``: online accuracy per domain (one value when
    ``n_domains`` is 1) and, with ``full_set``, the full-set accuracy per domain after it."""
    import torch

    from protoview.core.adapt.registry import make_adapter
    from protoview.core.adapt.run import AdaptRun

    torch.manual_seed(seed)
    run = AdaptRun(make_adapter(entry.partition(":")[0], model, **params), dataset,
                   batch_size=batch_size, seed=seed, shuffle=shuffle, stream=spec)
    run.accelerate()
    records = run.run_pass()
    labels = run.labels if run.labels is not None else np.full(run.num_samples, -1)
    domains = run.domains if run.domains is not None and n_domains > 1 else np.zeros(run.num_samples, np.int64)
    cells = list(online_accuracy_by_domain(records, labels, domains, n_domains))
    if not full_set:
        return cells, [np.nan] * n_domains
    if n_domains == 1:
        return cells, [run.evaluate()]
    _feats, logits, full_labels = run.features_all()
    predictions = logits.argmax(1)
    after = []
    for d in range(n_domains):
        mask = (domains == d) & (full_labels >= 0)
        after.append(float((predictions[mask] == full_labels[mask]).mean()) if mask.any() else np.nan)
    return cells, after
