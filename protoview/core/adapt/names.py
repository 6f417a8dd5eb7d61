"""The adaptation methods by name, importable without torch (the CLI's ``--help`` lists them).

``protoview.core.adapt.baselines.METHODS`` maps each name to its class; a test checks
that the two agree.
"""

from __future__ import annotations

METHOD_NAMES: tuple[str, ...] = (
    "tsd", "tent", "t3a", "bn", "none", "pl", "plc", "shot_im", "eata", "sar", "lame",
)  # fmt: skip
