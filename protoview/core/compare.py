"""Methods x shifts: the accuracy (or error) table test-time adaptation papers print, seeded
and reproducible.

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
- Reproducible: before each run, ``torch.manual_seed(seed)`` (every device),
  ``numpy.random.seed(seed)`` and ``random.seed(seed)`` (as the toolkit's ``conf.py`` seeds
  its runs), and the run's batch order is drawn from ``numpy.random.default_rng([seed, 0])``.
- Several seeds (``seeds=[1, 2, 3, 4, 5]``, the toolkit's benchmark protocol): each method
  runs once per seed and a cell is the mean over the seeds ± their sample standard
  deviation (``ddof=1``); the CSV keeps every seed's values. One seed: one number per cell.
- ``metric="error"`` reports 100 - accuracy (%), as the toolkit's tables do.
- Every table carries its protocol (:attr:`CompareTable.protocol`: the setting, samples per
  domain, batch size, seeds, preprocessing and its source, order of domains, protoview
  version, each method's parameters with their defaults, the checkpoint and its sha256, the
  datasets) as ``# key: value`` lines above the CSV and a ``- key: value`` block above the
  Markdown table; :func:`read_protocol` reads it back, so two tables can be told apart.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoview.core.runs import online_accuracy_by_domain
from protoview.errors import ParameterError, ProtoviewError

Progress = Callable[[str], None] | None

#: What a table reports: ``accuracy`` (%), or ``error`` = 100 - accuracy (%), the toolkit's.
METRICS = ("accuracy", "error")
#: The largest seed: numpy.random.seed takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
#: The most seeds one table runs (each seed is one run of every method over every shift).
MAX_SEEDS = 1000
#: How the spread over seeds is measured (one place, named in every table's protocol).
SPREAD = "sample standard deviation over the seeds (ddof=1)"


@dataclass
class CompareTable:
    """rows: method entries; shifts: column names; online, full: (rows, shifts) float
    accuracies in [0, 1], the mean over the seeds (NaN: diverged or no labels; ``full`` None
    when not asked); seconds: (rows, shifts) per run, summed over the seeds (together: the
    run's time in each row's first cell); notes: what happened on the way (a diverged run,
    ...); settings: one line; seeds: the seeds run; per_seed_online, per_seed_full: (seeds,
    rows, shifts) each seed's accuracies (None: ``online`` / ``full`` is the one seed's);
    metric: ``accuracy`` or ``error``, what the table shows; protocol: ``{key: value}``
    lines that say how the table was made (see the module docstring)."""

    rows: list[str]
    shifts: list[str]
    online: np.ndarray
    full: np.ndarray | None = None
    seconds: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    settings: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    per_seed_online: np.ndarray | None = None
    per_seed_full: np.ndarray | None = None
    metric: str = "accuracy"
    protocol: dict[str, str] = field(default_factory=dict)

    def means(self, values: np.ndarray) -> np.ndarray:
        """(rows,) mean over the shifts (NaN when a cell is NaN, as a table should show)."""
        return values.mean(axis=1) if values.size else np.zeros(len(self.rows))

    @property
    def spread(self) -> bool:
        """Whether cells show mean ± std (several seeds)."""
        return len(self.seeds) > 1

    def _per_seed(self, full: bool) -> np.ndarray:
        """(seeds, rows, shifts + 1) each seed's values in the table's metric (fractions),
        the last column the mean over the shifts."""
        values = self.per_seed_full if full else self.per_seed_online
        if values is None:
            values = (self.full if full else self.online)[None]
        values = np.asarray(values, np.float64)
        if self.metric == "error":
            values = 1.0 - values
        mean = values.mean(axis=2, keepdims=True) if values.shape[2] else np.zeros(
            (*values.shape[:2], 1))
        return np.concatenate([values, mean], axis=2)

    def summary(self, full: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), each (rows, shifts + 1) in the table's metric (fractions, the last
        column the mean over the shifts): the mean over the seeds and their sample standard
        deviation (ddof=1; NaN with one seed)."""
        values = self._per_seed(full)
        if values.shape[0] == 1:
            return values[0], np.full(values.shape[1:], np.nan)
        return values.mean(axis=0), values.std(axis=0, ddof=1)

    def _cell(self, i: int, j: int | None) -> str:
        k = len(self.shifts) if j is None else j
        mean, std = self.summary()
        text = self._number(mean[i, k], std[i, k])
        if self.full is not None:
            mean_full, std_full = self.summary(full=True)
            full = self._number(mean_full[i, k], std_full[i, k])
            if full != text:  # the README's habit: one number when both agree
                text += f" / {full}"
        return text

    def _number(self, mean: float, std: float) -> str:
        if not self.spread:
            return _pct(mean)
        return f"{_pct(mean)} ± {100 * std:.2f}" if math.isfinite(std) else _pct(mean)

    def title(self) -> str:
        """What the cells are: ``online accuracy over one pass (%)`` (with the full-set
        part and the spread over seeds when there are)."""
        what = f"online {self.metric} over one pass" + (
            f" / full-set {self.metric} after it" if self.full is not None else "")
        spread = f", mean ± std over {len(self.seeds)} seeds" if self.spread else ""
        return f"{what} (%){spread}"

    def text(self) -> str:
        """An aligned plain-text table (percent, one decimal; ± two)."""
        head = ["method", *self.shifts, "mean"]
        body = [[row, *(self._cell(i, j) for j in range(len(self.shifts))), self._cell(i, None)]
                for i, row in enumerate(self.rows)]
        widths = [max(len(r[k]) for r in [head, *body]) for k in range(len(head))]
        lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                           for k, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in [head, *body]]
        return "\n".join([f"{self.title()}; {self.settings}", *lines])

    def markdown(self, protocol: bool = True) -> str:
        """A Markdown table, cells as in :meth:`text`; above it (``protocol``) the protocol
        as a ``- key: value`` list, the metric first."""
        head = ["method", *self.shifts, "mean"]
        lines = [*(f"- {k}: {v}" for k, v in self._protocol()), ""] if protocol else []
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, row in enumerate(self.rows):
            cells = [row, *(self._cell(i, j) for j in range(len(self.shifts))), self._cell(i, None)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def csv(self, protocol: bool = True) -> str:
        """CSV in the table's metric (percent, two decimals), a diverged run empty.

        Above it (``protocol``) ``# key: value`` lines (``pandas.read_csv(path,
        comment="#")`` skips them). Columns: ``method``, one per shift and ``mean``, then
        ``<shift> full`` ... ``mean full`` when the full set was evaluated. With several
        seeds a ``seed`` column follows ``method``, and each method has one row per seed
        and two summary rows, ``mean`` and ``std`` (sample std over the seeds, ddof=1)."""
        out = io.StringIO()
        if protocol:
            out.writelines(f"# {k}: {v}\n" for k, v in self._protocol())
        writer = csv.writer(out, lineterminator="\n")
        columns = [*self.shifts, "mean"]
        head = ["method", *(["seed"] if self.spread else []), *columns]
        if self.full is not None:
            head += [f"{s} full" for s in columns]
        writer.writerow(head)
        parts = [self._per_seed(False), *([self._per_seed(True)] if self.full is not None else [])]
        values = np.concatenate(parts, axis=2)  # (seeds, rows, all columns)
        summaries = [self.summary(False), *([self.summary(True)] if self.full is not None else [])]
        mean = np.concatenate([m for m, _ in summaries], axis=1)
        std = np.concatenate([s for _, s in summaries], axis=1)
        for i, row in enumerate(self.rows):
            if not self.spread:
                writer.writerow([row, *_cells(values[0, i])])
                continue
            for s, seed in enumerate(self.seeds):
                writer.writerow([row, seed, *_cells(values[s, i])])
            writer.writerow([row, "mean", *_cells(mean[i])])
            writer.writerow([row, "std", *_cells(std[i])])
        return out.getvalue()

    def _protocol(self) -> list[tuple[str, str]]:
        return [("metric", self.title()),
                *((k, " ".join(str(v).split())) for k, v in self.protocol.items())]


def _cells(values: np.ndarray) -> list[str]:
    return [f"{100 * v:.2f}" if math.isfinite(v) else "" for v in values]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "n/a"


def read_protocol(text: str) -> dict[str, str]:
    """The protocol of a table written by :meth:`CompareTable.csv` or
    :meth:`CompareTable.markdown`: ``{key: value}`` from its ``# key: value`` /
    ``- key: value`` lines above the table (the metric under ``metric``)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(("# ", "- ")) and ": " in line:
            key, _, value = line[2:].partition(": ")
            out[key] = value
        elif line.strip():
            break  # the table itself
    return out


def parse_seeds(text: str | Sequence[int], where: str = "seeds") -> list[int]:
    """Seeds from ``"1,2,3"``, ``"1-5"`` (inclusive) or a mix (``"0,10-12"``), or a
    sequence of ints. Raises ParameterError naming ``where`` for an empty or malformed
    list, a negative seed, one above 2**32 - 1, a range that runs backwards, more than
    :data:`MAX_SEEDS` seeds, a seed twice."""
    usage = "expected seeds like 1,2,3 or 1-5"
    spans: list[tuple[int, int]] = []
    if isinstance(text, str):
        items = [t.strip() for t in text.split(",")]
        if not text.strip() or not all(items):
            raise ParameterError(where, f"{usage}, got {text!r}")
        for item in items:
            if item.startswith("-"):
                raise ParameterError(where, f"a seed must be >= 0, got {item}")
            first, dash, last = (p.strip() for p in item.partition("-"))
            if not first.isdecimal() or (dash and not last.isdecimal()):
                raise ParameterError(where, f"{usage}, got {item!r}")
            spans.append((int(first), int(last or first)))
            if spans[-1][1] < spans[-1][0]:
                raise ParameterError(where, f"the range {item} runs backwards")
    else:
        for seed in text:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
                raise ParameterError(where, f"a seed must be a whole number, got {seed!r}")
            spans.append((int(seed), int(seed)))
        if not spans:
            raise ParameterError(where, f"{usage}, got none")
    for low, high in spans:
        for seed in (low, high):
            if not 0 <= seed <= MAX_SEED:
                raise ParameterError(where, f"a seed must be between 0 and {MAX_SEED}, got {seed}")
    if sum(high - low + 1 for low, high in spans) > MAX_SEEDS:
        raise ParameterError(where, f"at most {MAX_SEEDS} seeds (each one a run of every method)")
    seeds = [seed for low, high in spans for seed in range(low, high + 1)]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ParameterError(where, f"seed {twice[0]} is listed twice")
    return seeds


def check_metric(metric: str, where: str = "metric") -> str:
    """``metric`` if it is one of :data:`METRICS`, else ParameterError naming ``where``."""
    if metric not in METRICS:
        raise ParameterError(where, f"unknown metric {metric!r}; choose {' or '.join(METRICS)}")
    return metric


def seed_everything(seed: int) -> None:
    """Seed torch (every device), numpy's and python's global generators with ``seed``,
    as the toolkit (mariodoebler/test-time-adaptation ``conf.py``) does before a run."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    seeds: str | Sequence[int] | None = None,
    metric: str = "accuracy",
    shuffle: bool | None = None,
    stream: str = "online",
    together: bool = False,
    full_set: bool = False,
    open_options: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
    device: str | None = None,
    progress: Progress = None,
    cancel: Callable[[], bool] | None = None,
    source_data: str = "",
) -> CompareTable:
    """The methods x shifts accuracy table (see the module docstring).

    checkpoint: a file or ``demo:...``; shifts: single data specs, one per column (``names``:
    their column names, default the specs); methods: entries (:func:`parse_methods`);
    params: ``{entry or "*": {name: value}}``; batch_size, seed, shuffle, stream: every run's
    (``shuffle=None``: the data's own order, :func:`~protoview.core.adapt.stream.run_order`);
    seeds: run each method once per seed (in place of ``seed``), cells the mean ± sample std;
    metric: ``accuracy`` or ``error`` (100 - accuracy), what the table shows;
    together: one run over all shifts per method (see the module docstring); full_set: also
    the full-set accuracy after the pass (per shift); open_options: ``arch``, ``trust``,
    ``nb_proxy``, ``split``, ``preprocess`` as :func:`protoview.core.opening.open_model_and_data`
    takes them; device: where the model runs (default: the best available, as
    :func:`protoview.core.device.pick_device`); progress(message) after each run;
    cancel() -> True stops between runs; source_data: labelled source data for the methods
    that need them (RMT; ``--source-data``), prepared as the first shift.
    """
    # Long on purpose: one loop over seeds x methods x shifts that restores the source
    # weights, runs one pass and scores each cell (a diverged run is a note), with the shared
    # set-up (the model opened once, its source weights, the data groups) around it.
    from protoview.core.adapt.stream import parse_stream
    from protoview.core.data import concatenate_datasets, decoded_images

    entries = parse_methods(list(methods))
    chosen = method_params(entries, params or {})
    spec = parse_stream(stream)
    seeds = parse_seeds(seeds if seeds is not None else [seed])
    check_metric(metric)
    shifts = list(shifts)
    if not shifts:
        raise ParameterError("shifts", "no shift to compare on")
    columns = list(names) if names is not None else shifts
    from protoview.core.device import pick_device

    model, datasets = _open_all(checkpoint, shifts, dict(open_options or {}))
    from protoview.core.live import open_source_data

    source_set = open_source_data(source_data, datasets[0], model)
    where_run = pick_device(device)
    model.to(where_run)
    source = copy.deepcopy(model.state_dict())
    from protoview.core.adapt.stream import run_order

    shuffle, order = run_order(datasets[0], shuffle, seeds[0])
    n_seeds, rows, cols = len(seeds), len(entries), len(shifts)
    online = np.full((n_seeds, rows, cols), np.nan)
    full = np.full((n_seeds, rows, cols), np.nan) if full_set else None
    seconds = np.full((n_seeds, rows, cols), np.nan)
    notes: list[str] = []
    if together:
        data = concatenate_datasets(datasets, columns, ",".join(shifts))
        groups = [(slice(None), decoded_images(data))]
    else:
        groups = [(j, decoded_images(d)) for j, d in enumerate(datasets)]
    for s, run_seed in enumerate(seeds):
        with_seed = f", seed {run_seed}" if n_seeds > 1 else ""
        for i, entry in enumerate(entries):
            for where, dataset in groups:
                if cancel is not None and cancel():
                    from protoview.errors import CancelledError

                    raise CancelledError(f"cancelled at {entry}{with_seed}")
                model.load_state_dict(source)
                started = time.perf_counter()
                shown = columns[where] if isinstance(where, int) else "all shifts"
                try:
                    cells, after = _one_pass(model, entry, chosen[entry], dataset, batch_size,
                                             run_seed, shuffle, spec, full_set,
                                             len(shifts) if together else 1, source_set)
                except ProtoviewError as exc:
                    if exc.where != "lr":  # a diverged run is a result, not a failure
                        raise
                    on = shown if isinstance(where, int) else "the stream"
                    notes.append(f"{entry} on {on}{with_seed}: {exc}")
                    cells, after = [np.nan], [np.nan]
                online[s, i, where] = cells[0] if isinstance(where, int) else cells
                if full is not None:
                    full[s, i, where] = after[0] if isinstance(where, int) else after
                seconds[s, i, where if isinstance(where, int) else 0] = (
                    time.perf_counter() - started)
                if progress is not None:
                    progress(f"{entry} on {shown}{with_seed}: online "
                             f"{_pct(float(np.nanmean(cells)))}")
    model.load_state_dict(source)
    seed_text = (f"seed {seeds[0]}" if n_seeds == 1
                 else f"seeds {','.join(str(v) for v in seeds)}")
    settings = (f"batch {batch_size}, {seed_text}{'' if shuffle else ', file order'}, "
                f"stream {spec.text()}"
                f"{' over all shifts together' if together else ', each shift from the source model'}")
    protocol = _protocol(model, datasets, columns, entries, chosen, spec=spec, seeds=seeds,
                         batch_size=batch_size, shuffle=shuffle, order=order,
                         together=together,
                         checkpoint=checkpoint, device=str(where_run))
    return CompareTable(entries, columns, online.mean(axis=0),
                        full.mean(axis=0) if full is not None else None,
                        _summed(seconds), notes, settings, list(seeds),
                        online if n_seeds > 1 else None,
                        full if full is not None and n_seeds > 1 else None, metric, protocol)


def _summed(seconds: np.ndarray) -> np.ndarray:
    """(rows, shifts) seconds summed over the seeds, NaN where no run was timed."""
    return np.where(np.isnan(seconds).all(axis=0), np.nan, np.nansum(seconds, axis=0))


def _protocol(model, datasets, columns: Sequence[str], entries: Sequence[str],
              chosen: Mapping[str, dict], *, spec, seeds: Sequence[int], batch_size: int,
              shuffle: bool, order: str, together: bool, checkpoint: str,
              device: str) -> dict[str, str]:
    """How a table was made, ``{key: value}`` (one line each; see the module docstring)."""
    import platform

    import torch

    from protoview import __version__
    from protoview.core.adapt.registry import method_defaults

    if not together:
        runs = "each shift its own run from the source model"
    elif spec.domains == "continual":
        runs = "one run per method over all shifts, one after another in the order given"
    else:
        runs = "one run per method over all shifts together"
    described = f" ({spec.describe()})" if spec.describe() != spec.text() else ""
    info = getattr(model, "info", None)
    first = datasets[0]
    transform = first.transform
    out = {
        "seeds": ", ".join(str(s) for s in seeds),
        "spread": SPREAD if len(seeds) > 1 else "none (one seed)",
        "seeding": ("before each run torch.manual_seed(seed), numpy.random.seed(seed), "
                    "random.seed(seed); the stream's order "
                    + ("from numpy.random.default_rng([seed, 0])" if shuffle
                       else f"the dataset's order ({order})")
                    + (", its Dirichlet draws from numpy.random.RandomState([seed, 0])"
                       if spec.labels == "dirichlet" else "")),
        "setting": f"{spec.text()}{described}; {runs}",
        "order_of_domains": ", ".join(columns),
        "samples_per_domain": ", ".join(f"{c} {len(d)}" for c, d in zip(columns, datasets,
                                                                         strict=True)),
        "batch_size": str(batch_size),
        "preprocess": f"{transform.option()} ({transform.describe()})",
        "preprocess_source": str(getattr(first, "transform_source", "") or "unknown"),
        "checkpoint": checkpoint,
    }
    if info is not None:
        out |= {"checkpoint_path": info.path, "checkpoint_sha256": info.sha256 or "unknown",
                "model": f"{info.arch}; {info.format}; {info.head.describe()}"}
    out |= {f"dataset {c}": f"{d.description} ({getattr(d, 'source', '')})"
            for c, d in zip(columns, datasets, strict=True)}
    for entry in entries:
        values = method_defaults(entry.partition(":")[0]) | chosen[entry]
        out[f"method {entry}"] = json.dumps(values, sort_keys=False, default=str)
    out |= {"device": device, "protoview_version": __version__,
            "software": (f"python {platform.python_version()}, torch {torch.__version__}, "
                         f"numpy {np.__version__}")}
    return out


def _open_all(checkpoint: str, shifts: Sequence[str], options: dict[str, Any]):
    """The model (opened with the first shift) and every shift's dataset, fitted to it."""
    from protoview.core.data import fit_classes, open_dataset
    from protoview.core.opening import check_has_head, open_model_and_data

    model, first = open_model_and_data(checkpoint, shifts[0], **options)
    check_has_head(model)
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
              shuffle: bool, spec, full_set: bool, n_domains: int,
              source: Any = None) -> tuple[list[float], list[float]]:
    """One pass of ``entry`` over ``dataset``: online accuracy per domain (one value when
    ``n_domains`` is 1) and, with ``full_set``, the full-set accuracy per domain after it."""
    from protoview.core.adapt.registry import make_adapter
    from protoview.core.adapt.run import AdaptRun
    from protoview.core.heads import predicted_classes

    seed_everything(seed)
    run = AdaptRun(make_adapter(entry.partition(":")[0], model, **params), dataset,
                   batch_size=batch_size, seed=seed, shuffle=shuffle, stream=spec, source=source)
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
    predictions = predicted_classes(logits, run.prediction_map)
    after = []
    for d in range(n_domains):
        mask = (domains == d) & (full_labels >= 0)
        after.append(float((predictions[mask] == full_labels[mask]).mean()) if mask.any() else np.nan)
    return cells, after
