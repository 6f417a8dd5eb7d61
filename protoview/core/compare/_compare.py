"""The methods x shifts table of ``protoview compare`` (:func:`compare_methods`): each
method over each shift from the source checkpoint, for every seed (see the package's
docstring)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from protoview.core.compare._choices import check_metric, method_params, parse_methods, parse_seeds
from protoview.core.compare._pass import one_pass, open_all
from protoview.core.compare._protocol import table_protocol
from protoview.core.compare._table import CompareTable, pct
from protoview.errors import ParameterError, ProtoviewError

Progress = Callable[[str], None] | None


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
    """The methods x shifts accuracy table (see the package docstring).

    checkpoint: a file or ``demo:...``; shifts: single data specs, one per column (``names``:
    their column names, default the specs); methods: entries (:func:`parse_methods`);
    params: ``{entry or "*": {name: value}}``; batch_size, seed, shuffle, stream: every run's
    (``shuffle=None``: the data's own order, :func:`~protoview.core.adapt.stream.run_order`);
    seeds: run each method once per seed (in place of ``seed``), cells the mean ± sample std;
    metric: ``accuracy`` or ``error`` (100 - accuracy), what the table shows;
    together: one run over all shifts per method (see the package docstring); full_set: also
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

    model, datasets = open_all(checkpoint, shifts, dict(open_options or {}))
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
                    cells, after = one_pass(model, entry, chosen[entry], dataset, batch_size,
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
                             f"{pct(float(np.nanmean(cells)))}")
    model.load_state_dict(source)
    seed_text = (f"seed {seeds[0]}" if n_seeds == 1
                 else f"seeds {','.join(str(v) for v in seeds)}")
    settings = (f"batch {batch_size}, {seed_text}{'' if shuffle else ', file order'}, "
                f"stream {spec.text()}"
                f"{' over all shifts together' if together else ', each shift from the source model'}")
    protocol = table_protocol(model, datasets, columns, entries, chosen, spec=spec,
                              seeds=seeds, batch_size=batch_size, shuffle=shuffle, order=order,
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
