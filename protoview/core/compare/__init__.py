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

from protoview.core.compare._choices import (
    MAX_SEED,
    MAX_SEEDS,
    METRICS,
    check_metric,
    method_params,
    parse_methods,
    parse_seeds,
)
from protoview.core.compare._compare import compare_methods
from protoview.core.compare._pass import seed_everything
from protoview.core.compare._protocol import SPREAD
from protoview.core.compare._table import CompareTable, read_protocol

__all__ = [
    "MAX_SEED",
    "MAX_SEEDS",
    "METRICS",
    "SPREAD",
    "CompareTable",
    "check_metric",
    "compare_methods",
    "method_params",
    "parse_methods",
    "parse_seeds",
    "read_protocol",
    "seed_everything",
]
