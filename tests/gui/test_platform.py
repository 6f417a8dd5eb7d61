"""Start-up on a real desktop (issue 16, problem 11): Qt's xcb plugin needs system
libraries a virtual environment does not bring; the window names them before Qt aborts."""

from __future__ import annotations

import pytest

from protoview.gui._qt import _platform as P


@pytest.mark.parametrize(("env", "platform", "expected"), [
    ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"QT_QPA_PLATFORM": "xcb:dpi=96"}, "linux", True),
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),
    ({}, "linux", True),
    ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
    ({"QT_QPA_PLATFORM": "xcb"}, "darwin", False),
])
def test_when_qt_uses_xcb(env, platform, expected):
    assert P.uses_xcb(env, platform) is expected


def _loader(missing: set[str], plugin_error: str | None = None):
    def load(name: str) -> str | None:
        if name.endswith("libqxcb.so"):
            return plugin_error
        return f"{name}: cannot open shared object file" if name in missing else None
    return load


def test_missing_libraries_are_named_with_their_packages():
    env = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}
    text = P.xcb_problem(env, _loader({"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}))
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in text
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in text
    assert "\n" not in text and "QT_QPA_PLATFORM=offscreen" in text
    assert P.xcb_problem(env, _loader(set())) is None
    # a library outside the table, found through the plugin itself
    text = P.xcb_problem(env, _loader(set(), "libfoo-x.so.3: cannot open shared object file"))
    assert text is not None and "libfoo-x.so.3" in text


def test_no_display_and_other_platforms():
    assert "DISPLAY is not set" in P.xcb_problem({"QT_QPA_PLATFORM": "xcb"}, _loader(set()))
    assert P.xcb_problem({"QT_QPA_PLATFORM": "offscreen"}, _loader({"libxcb.so.1"})) is None


def test_run_app_prints_one_line_and_exits_2(monkeypatch, capsys):
    from protoview.gui import window as app

    monkeypatch.setattr(P, "xcb_problem", lambda: "Qt's X11 (xcb) platform needs libxcb-cursor.so.0")
    assert app.run_app() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("protoview: error: Qt's X11")
