"""The ``--preprocess`` option: parsing, fields over a preset or the model's own, the default's warning."""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass

from protoview.core.preprocess._spec import (
    DEFAULT,
    INTERPOLATIONS,
    OPTION,
    PRESETS,
    RESIZE_MODES,
    TransformSpec,
    _error,
    _per_channel,
    check_spec,
    preset_names,
)


@dataclass(frozen=True)
class PreprocessOption:
    """A parsed ``--preprocess``: a preset (or none) and/or fields that override.

    text: as given; preset: the named preset or None; fields: field name -> value (already
    converted), applied over the preset, or over the model's own transform when no preset.
    """

    text: str
    preset: TransformSpec | None = None
    fields: tuple[tuple[str, object], ...] = ()

    @property
    def complete(self) -> bool:
        """True when it does not depend on the model's own transform."""
        given = {k for k, _ in self.fields}
        return self.preset is not None or {"size", "mean", "std"} <= given

    def apply(self, base: TransformSpec) -> TransformSpec:
        """The transform: the fields over the preset (or over ``base``), validated."""
        start = self.preset if self.preset is not None else base
        if not self.fields:
            return check_spec(start)
        if start.is_none:
            start = DEFAULT
        values = dict(self.fields)
        channels = values.get("channels", start.channels)
        for key in ("mean", "std"):
            if key not in values and len(getattr(start, key)) not in (1, channels):
                raise _error(
                    OPTION, f"channels={channels} needs mean= and std= for {channels} channel(s) too"
                )
        if "size" in values and "resize" not in values and "crop" not in values:
            values.update(resize="exact", crop=None)  # a new size alone: resize to it exactly
        spec = dataclasses.replace(start, name="", **values)  # type: ignore[arg-type]
        return check_spec(spec)


_FIELDS = ("size", "resize", "crop", "channels", "mean", "std", "interpolation", "scale")


def parse_preprocess(text: str | None) -> PreprocessOption | None:
    """Parse ``--preprocess`` (see the module docstring); None for None or blank.

    Raises
    ------
    ParameterError
        ``where="--preprocess"``: unknown preset or field, a value that is not a number,
        a size of 0, channels other than 1 or 3, ... (each in one line).
    """
    if text is None:
        return None
    raw = str(text).strip()
    if not raw:
        return None
    preset: TransformSpec | None = None
    fields: dict[str, list[str]] = {}
    last: str | None = None
    for position, token in enumerate(t.strip() for t in raw.split(",")):
        if not token:
            continue
        if "=" in token:
            key, _, value = token.partition("=")
            key = key.strip().lower().replace("_", "-")
            key = "interpolation" if key == "interp" else key
            if key not in _FIELDS:
                raise _error(OPTION, f"unknown field {key!r}{_close(key, _FIELDS)}; fields: {', '.join(_FIELDS)}")
            if key in fields:
                raise _error(OPTION, f"{key} is given twice")
            fields[key], last = [value.strip()], key
        elif position == 0:
            preset = _preset(token)
        elif last in ("mean", "std"):
            fields[last].append(token)  # mean=0.5,0.4,0.3: the values go on
        else:
            raise _error(OPTION, f"{token!r} is not a field (name=value) in {raw!r}")
    if preset is not None and preset.is_none and fields:
        raise _error(OPTION, "none takes no fields (it feeds the data to the model as they are)")
    converted = tuple((key, _convert(key, values)) for key, values in fields.items())
    option = PreprocessOption(raw, preset, converted)
    if option.complete:
        option.apply(DEFAULT)  # all of it is known: check it whole now
    else:  # the rest comes from the model: check what can be checked without it
        channels = dict(converted).get("channels")
        for key, value in converted:
            if key not in ("mean", "std"):
                continue
            if channels is None and len(value) not in (1, 3):  # type: ignore[arg-type]
                raise _error(
                    OPTION, f"{key} has {len(value)} values; give 1 value, or one per channel (1 or 3)"  # type: ignore[arg-type]
                )
            _per_channel(value, key, channels or (1 if len(value) == 1 else 3), OPTION)  # type: ignore[arg-type]
    return option


def _close(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _preset(token: str) -> TransformSpec:
    name = token.strip().lower()
    if name not in PRESETS:
        raise _error(
            OPTION,
            f"unknown preset {token!r}{_close(name, preset_names())}; choose {', '.join(PRESETS)} "
            "or give fields (size=32,mean=...,std=...)",
        )
    return PRESETS[name]


def _convert(key: str, values: list[str]) -> object:
    text = ",".join(values).strip().strip("()[]")
    if key in ("mean", "std"):
        return tuple(_float(key, v) for v in text.replace("/", ",").split(",") if v.strip())
    if key in ("size", "crop"):
        if key == "crop" and text.lower() == "none":
            return None
        parts = text.lower().replace("*", "x").split("x")
        if len(parts) > 2 or len(values) > 1:
            raise _error(OPTION, f"{key} must be N or HxW pixels, got {text!r}")
        numbers = tuple(_int(key, p) for p in parts)
        pair = numbers * 2 if len(numbers) == 1 else numbers
        if min(pair) < 1:
            raise _error(OPTION, f"{key} must be at least 1 pixel, got {text!r}")
        return pair
    if key == "channels":
        channels = _int(key, text)
        if channels not in (1, 3):
            raise _error(OPTION, f"channels must be 1 or 3, got {text!r}")
        return channels
    if key == "resize":
        mode = text.lower().replace("_", "-").replace("shortside", "short-side")
        if mode not in RESIZE_MODES:
            raise _error(OPTION, f"resize must be exact or short-side, got {text!r}")
        return mode
    if key == "interpolation":
        mode = text.lower()
        if mode not in INTERPOLATIONS:
            raise _error(OPTION, f"interpolation must be {', '.join(INTERPOLATIONS)}; got {text!r}")
        return mode
    scale = _float(key, text)
    if scale <= 0:
        raise _error(OPTION, f"scale must be a positive number, got {text!r}")
    return scale


def _float(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(OPTION, f"{key} must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise _error(OPTION, f"{key} must be a finite number, got {text.strip()!r}")
    return value


def _int(key: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _error(OPTION, f"{key} must be a whole number, got {text.strip()!r}") from None


def resolve_preprocess(
    option: str | PreprocessOption | TransformSpec | None,
    base: TransformSpec | None,
    base_source: str,
) -> tuple[TransformSpec, str]:
    """(transform, source): the option over the model's own transform ``base``.

    ``base`` None means the model says nothing: :data:`DEFAULT` with source ``"default"``.
    The source is ``"option"`` for a preset or a complete set of fields, ``"option over
    <source>"`` for fields that change part of the model's own.
    """
    if base is None:
        base, base_source = DEFAULT, "default"
    if option is None or option == "":
        return check_spec(base, "transform"), base_source
    if isinstance(option, TransformSpec):
        return check_spec(option), "option"
    parsed = parse_preprocess(option) if isinstance(option, str) else option
    if parsed is None:
        return check_spec(base, "transform"), base_source
    spec = parsed.apply(base)
    return spec, "option" if parsed.complete else f"option over {base_source}"


def default_warning(model: str) -> str:
    """The one-line warning when nothing says how ``model`` wants its inputs."""
    return (
        f"no preprocessing is known for {model}: using the default ({DEFAULT.describe()}); "
        f"say what the model expects with {OPTION} (none, {', '.join(n for n in PRESETS if n != 'none')}, "
        "or fields such as size=32,mean=0.5,std=0.25)"
    )
