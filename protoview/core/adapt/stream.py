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

from typing import Any

from protoview.core.adapt._dirichlet import dirichlet_positions
from protoview.core.adapt._stream_plan import (
    StreamPlan,
    base_order,
    first_positions,
    stream_order,
    stream_plan,
)
from protoview.core.adapt._stream_spec import (
    DEFAULT_CONCENTRATION,
    DOMAIN_ORDERS,
    GRADUAL_SEVERITIES,
    LABEL_ORDERS,
    ONLINE,
    RESETS,
    TOOLKIT_SETTINGS,
    StreamSpec,
    names_domain_order,
    parse_stream,
)

__all__ = [
    "DEFAULT_CONCENTRATION",
    "DOMAIN_ORDERS",
    "GRADUAL_SEVERITIES",
    "LABEL_ORDERS",
    "ONLINE",
    "RESETS",
    "TOOLKIT_SETTINGS",
    "StreamPlan",
    "StreamSpec",
    "base_order",
    "dirichlet_positions",
    "first_positions",
    "fixed_order",
    "names_domain_order",
    "parse_stream",
    "run_order",
    "stream_order",
    "stream_plan",
]


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
