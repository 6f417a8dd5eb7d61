"""The methods and their parameters as text: ``adapt --help``, ``methods``, the README table.

Everything here is generated from :mod:`protoview.core.adapt.registry` and the classes'
declared parameters. Building it imports the adapter classes (torch), so it happens only
when the text is printed: ``protoview --help`` and the parser stay light.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence

#: The epilog of ``protoview adapt``; :class:`MethodsHelpFormatter` replaces it.
METHODS_EPILOG = "{every method's parameters}"
WIDTH = 100


def _wrapped(text: str, indent: str, more: str) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=more, break_on_hyphens=False
    ) or [indent]


def methods_text(names: Sequence[str] | None = None) -> str:
    """Each method, its summary and every parameter (``[window]``: a control in the window).

    Parameters
    ----------
    names:
        The methods to describe (default: every registered one, in display order).
    """
    from protoview.core.adapt.registry import method_names, method_params, method_summary

    lines = []
    for name in names if names is not None else method_names():
        lines += _wrapped(f"{name}: {method_summary(name)}", "  ", "      ")
        params = method_params(name)
        if not params:
            lines.append("      (no parameters)")
        for p in params:
            lines += _wrapped(p.describe() + (" [window]" if p.window else ""), "    - ", "      ")
    return "\n".join(lines)


def adapt_epilog() -> str:
    """The text ``protoview adapt --help`` ends with."""
    return (
        "methods and their parameters (--param NAME=VALUE sets any; --lr, --filter-k, --lam, "
        "--update and --variant are shortcuts; [window]: a control in the window):\n"
        + methods_text()
    )


class MethodsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help whose epilog :data:`METHODS_EPILOG` becomes :func:`adapt_epilog` when printed."""

    def add_text(self, text: str | None) -> None:
        if text == METHODS_EPILOG:
            text = adapt_epilog()
        super().add_text(text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def methods_markdown() -> str:
    """The README's method table (Markdown, one row per registered method)."""
    from protoview.core.adapt.params import format_value
    from protoview.core.adapt.registry import method_names, method_params, method_summary

    lines = [
        "| method | what it is | parameters: default, values (**bold**: a control in the window) |",
        "|---|---|---|",
    ]
    for name in method_names():
        cells = []
        for p in method_params(name):
            shown = f"`{p.name}`" if not p.window else f"**`{p.name}`**"
            cells.append(f"{shown} {format_value(p.default)} ({p.spec()})")
        params = "; ".join(cells) or "none"
        lines.append(f"| `{name}` | {_cell(method_summary(name))} | {_cell(params)} |")
    return "\n".join(lines) + "\n"
