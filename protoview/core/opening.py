"""Opening a checkpoint and a dataset so that they fit each other (every command, the window).

The preprocessing comes from ``--preprocess`` or the model (:mod:`protoview.core.preprocess`);
a cosine head whose proxies per class are unknown is matched to the data's class count; the
labels are checked against the head. :class:`protoview.core.session.Session` and the command
line both open through :func:`open_model_and_data`.

A head that numbers the classes in its own order (PyCIL's seeded class order: head class
``k`` is the dataset's class ``order[k]``) is put in the data's order with ``class_order``
(``--class-order``, :func:`class_order_for`, :func:`apply_class_order`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from protoview.errors import ParameterError

#: PyCIL's seed: every config in its ``exps/`` sets ``"shuffle": true, "seed": [1993]``
PYCIL_SEED = 1993
_OPTION = "--class-order"


def checkpoint_path(checkpoint: str) -> str:
    """The file of ``checkpoint``: itself, or the demo's for ``demo`` / ``demo:linear`` / ``demo:cosine``."""
    if checkpoint in ("demo", "demo:linear", "demo:cosine"):
        from protoview.core.demo import demo_checkpoint_path

        return str(demo_checkpoint_path(checkpoint.partition(":")[2] or "cosine"))
    return checkpoint


def open_model_and_data(
    checkpoint: str, data: str, *, arch: str | None = None, trust: bool = False,
    nb_proxy: int | None = None, split: str | None = None, preprocess: str | None = None,
    class_order: str | None = None, warn: bool = True, features: str = "backbone",
    dino_weights: str | None = None,
) -> tuple[Any, Any]:
    """Load ``checkpoint`` and the dataset ``data`` so that they fit each other.

    checkpoint: a file or ``demo`` / ``demo:linear`` / ``demo:cosine``; data: any spelling of
    :func:`protoview.core.data.open_dataset`; arch, trust, nb_proxy, split, preprocess,
    features, dino_weights: as :func:`protoview.core.checkpoint.load_checkpoint` takes them
    (the CLI's options).

    - Preprocessing: ``preprocess``, else the model's own (checkpoint, timm, torchvision,
      built-in), else the default with one warning naming ``--preprocess`` (``warn``); the
      built-in demo data keep their own when the model says nothing.
    - Proxies per class: a cosine head whose ``nb_proxy`` is neither stored nor given is
      matched to the data's class count (rows = classes x proxies), with a note; when the
      rows are not a multiple of it, a ParameterError naming ``--nb-proxy``.
    - ImageNet-A / -R / -D109 data restrict a 1000-class head to their classes
      (:func:`restrict_to_subset`).
    - A head in a class order of its own is put in the data's (``class_order``, the
      ``--class-order`` text: :func:`class_order_for`; PyCIL's seeded order by default for
      a PyCIL checkpoint).
    - Labels are checked against the head's classes (an encoder without a head: against
      the data's own class names).

    Returns (SplitModel, dataset or FeatureSet).
    """
    import warnings

    from protoview.core.checkpoint import load_checkpoint
    from protoview.core.data import FeatureSet, fit_classes, open_dataset
    from protoview.core.preprocess import default_warning
    from protoview.core.warnings import ProtoviewWarning

    path = checkpoint_path(checkpoint)
    options = dict(trust=trust, nb_proxy=nb_proxy, split=split, preprocess=preprocess,
                   features=features, dino_weights=dino_weights)
    model = load_checkpoint(path, arch, **options)
    info = model.info
    follow_data(info, data)
    demo_data = data.strip() == "demo" or data.strip().startswith("demo:")
    own = None if demo_data and info.transform_source == "default" else info.transform
    dataset = open_dataset(data, own)
    images = not isinstance(dataset, FeatureSet)
    if images:
        dataset.transform_source = "built-in (demo data)" if own is None else info.transform_source
    classes = classes_for_proxies(info, dataset, path)
    if classes is not None:
        with warnings.catch_warnings():  # the first load already said everything else
            warnings.simplefilter("ignore")
            model = load_checkpoint(path, arch, num_classes=classes, **options)
        info = model.info
        follow_data(info, data)
    model = restrict_to_subset(model, dataset)
    names = getattr(dataset, "class_names", None) or []
    model = apply_class_order(model, class_order_for(class_order, model.info, len(names)))
    info = model.info
    if model.has_head:
        fit_classes(dataset, info.head.num_classes)
    else:  # an encoder: the labels need only be the data's own
        fit_classes(dataset, len(getattr(dataset, "class_names", []) or []) or _label_count(dataset))
    if warn and images and info.transform_source == "default" and own is not None:
        warnings.warn(ProtoviewWarning(default_warning(info.arch)), stacklevel=2)
    return model, dataset


def open_request(req: Any, *, warn: bool = True) -> tuple[Any, Any]:
    """The model and the dataset of an :class:`~protoview.core.requests.OpenRequest`, fitted to
    each other (:func:`open_model_and_data` with the request's options)."""
    return open_model_and_data(
        req.checkpoint, req.data, arch=req.arch, trust=req.trust, nb_proxy=req.nb_proxy,
        split=req.split, preprocess=req.preprocess, class_order=req.class_order, warn=warn,
        features=getattr(req, "features", "backbone"), dino_weights=getattr(req, "dino_weights", None),
    )


def _label_count(dataset: Any) -> int:
    import numpy as np

    labels = np.asarray(getattr(dataset, "labels", None) if getattr(dataset, "labels", None) is not None else [], np.int64)
    return int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 1



def follow_data(info: Any, data: str) -> None:
    """A built-in architecture's preprocessing follows the data where its home project's
    does (PyCIL: per dataset; :data:`~protoview.core.checkpoint._preprocess.HOME_DATA_PREPROCESS`):
    ``info.transform`` and its source are changed, with a note. Nothing when the
    preprocessing came from elsewhere (``--preprocess``, the checkpoint, ...)."""
    from protoview.core.checkpoint import home_data_transform

    if info.transform_source != "built-in":
        return
    found = home_data_transform(info.arch, data)
    if found is not None:
        info.transform, info.transform_source = found
        info.notes.append(f"preprocessing for {data.split(':', 1)[0]} data: {found[1]} "
                          f"({found[0].describe()})")


def classes_for_proxies(info: Any, dataset: Any, path: str) -> int | None:
    """The data's class count when a cosine head's proxies per class were only assumed and
    its rows are several per data class (reload with ``num_classes`` = it: the head has
    ``rows / classes`` proxies a class); None when nothing is to change.

    Raises ParameterError (``--nb-proxy``) when the rows are not a multiple of the classes.
    """
    classes = len(getattr(dataset, "class_names", []) or [])
    rows = info.head.num_proxies
    if info.nb_proxy_from != "assumed" or not classes or rows <= classes:
        return None  # fewer rows than classes: a task checkpoint's head, one proxy a class
    if rows % classes:
        raise ParameterError(
            "--nb-proxy",
            f"the cosine head of {path} has {rows} proxy rows, not a multiple of the {classes} "
            f"classes of {dataset.source}; pass --nb-proxy (proxies per class)",
            needs=("nb_proxy",),
        )
    return classes


def restrict_to_subset(model: Any, dataset: Any) -> Any:
    """``model`` with its head restricted to the classes of ``dataset`` when the data are a
    class subset of ImageNet-1k (``dataset.head_classes``, see
    :mod:`protoview.core.data._variants`) and the head has ImageNet's 1000 classes; else
    ``model`` unchanged. The restriction is noted in ``model.info.notes``. Data scored
    through a many-to-one map (ImageNet-D) get :func:`map_predictions` instead."""
    from protoview.core.heads import ClassSubset, describe_head

    if getattr(dataset, "prediction_map", None) is not None:
        return map_predictions(model, dataset)
    subset = getattr(dataset, "head_classes", None)
    info = model.info
    if subset is None or info is None or info.head.num_classes != 1000 or len(subset) == 1000:
        return model
    model.classifier = ClassSubset(model.classifier, subset)
    info.head = describe_head(model.classifier)
    if info.class_names and len(info.class_names) == 1000:
        info.class_names = [info.class_names[k] for k in subset]
    name = (getattr(dataset, "benchmark", None) or {}).get("dataset") or "the data"
    info.notes.append(
        f"head restricted to the {len(subset)} classes of {name} (of its 1000): logits[:, "
        "classes in ImageNet order], as the authors' evaluation and the toolkit score them"
    )
    return model


def map_predictions(model: Any, dataset: Any) -> Any:
    """``model`` with its head wrapped in :class:`~protoview.core.heads.MappedHead` when the
    data score predictions through a many-to-one map (``dataset.prediction_map``: ImageNet-D's
    164 classes) and the head has the map's classes (ImageNet's 1000); else unchanged. The
    logits stay the head's own; noted in ``model.info.notes``."""
    from protoview.core.heads import MappedHead

    mapping = dataset.prediction_map
    info = model.info
    if info is None or info.head.num_classes != len(mapping.classes) \
            or isinstance(model.classifier, MappedHead):
        return model
    model.classifier = MappedHead(model.classifier, mapping)
    info.notes.append(
        f"predictions mapped to the {mapping.num_classes} classes of {mapping.name} as the "
        f"authors' evaluation scores them (the toolkit's IMAGENET_D_MAPPING: the argmax of "
        f"the {len(mapping.classes)} logits, then its class; {mapping.unmapped} ImageNet "
        f"classes are none of them and never right); adaptation sees all "
        f"{len(mapping.classes)} logits"
    )
    return model


@dataclass(frozen=True)
class ClassOrder:
    """A head's class order: head class ``k`` is the data's class ``order[k]``; ``source``
    says whose (``"PyCIL's, seed 1993"``, ``"from FILE"``)."""

    order: tuple[int, ...]  # () for the data's own order (``--class-order data``)
    source: str

    @property
    def head_of_data_class(self) -> list[int]:
        """For each data class ``y``, its head class (``order.index(y)``, as PyCIL's
        ``_map_new_class_index`` maps the labels)."""
        where = [0] * len(self.order)
        for k, y in enumerate(self.order):
            where[y] = k
        return where

    def head_classes(self, held: int) -> list[int]:
        """The data classes of a head's first ``held`` classes: ``order[:held]`` (the
        data's own ``0..held-1`` for an empty order)."""
        return list(self.order[:held]) if self.order else list(range(held))

    def describe(self) -> str:
        if not self.order:
            return f"class order {self.source}: head class k is the data's class k"
        first = ", ".join(f"{k} -> {y}" for k, y in enumerate(self.order[:4]))
        return (f"class order {self.source}: head class k is the data's class order[k] "
                f"({first}, ...); the logits are put in the data's class order")


def pycil_class_order(classes: int, seed: int = PYCIL_SEED) -> tuple[int, ...]:
    """PyCIL's class order for ``classes`` classes (``utils/data_manager.py``
    ``DataManager._setup_data``: ``np.random.seed(seed); order =
    np.random.permutation(len(order)).tolist()``), drawn from a generator of its own with the
    same seed (the same numbers; numpy's global generator is left alone)."""
    import numpy as np

    return tuple(int(v) for v in np.random.RandomState(seed).permutation(classes))


def _read_order_file(path: str, classes: int) -> tuple[int, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(_OPTION, f"cannot read {path}: {exc}") from None
    words = text.replace(",", " ").replace("[", " ").replace("]", " ").split()
    try:
        order = tuple(int(w) for w in words)
    except ValueError:
        raise ParameterError(path, "a class order file holds class indices (integers, one "
                                   "per head class, separated by spaces, commas or lines)") from None
    if sorted(order) != list(range(classes)):
        raise ParameterError(path, f"holds {len(order)} indices, not an order of the data's "
                                   f"{classes} classes (each of 0..{classes - 1} once)")
    return order


def class_order_for(option: str | None, info: Any, classes: int) -> ClassOrder | None:
    """The class order ``--class-order`` names for a head described by ``info`` on data of
    ``classes`` classes, or None (the head's class k is the data's class k).

    ``auto`` (default, also None / ""): PyCIL's order (seed 1993) for a PyCIL checkpoint
    (``info.class_order == "pycil"``) whose head holds at most the data's classes (a task
    checkpoint's head of ``T`` classes holds the data classes ``order[:T]``), else None;
    ``data``: the data's own (an empty ``order``: the user says so, nothing changes); ``pycil`` / ``pycil:SEED``: PyCIL's order with that seed; anything else:
    a file of class indices. Raises ParameterError naming ``--class-order`` (or the file)
    when the order cannot apply (the head has more classes than the data).
    """
    text = (option or "auto").strip()
    word, _, rest = text.partition(":")
    if text == "data":
        return ClassOrder((), "the data's (--class-order data)")
    if text == "auto":
        pycil = getattr(info, "class_order", "") == "pycil"
        if not pycil or not 0 < info.head.num_classes <= classes:
            return None
        return ClassOrder(pycil_class_order(classes), f"PyCIL's, seed {PYCIL_SEED} (its configs)")
    if word == "pycil" and not os.path.exists(text):
        try:
            seed = int(rest) if rest else PYCIL_SEED
        except ValueError:
            raise ParameterError(_OPTION, f"pycil:SEED takes an integer seed, got {rest!r}") from None
        if seed < 0 or seed >= 2**32:
            raise ParameterError(_OPTION, f"the seed must lie in 0..2**32-1, got {seed}")
        order, source = pycil_class_order(classes, seed), f"PyCIL's, seed {seed}"
    elif os.path.exists(text):
        order, source = _read_order_file(text, classes), f"from {text}"
    else:
        raise ParameterError(_OPTION, f"expected auto, data, pycil, pycil:SEED or a file of "
                                      f"class indices; {text!r} is none of them (no such file)")
    if not classes:
        raise ParameterError(_OPTION, "the data name no classes: a class order needs them")
    if info.head.num_classes > classes:
        raise ParameterError(
            _OPTION, f"the head has {info.head.num_classes} classes and the data {classes}: a "
                     "class order maps every class of the head to one of the data (give the "
                     "data of all the run's classes; a task checkpoint's head holds the first "
                     "classes of the order, the ones seen so far)")
    return ClassOrder(order, source)


def _say_order(info: Any, order: ClassOrder) -> None:
    """``info`` names the order its head follows: PyCIL's remark becomes the order applied."""
    info.notes[:] = [n for n in info.notes if not n.startswith("PyCIL numbers classes")]
    info.notes.append(order.describe())
    info.class_order = order.source


def note_class_order(info: Any, order: ClassOrder | None) -> None:
    """Say in ``info`` which order its head's classes follow: the PyCIL remark becomes the
    order applied (or, when none is, stays the one line that says so)."""
    if order is None:
        return
    _say_order(info, order)
    held = info.head.held
    if order.order and held < len(order.order):
        info.notes.append(
            f"a task checkpoint: its head holds {held} of the data's {len(order.order)} classes "
            f"(the data classes order[:{held}]); the others are absent, never predicted")
    if order.order and info.class_names and len(info.class_names) == len(order.order):
        names = list(info.class_names)  # the head's names, now in the data's order
        info.class_names = [names[k] for k in order.head_of_data_class]


def apply_class_order(model: Any, order: ClassOrder | None) -> Any:
    """``model`` with its head's logits in the data's class order (a
    :class:`~protoview.core.heads.ClassSubset` taking, for data class ``y``, head class
    ``order.index(y)``: the logits are the head's own, reordered to the bit), noted in
    ``model.info``; ``model`` unchanged when ``order`` is None.

    A head of fewer classes than the order (a task checkpoint of a class-incremental run:
    its ``T`` classes are the data classes ``order[:T]``) becomes a
    :class:`~protoview.core.heads.ClassScatter`: the data's classes, those it lacks absent
    (never predicted, probability 0; see :data:`~protoview.core.heads.ABSENT_MARGIN`)."""
    if order is None:
        return model
    from protoview.core.heads import ClassScatter, ClassSubset, describe_head

    held = describe_head(model.classifier).num_classes
    if order.order and held < len(order.order):
        model.classifier = ClassScatter(model.classifier, order.head_classes(held),
                                        len(order.order))
    elif order.order:
        model.classifier = ClassSubset(model.classifier, order.head_of_data_class)
    if model.info is not None:
        model.info.head = describe_head(model.classifier)
        note_class_order(model.info, order)
    return model


def not_adaptable(model: Any) -> str:
    """Why ``model`` cannot be adapted by any method but ``none`` ("" when it can): an
    encoder without a classifier head (:func:`check_has_head`), or a head that lacks some of
    the data's classes (:func:`~protoview.core.adapt.registry.refuse_partial_head`)."""
    from protoview.core.adapt.registry import refuse_partial_head

    try:
        check_has_head(model)
        refuse_partial_head(model)
    except ParameterError as exc:
        if exc.where and exc.where != "method":  # the checkpoint: "NAME is an encoder ..."
            return f"{os.path.basename(exc.where)} {exc.problem}"
        return exc.problem
    return ""


def check_has_head(model: Any) -> None:
    """Raise ParameterError naming the checkpoint when ``model`` is an encoder without a
    classifier head (test-time adaptation and ``compare`` need its logits), with the fix."""
    if getattr(model, "has_head", True):
        return
    info = model.info
    what = f"a {info.encoder.method} encoder" if info is not None and info.encoder is not None else "an encoder"
    raise ParameterError(
        info.path if info is not None else "checkpoint",
        f"is {what} without a classifier head: test-time adaptation needs a classifier's "
        "logits; open a checkpoint that has one (e.g. its linear probe, as main_lincls.py "
        "trains it on these weights)",
    )


def scatter_class_order(model: Any, order: ClassOrder | None, num_classes: int) -> Any:
    """``model`` with its head, of ``T <= num_classes`` classes, put in the data's
    ``num_classes`` classes by a :class:`~protoview.core.heads.ClassScatter` (head class
    ``k`` is data class ``order.order[k]``, or ``k`` without an order), its proxies left in
    the head's own order: what a timeline of a growing head needs (every checkpoint's rows
    keep their place, each named by its data class). The order is noted in ``model.info``."""
    from protoview.core.heads import ClassScatter, describe_head

    held = describe_head(model.classifier).num_classes
    if held > num_classes:
        raise ValueError(f"a head of {held} classes on data of {num_classes}")
    classes = order.head_classes(held) if order is not None else list(range(held))
    model.classifier = ClassScatter(model.classifier, classes, num_classes)
    if model.info is not None:
        model.info.head = describe_head(model.classifier)
        if order is not None:
            _say_order(model.info, order)
    return model
