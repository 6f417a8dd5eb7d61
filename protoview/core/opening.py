"""Opening a checkpoint and a dataset so that they fit each other (every command, the window).

The preprocessing comes from ``--preprocess`` or the model (:mod:`protoview.core.preprocess`);
a cosine head whose proxies per class are unknown is matched to the data's class count; the
labels are checked against the head. :class:`protoview.core.session.Session` and the command
line both open through :func:`open_model_and_data`.
"""

from __future__ import annotations

from typing import Any

from protoview.errors import ParameterError


def checkpoint_path(checkpoint: str) -> str:
    """The file of ``checkpoint``: itself, or the demo's for ``demo`` / ``demo:linear`` / ``demo:cosine``."""
    if checkpoint in ("demo", "demo:linear", "demo:cosine"):
        from protoview.core.demo import demo_checkpoint_path

        return str(demo_checkpoint_path(checkpoint.partition(":")[2] or "cosine"))
    return checkpoint


def open_model_and_data(
    checkpoint: str, data: str, *, arch: str | None = None, trust: bool = False,
    nb_proxy: int | None = None, split: str | None = None, preprocess: str | None = None,
    warn: bool = True, features: str = "backbone", dino_weights: str | None = None,
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
        split=req.split, preprocess=req.preprocess, warn=warn,
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
    if info.nb_proxy_from != "assumed" or not classes or rows == classes:
        return None
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
    ``model`` unchanged. The restriction is noted in ``model.info.notes``."""
    from protoview.core.heads import ClassSubset, describe_head

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
