"""Datasets: every dataset protoview can open, behind one function, :func:`open_dataset`.

An image dataset is a ``torch.utils.data.Dataset`` yielding ``(x, y)``: ``x`` float32
``(C, H, W)`` resized and normalised by the :class:`~protoview.core.model.TransformSpec`,
``y`` an int (``-1`` unknown). It also has ``labels`` (N,) int64, ``class_names``,
``identity()`` (part of the feature-cache key), ``description``, ``source`` and
``thumbnail(i)``. Precomputed features open as a :class:`FeatureSet` instead.

Spellings accepted by :func:`open_dataset`::

    demo | demo:SHIFT | demo:SHIFT:SEVERITY | demo:source     built-in digits (default demo:noise:3)
    path/to/folder                                           ImageFolder (root/<class>/<images>)
    images.npz                                               x (N,C,H,W) | (N,H,W) [+ y (N,)]
    features.h5 | features.hdf5 | features.npz               features (N,D) + labels (N,)
    cifar10:ROOT[:train|test]  (also cifar100, mnist, fashionmnist, svhn; default split: test)

Private modules, one per family (as torchvision's ``datasets/``): ``_base`` (the dataset
protocol, in-memory image arrays, transforms), ``_folder`` (image folders), ``_arrays``
(``.npz`` images), ``_decoded`` (image folders decoded once per preprocessing, in memory
or on disk), ``_featurefile`` (feature files: read, check, write), ``_torchvision``
(torchvision datasets as they lie on disk), ``_loading`` (ordered batches and the OOM-safe
forward pass under extraction), ``_open`` (the dispatch). A new layout is a new module
here plus one branch in ``_open.open_dataset``.
"""

from protoview.core.data._arrays import npz_images_dataset
from protoview.core.data._base import ArrayImageDataset, ProtoviewDataset
from protoview.core.data._decoded import DecodedImages, decoded_images
from protoview.core.data._featurefile import (
    FEATURE_SUFFIXES,
    FeatureSet,
    open_feature_file,
    write_feature_arrays,
    write_feature_attrs,
)
from protoview.core.data._folder import ImageFolderDataset
from protoview.core.data._open import default_transform, open_dataset

__all__ = [
    "FEATURE_SUFFIXES",
    "ArrayImageDataset",
    "DecodedImages",
    "FeatureSet",
    "ImageFolderDataset",
    "ProtoviewDataset",
    "decoded_images",
    "default_transform",
    "npz_images_dataset",
    "open_dataset",
    "open_feature_file",
    "write_feature_arrays",
    "write_feature_attrs",
]
