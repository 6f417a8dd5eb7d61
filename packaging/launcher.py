"""Entry point of the desktop bundle (PyInstaller): the protoview CLI, which opens the
window on the built-in demo when given no arguments.

``protoview --smoke-test OUT_DIR`` (bundle only) drives the window through the demo
offscreen and saves screenshots there (tools/screenshots.py, which the bundle takes from
the checkout: the spec's pathex): the bundle's smoke test (packaging/build.sh).
"""

import sys

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--smoke-test":
        import os

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from tools.screenshots import main as screenshots

        raise SystemExit(screenshots(sys.argv[2:]))
    from protoview.cli import main

    raise SystemExit(main())
