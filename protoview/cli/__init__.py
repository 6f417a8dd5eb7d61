"""protoview's command line: the window, and headless commands over ``protoview.core``.

Public: :func:`main` (the ``protoview`` entry point) and :func:`build_parser`. Private
modules: ``_main`` (the parser and the error handling every command shares), ``_common``
(model/data arguments, loading, progress and output helpers), ``_basic`` (demo, info,
extract, export, gui), ``_science`` (adapt, methods, cluster, assign), ``_compare``
(compare), ``_method_help`` (the methods and their parameters as help text and the README
table, from the method registry). Command modules import ``_common`` and
``_method_help``, never each other or ``_main``; everything heavy is imported inside
commands.
"""

from protoview.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
