"""Checkpoints: read any supported file safely and split it into featurizer + head.

Public names:

- :func:`load_checkpoint` (file -> :class:`~protoview.core.model.SplitModel`),
  :func:`inspect_checkpoint` (what a file holds, without building more than needed),
  :func:`file_sha256`;
- :class:`ArchSpec`, :func:`resolve_arch`, :func:`known_arch_names` (architectures by name:
  built-in, torchvision, timm, ``file.py:fn``; module :mod:`.archs`);
- ``PROTOVIEW_FORMAT`` / ``PROTOVIEW_VERSION``: the header of protoview's own checkpoints;
  :func:`write_probe_checkpoint` (an encoder with a linear probe as its head, ``_write``).

Private modules, in the order a file goes through them: ``_read`` (bytes -> tensors, never
running pickled code unless trusted), ``_layout`` (which convention: protoview, DomainBed,
PyCIL, DINO's file (``_dino_file``), nested, prefixed), ``_build`` (architecture + weights),
``_encoders`` (self-supervised encoders without a classifier: SwAV, DeepCluster-v2,
MoCo/PCL, SimSiam, DINO, plain backbones; their projection heads and prototypes),
``_split`` (featurizer / head conventions, ``--split``), ``_heads`` (Linear / CosineLinear
adoption, proxies per class), ``_load`` (the public entry points and the final checks).
"""

from protoview.core.checkpoint._layout import PROTOVIEW_FORMAT, PROTOVIEW_VERSION
from protoview.core.checkpoint._load import inspect_checkpoint, load_checkpoint
from protoview.core.checkpoint._preprocess import home_data_transform
from protoview.core.checkpoint._read import file_sha256
from protoview.core.checkpoint._write import write_probe_checkpoint
from protoview.core.checkpoint.archs import ArchSpec, known_arch_names, resolve_arch

__all__ = [
    "PROTOVIEW_FORMAT",
    "PROTOVIEW_VERSION",
    "ArchSpec",
    "file_sha256",
    "home_data_transform",
    "inspect_checkpoint",
    "known_arch_names",
    "load_checkpoint",
    "resolve_arch",
    "write_probe_checkpoint",
]
