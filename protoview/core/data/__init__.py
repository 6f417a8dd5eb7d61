"""Datasets: every dataset protoview can open, behind one function, :func:`open_dataset`.

An image dataset is a ``torch.utils.data.Dataset`` yielding ``(x, y)``: ``x`` float32
``(C, H, W)`` resized and normalised by the :class:`~protoview.core.model.TransformSpec`,
``y`` an int (``-1`` unknown). It also has ``labels`` (N,) int64, ``class_names``,
``identity()`` (part of the feature-cache key), ``description``, ``source`` and
``thumbnail(i)``, ``set_transform`` / ``transform_source`` and ``preview(i)`` (the image as
stored and as the model sees it). Precomputed features open as a :class:`FeatureSet` instead.
How images become model inputs is :mod:`protoview.core.preprocess` (``--preprocess``).

Spellings accepted by :func:`open_dataset`::

    demo | demo:SHIFT | demo:SHIFT:SEVERITY | demo:source     built-in digits (default demo:noise:3)
    path/to/folder                    ImageFolder (root/<class>/<images>; root/<images>: unlabelled)
    images.npz                                               x (N,C,H,W) | (N,H,W) [+ y (N,)]
    features.h5 | features.hdf5 | features.npz               features (N,D) + labels (N,)
    cifar10:ROOT[:train|test]  (also cifar100, mnist, fashionmnist, svhn; default split: test)
    cifar10c:ROOT:CORRUPTION:SEVERITY    CIFAR-10-C (also cifar100c); ROOT/<corruption>.npy + labels.npy
    imagenetc:ROOT:CORRUPTION:SEVERITY   ImageNet-C: ROOT/<corruption>/<severity>/<wnid>/*.JPEG
    pacs:ROOT:DOMAIN  (also vlcs, officehome, terraincognita, domainnet)   DomainBed's folders
    imagenet-a:ROOT  imagenet-r:ROOT  imagenet-sketch:ROOT  imagenetv2:ROOT   ImageNet variants
    imagenet-d:ROOT:DOMAIN  imagenet-d109:ROOT:DOMAIN  domainnet126:ROOT:DOMAIN   lists over DomainNet
                      (ImageNet-D's 164 classes: ``dataset.prediction_map``, see ``_variants``)
    demo:noise,blur | cifar10c:ROOT:fog,snow:5 | pacs:ROOT:photo,sketch   several in sequence
                                      (``dataset.domains`` (N,) int64, ``dataset.domain_names``)
    cifar10c:ROOT:fog,snow:1-5 | demo:noise,blur:1-5     each corruption at several severities
                      (domains fog:1 ... fog:5, snow:1 ...; ``domain_shifts``, ``domain_severities``)

Private modules, one per family (as torchvision's ``datasets/``): ``_base`` (the dataset
protocol, in-memory image arrays), ``_pixels`` (pixels to model inputs), ``_folder`` (image
folders), ``_decoded`` (image folders decoded once per preprocessing, in memory or on disk),
``_arrays`` (``.npz`` images), ``_featurefile`` (feature files: read, check, write),
``_torchvision`` (torchvision datasets as they lie on disk), ``_corruptions`` (CIFAR-10/100-C,
ImageNet-C), ``_variants`` (ImageNet-A/-R/-Sketch/-V2/-D/-D109, DomainNet-126; ``_imagenet_d``:
ImageNet-D's 164 classes and its map from ImageNet's 1000), ``_concat`` (several shifts or domains in sequence, each sample knowing its
domain; :func:`shift_specs`), ``_domainbed`` (PACS, VLCS, OfficeHome, TerraIncognita, DomainNet), ``_match``
(does a checkpoint's class k mean the dataset's class k), ``_loading`` (ordered batches and the OOM-safe
forward pass under extraction), ``_open`` (the dispatch). A new layout is a new module
here plus one branch in ``_open.open_dataset``.
"""

from protoview.core.data._arrays import npz_images_dataset
from protoview.core.data._base import (
    ArrayImageDataset,
    ProtoviewDataset,
    fit_classes,
    preprocess_attrs,
)
from protoview.core.data._concat import ConcatFolderDataset, shift_name, shift_specs, spec_names
from protoview.core.data._concat import concatenate as concatenate_datasets
from protoview.core.data._corruptions import imagenet_c_convention
from protoview.core.data._decoded import DecodedImages, decoded_images
from protoview.core.data._featurefile import (
    FEATURE_SUFFIXES,
    FeatureSet,
    open_feature_file,
    write_feature_arrays,
    write_feature_attrs,
)
from protoview.core.data._folder import ImageFolderDataset
from protoview.core.data._match import ClassMatch, match_classes
from protoview.core.data._open import default_transform, open_dataset
from protoview.core.data._pixels import display_pixels

__all__ = [
    "imagenet_c_convention",
    "FEATURE_SUFFIXES",
    "ArrayImageDataset",
    "ClassMatch",
    "ConcatFolderDataset",
    "DecodedImages",
    "FeatureSet",
    "ImageFolderDataset",
    "ProtoviewDataset",
    "concatenate_datasets",
    "decoded_images",
    "default_transform",
    "display_pixels",
    "fit_classes",
    "match_classes",
    "npz_images_dataset",
    "open_dataset",
    "open_feature_file",
    "preprocess_attrs",
    "shift_name",
    "shift_specs",
    "spec_names",
    "write_feature_arrays",
    "write_feature_attrs",
]
