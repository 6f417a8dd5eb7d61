"""protoview's command line: the window, and headless commands over ``protoview.core``.

Kept light on purpose: this module imports nothing heavy at the top, so that
``protoview --help`` and ``protoview --version`` answer at once. Every command imports
what it needs inside its own function.

Exit codes: 0 success, 1 cancelled (Ctrl+C), 2 a problem with the user's input (one line
on stderr naming the file and the problem), 3 an internal error (one line; ``--debug``
shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence

from protoview import __version__
from protoview.cli import _basic, _compare, _geometry, _science, _timeline
from protoview.cli._common import Handler, show_warning

#: Filled by the command modules' ``register`` when the parser is built.
HANDLERS: dict[str, Handler] = {}
COMMANDS = ("demo", "info", "extract", "export", "adapt", "methods", "compare", "cluster", "assign",
            "geometry", "timeline", "probe", "gui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protoview",
        description=(
            "Watch a classifier's representation move: one UMAP map of samples, class centers, "
            "proxies and k-means prototypes, with live test-time adaptation. With no command, "
            "opens the window on the built-in demo."
        ),
        epilog="Run 'protoview COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"protoview {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _basic.register(sub, HANDLERS)
    _science.register(sub, HANDLERS)
    _compare.register(sub, HANDLERS)
    _geometry.register(sub, HANDLERS)
    _timeline.register(sub, HANDLERS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `protoview CHECKPOINT DATA` (no command) opens the window on those files;
    # `protoview CHECKPOINT... DATA` (several checkpoints) on their timeline.
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "gui"
    from protoview.errors import CancelledError, ProtoviewError

    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = show_warning
            code = HANDLERS[command](args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
            return code
    except ProtoviewError as exc:
        print(f"protoview: error: {exc.message}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, CancelledError):
        print("protoview: cancelled", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`protoview info x | head -1`): stop quietly, as cat does;
        # point stdout at devnull so that the interpreter's final flush does not complain
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if args.debug:
            raise
        print(
            f"protoview: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback; please report it)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
