"""Before Qt starts on a Linux desktop: are the system libraries of Qt's xcb (X11)
platform plugin there? A virtual environment brings Qt but not these; without them Qt
aborts with only "could not load the Qt platform plugin xcb". This check names the
missing libraries and the Debian / Ubuntu packages that bring them, in one line.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from pathlib import Path

# the X11 libraries libqxcb.so and libQt6XcbQpa.so.6 need (PySide6 6.6-6.12), and the
# Debian / Ubuntu package of each
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libglib-2.0.so.0": "libglib2.0-0",
}


def uses_xcb(environ: dict | None = None, platform: str | None = None) -> bool:
    """Whether Qt will start on its xcb platform: on Linux, when ``QT_QPA_PLATFORM`` asks
    for xcb, or is unset outside a Wayland session."""
    env = os.environ if environ is None else environ
    if not (platform or sys.platform).startswith("linux"):
        return False
    asked = env.get("QT_QPA_PLATFORM", "").strip()
    if asked:
        return asked.split(";")[0].split(":")[0].strip() == "xcb"
    return not (env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"))


def _load_error(name: str) -> str | None:
    """None when the dynamic loader loads ``name`` (a soname or a path), else its error."""
    try:
        ctypes.CDLL(name)
    except OSError as exc:
        return str(exc)
    return None


def missing_libraries(load=_load_error) -> list[str]:
    """The libraries of :data:`XCB_LIBRARIES` that cannot be loaded (by soname), then any
    other library the xcb plugin itself fails on (named from the loader's message).
    ``load(name) -> error or None`` (tests pass a fake)."""
    missing = [name for name in XCB_LIBRARIES if load(name) is not None]
    plugin = _xcb_plugin()
    if not missing and plugin is not None:
        error = load(str(plugin))
        if error is not None:
            found = re.search(r"(lib[\w.+-]+\.so[\w.]*)", error)
            missing.append(found.group(1) if found else f"{plugin.name} ({error})")
    return missing


def _xcb_plugin() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    path = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def xcb_problem(environ: dict | None = None, load=_load_error) -> str | None:
    """One line saying why Qt's xcb platform will not start here, or None when it can
    (or when Qt will not use xcb)."""
    env = os.environ if environ is None else environ
    if not uses_xcb(env):
        return None
    if not env.get("DISPLAY"):
        return ("no X display: DISPLAY is not set (start protoview from a desktop session, "
                "use ssh -X, or run headless with QT_QPA_PLATFORM=offscreen)")
    missing = missing_libraries(load)
    if not missing:
        return None
    packages = [XCB_LIBRARIES[m] for m in missing if m in XCB_LIBRARIES]
    unknown = [m for m in missing if m not in XCB_LIBRARIES]
    fix = f"install them with: sudo apt-get install {' '.join(packages)}" if packages else ""
    if unknown:
        fix += ("; also " if fix else "install the package that provides ") + ", ".join(unknown)
    return (f"Qt's X11 (xcb) platform needs system libraries that are missing: "
            f"{', '.join(missing)}; {fix} (Debian/Ubuntu package names), or run headless "
            "with QT_QPA_PLATFORM=offscreen")
