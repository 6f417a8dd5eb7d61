"""DINO's checkpoint file (facebookresearch/dino ``main_dino.py``): ``{"student", "teacher",
"optimizer", "epoch", "args", "dino_loss"}``; which network to open, and its architecture
from ``args``."""

from __future__ import annotations

import os
from typing import Any

from protoview.errors import CheckpointError, ParameterError

DINO_CHOICES = ("teacher", "student")
_DINO_MARKS = ("teacher", "student", "dino_loss")


def is_dino_payload(payload: dict[str, Any]) -> bool:
    """A DINO ``main_dino.py`` checkpoint: ``teacher`` / ``student`` state_dicts (or its
    ``dino_loss`` entry, the sign of one whose weights are missing)."""
    return any(isinstance(payload.get(k), dict) for k in _DINO_MARKS)


def pick_dino(payload: dict[str, Any], where: str | os.PathLike[str],
              choice: str | None) -> tuple[str, str, list[str]]:
    """(the chosen network's key, what was used, what was ignored) of a DINO checkpoint.

    choice: ``"teacher"`` (DINO evaluates the teacher), ``"student"``, or None (the teacher,
    else the student with a note). Raises CheckpointError when neither is there or the one
    asked for is missing, ParameterError for an unknown choice.
    """
    if choice is not None and choice not in DINO_CHOICES:
        raise ParameterError("--dino-weights", f"must be teacher or student, got {choice!r}")
    have = [k for k in DINO_CHOICES if isinstance(payload.get(k), dict) and payload[k]]
    keys = ", ".join(repr(k) for k in list(payload)[:8])
    if not have:
        raise CheckpointError(where, f"is a DINO checkpoint (keys {keys}) without 'teacher' or "
                                     "'student' weights: there is no network to open")
    if choice is not None and choice not in have:
        raise CheckpointError(where, f"has no {choice!r} weights (keys {keys}); pass "
                                     f"--dino-weights {have[0]}")
    chosen = choice or have[0]
    other = [k for k in DINO_CHOICES if k != chosen and k in have]
    used = f"DINO: {chosen} weights used" + (
        f" (pass --dino-weights {other[0]} for the {other[0]}'s)" if other else
        " (the file has no teacher)" if chosen == "student" else "")
    ignored = [*(f"{k} weights" for k in other),
               *(k for k in payload if k not in DINO_CHOICES and isinstance(payload[k], dict))]
    return chosen, used, ignored


def dino_arch(args: Any) -> tuple[str, str] | None:
    """(--arch, note) from a DINO checkpoint's ``args`` (``vit_small`` + patch 16 ->
    timm's ``vit_small_patch16_224``, whose weight names DINO's ViT shares; a torchvision
    name as it is); None when it names neither."""
    arch = getattr(args, "arch", None) if not isinstance(args, dict) else args.get("arch")
    patch = getattr(args, "patch_size", None) if not isinstance(args, dict) else args.get("patch_size")
    if not isinstance(arch, str):
        return None
    arch = arch.replace("deit", "vit")  # as main_dino.py does
    if arch in ("vit_tiny", "vit_small", "vit_base") and isinstance(patch, int):
        name = f"timm:{arch}_patch{patch}_224"
        return name, f"arch {name} from the checkpoint's args (arch={arch}, patch_size={patch})"
    if arch.startswith(("resnet", "wide_resnet", "resnext")):
        return arch, f"arch {arch} from the checkpoint's args"
    return None
