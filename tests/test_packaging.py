"""The wheel built from pyproject.toml: complete, and working outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, timeout=600)
    (path,) = out.glob("protoview-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_the_resources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("protoview/resources/demo/demo_linear.pt", "protoview/resources/demo/demo_cosine.pt",
                   "protoview/resources/icons/protoview.svg", "protoview/resources/icons/protoview-256.png",
                   "protoview/resources/styles/light.qss", "protoview/resources/styles/dark.qss",
                   "protoview/resources/styles/contrast.qss", "protoview/py.typed"):
        assert needed in names, f"{needed} is missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


@pytest.mark.slow
def test_the_wheel_runs_outside_the_source_tree(wheel, tmp_path):
    """Install the wheel alone into a fresh virtual environment (its dependencies come
    from this environment through a .pth file, to keep the test offline and quick), then
    run the console script from a folder that is not the checkout."""
    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "-q", str(wheel)], check=True, timeout=600)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]
    Path(site, "zz_protoview_test_deps.pth").write_text(deps + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(fresh / "bin" / "protoview"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([str(python), "-c", "import protoview; print(protoview.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(fresh)), where  # the wheel's copy, not the checkout
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("protoview "), version
    helped = run("--help")
    assert helped.returncode == 0 and "extract" in helped.stdout
    demo = run("demo", "run", "--out", str(work / "demo.h5"))
    assert demo.returncode == 0, demo.stderr
    assert (work / "demo.h5").stat().st_size > 0
    icon = subprocess.run(
        [str(python), "-c", "from PySide6 import QtWidgets; app = QtWidgets.QApplication([]); "
         "from protoview.gui._qt import icon, style_sheet; assert not icon().isNull(); "
         "assert 'QWidget' in style_sheet('dark')"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert icon.returncode == 0, icon.stderr


def test_desktop_entry_and_appstream_metadata_are_well_formed(tmp_path):
    import configparser
    import xml.etree.ElementTree as ET

    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(REPO / "packaging" / "protoview.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"].startswith("protoview") and d["Icon"] == "protoview"
    assert d["Categories"].endswith(";")
    root = ET.parse(REPO / "packaging" / "io.github.protoview.metainfo.xml").getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("launchable") == "protoview.desktop"
    for tag in ("id", "name", "summary", "metadata_license", "project_license"):
        assert (root.findtext(tag) or "").strip(), tag
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert (REPO / "resources" / "icons" / f"protoview-{size}.png").is_file()
    # the installer puts the entry, the metadata and the icons under XDG_DATA_HOME
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "share"))
    out = subprocess.run(["bash", str(REPO / "packaging" / "install-desktop.sh"), sys.executable],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    installed = (tmp_path / "share" / "applications" / "protoview.desktop").read_text()
    assert f"Exec={sys.executable}" in installed
    assert (tmp_path / "share" / "icons" / "hicolor" / "256x256" / "apps" / "protoview.png").is_file()


def test_pyproject_lists_every_package() -> None:
    """Every folder of protoview with an ``__init__.py`` is in pyproject's package list (a
    package left out installs from a checkout but is missing from the wheel)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(root).parts)
             for p in (root / "protoview").rglob("__init__.py")}
    assert found - listed == set()
