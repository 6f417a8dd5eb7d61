"""How an image becomes the model's input: :class:`TransformSpec`, the presets, ``--preprocess``.

A transform is an explicit value: printed by ``protoview info``, stored in snapshots and
feature files, and part of the feature-cache key. It is never guessed from the data's
range. Steps, in order (as torchvision's ``Resize`` / ``CenterCrop`` / ``ToTensor`` /
``Normalize``):

1. pixels to [0, 1]: 8-bit by 1/255, 16-bit by 1/65535, float data divided by ``scale``
   (default 1; float data outside [0, 1] are refused, never rescaled by a guess);
2. channels converted to ``channels`` (grey <-> RGB, alpha dropped);
3. resized: ``resize="exact"`` to ``size`` = (H, W), or ``resize="short-side"``: the
   shorter side to ``size[0]``, the aspect ratio kept; with ``interpolation``;
4. center-cropped to ``crop`` = (H, W) when given;
5. normalised: ``(x - mean) / std`` per channel.

:func:`TransformSpec.none` (``--preprocess none``) skips all of it: the data already are
the model's inputs and go in as they are.

The ``--preprocess`` option (also the window's open dialog)::

    none | imagenet | domainbed | cifar10 | cifar100          a preset alone
    cifar10,size=40                                          a preset with fields changed
    size=32,mean=0.5,std=0.25                                fields over the model's own
    fields: size=N|HxW  resize=exact|short-side  crop=N|HxW  channels=1|3
            mean=M[,M,M]  std=S[,S,S]  interpolation=bilinear|bicubic|nearest  scale=S
"""

from protoview.core.preprocess._option import (
    PreprocessOption,
    default_warning,
    parse_preprocess,
    resolve_preprocess,
)
from protoview.core.preprocess._spec import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    DEFAULT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    OPTION,
    PRESETS,
    RESIZE_MODES,
    SOURCES,
    TransformSpec,
    check_spec,
    preset_names,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "DEFAULT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "OPTION",
    "PRESETS",
    "RESIZE_MODES",
    "SOURCES",
    "PreprocessOption",
    "TransformSpec",
    "check_spec",
    "default_warning",
    "parse_preprocess",
    "preset_names",
    "resolve_preprocess",
]
