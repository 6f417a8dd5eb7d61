"""The table of ``protoview compare``: :class:`CompareTable`, its cells (the mean over the
seeds, ± their spread), and the text, CSV and Markdown it prints with its protocol above
(:func:`read_protocol` reads the protocol back)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CompareTable:
    """rows: method entries; shifts: column names; online, full: (rows, shifts) float
    accuracies in [0, 1], the mean over the seeds (NaN: diverged or no labels; ``full`` None
    when not asked); seconds: (rows, shifts) per run, summed over the seeds (together: the
    run's time in each row's first cell); notes: what happened on the way (a diverged run,
    ...); settings: one line; seeds: the seeds run; per_seed_online, per_seed_full: (seeds,
    rows, shifts) each seed's accuracies (None: ``online`` / ``full`` is the one seed's);
    metric: ``accuracy`` or ``error``, what the table shows; protocol: ``{key: value}``
    lines that say how the table was made (see :mod:`protoview.core.compare`)."""

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
            return pct(mean)
        return f"{pct(mean)} ± {100 * std:.2f}" if math.isfinite(std) else pct(mean)

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


def pct(value: float) -> str:
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
