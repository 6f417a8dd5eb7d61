"""The built-in demo: scikit-learn's 8x8 digits with named shifts, and a small BN CNN.

Public names: the data (:func:`demo_arrays`, :func:`apply_shift`, :func:`demo_split_indices`,
:func:`demo_checkpoint_path` and the constants ``SHIFTS``, ``SEVERITIES``, ``DEMO_TRANSFORM``,
...), the model (:func:`build_demo_model`, :func:`demo_inputs`) and its training
(:func:`train_demo_models`, :func:`demo_accuracy`).

Modules: ``_data`` (the split, the shifts, the constants: it imports nothing of the demo),
``_model`` (the architecture; imports ``_data``), ``_train`` (training and the report card;
imports both). Nothing imports back up that chain.
"""

from protoview.core.demo._data import (
    BLUR_SIGMA,
    CONTRAST_KEEP,
    DEMO_CLASS_NAMES,
    DEMO_EPOCHS,
    DEMO_HEADS,
    DEMO_TRANSFORM,
    NOISE_STD,
    PARTS,
    ROTATION_DEGREES,
    SEVERITIES,
    SHIFTS,
    apply_shift,
    demo_arrays,
    demo_checkpoint_path,
    demo_split_indices,
)
from protoview.core.demo._model import DEMO_ARCH, build_demo_model, demo_featurizer, demo_inputs
from protoview.core.demo._train import demo_accuracy, train_demo_models

__all__ = [
    "BLUR_SIGMA",
    "CONTRAST_KEEP",
    "DEMO_ARCH",
    "DEMO_CLASS_NAMES",
    "DEMO_EPOCHS",
    "DEMO_HEADS",
    "DEMO_TRANSFORM",
    "NOISE_STD",
    "PARTS",
    "ROTATION_DEGREES",
    "SEVERITIES",
    "SHIFTS",
    "apply_shift",
    "build_demo_model",
    "demo_accuracy",
    "demo_arrays",
    "demo_checkpoint_path",
    "demo_featurizer",
    "demo_inputs",
    "demo_split_indices",
    "train_demo_models",
]
