"""The import contract (as napari's): who may import whom, no circles, core never Qt.

Every import counts, also the lazy ones inside functions: a lazy import still makes one
module depend on another. The packages and what each may import are described in
docs/architecture.md; this file is the contract that keeps them so.
"""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "protoview"
CORE = PACKAGE / "core"
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6")

#: The layers, lowest first. A unit (a top-level module or package of protoview or of
#: protoview.core) imports only units of lower layers: never its own layer, never higher.
LAYERS: list[tuple[str, ...]] = [
    ("protoview",),
    ("errors",),
    ("core.warnings", "core.atomic", "core.device", "core.accel", "core.heads", "core.geometry",
     "core.neighbors", "core._fuzzy", "core.preprocess", "core.requests"),
    ("core.model",),
    ("core.demo",),
    ("core.checkpoint", "core.data", "core.snapshot"),
    ("core.features", "core.cluster", "core.sinkhorn", "core.metrics", "core.projection", "core.adapt",
     "core.collapse", "core.cka", "core.knn", "core.probe"),
    ("core.distributed", "core.state", "core.opening", "core.runs", "core.measures"),
    ("core.maps", "core.updates", "core.timeline"),
    ("core.live",),
    ("core.session", "core.compare"),
    ("present",),
    ("gui",),
    ("cli",),
    ("__main__",),
]
#: The window reaches the core only through protoview.present (what is shown, every number
#: derived for it, the requests, the worker's protocol and snapshot files).
GUI_MAY_IMPORT = {"protoview", "errors", "present"}
#: The command line may open the window, and only through its entry point.
CLI_MAY_IMPORT_GUI = {"protoview.gui.window"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every protoview module ``path`` imports (absolute names), with the line."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from protoview.core import demo` imports the module protoview.core.demo;
            # `from protoview.core.demo import demo_arrays` the package protoview.core.demo
            submodules = [f"{module}.{a.name}" for a in node.names if _is_module(f"{module}.{a.name}")]
            if len(submodules) < len(node.names):
                found.append((module, node.lineno))
            found += [(m, node.lineno) for m in submodules]
    return [(m, line) for m, line in found if m == "protoview" or m.startswith("protoview.")]


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


def _unit(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "protoview"
    if parts[0] == "core" and len(parts) > 1:
        return f"core.{parts[1]}"
    return parts[0]


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    layered = {u for layer in LAYERS for u in layer}
    units = {_unit(_module_name(p)) for p in _sources()} - {"core"}
    assert units - layered == set(), "a new package or module: give it a layer in LAYERS"


def test_no_package_imports_a_higher_one():
    rank = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    rank["core"] = 0  # protoview/core/__init__.py holds a docstring only
    offenders = []
    for path in _sources():
        here = _unit(_module_name(path))
        for module, line in _imports(path):
            there = _unit(module)
            if there == here:
                continue
            if here == "cli" and there == "gui" and module in CLI_MAY_IMPORT_GUI:
                continue
            if rank[there] >= rank[here]:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {module} ({there})")
    assert offenders == []


def test_the_window_reaches_the_core_only_through_present():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in (PACKAGE / "gui").rglob("*.py")
        for module, line in _imports(path)
        if _unit(module) not in GUI_MAY_IMPORT | {"gui"}
    ]
    assert offenders == []


#: The window's packages, lowest first: a module of one imports only its own package and
#: those before it (docs/architecture.md); protoview/gui/__init__.py holds no code.
GUI_PACKAGES = ["_qt", "map", "panels", "window"]


def test_every_window_module_lives_in_a_window_package():
    loose = sorted(p.name for p in (PACKAGE / "gui").glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in (PACKAGE / "gui").iterdir()
                      if p.is_dir() and p.name != "__pycache__")
    assert loose == [] and packages == sorted(GUI_PACKAGES)


def test_the_window_packages_import_only_lower_ones():
    rank = {name: i for i, name in enumerate(GUI_PACKAGES)}
    offenders = []
    for path in (PACKAGE / "gui").rglob("*.py"):
        here = _module_name(path).split(".")
        if len(here) < 3:
            continue  # protoview.gui itself
        for module, line in _imports(path):
            there = module.split(".")
            if there[:2] != ["protoview", "gui"]:
                continue
            if len(there) < 3 or rank[there[2]] > rank[here[2]]:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert offenders == []


def test_a_private_module_never_imports_its_own_package():
    """``_x.py`` imports its siblings, never its package's ``__init__`` (which imports it)."""
    offenders = []
    for path in _sources():
        if not path.name.startswith("_") or path.name == "__init__.py":
            continue
        package = _module_name(path).rpartition(".")[0]
        offenders += [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
                      for module, line in _imports(path) if module == package]
    assert offenders == []


#: Where a module reads another object's private attribute on purpose, as (file under
#: protoview/, attribute): why. Only what we cannot change: other projects' APIs that
#: offer no public way, and code whose owner is being rewritten.
PRIVATE_ACCESS_ALLOWED = {
    ("cli/_basic.py", "_SubParsersAction"): "argparse: the type of add_subparsers()",
    ("cli/_compare.py", "_SubParsersAction"): "argparse: the type of add_subparsers()",
    ("cli/_geometry.py", "_SubParsersAction"): "argparse: the type of add_subparsers()",
    ("cli/_science.py", "_SubParsersAction"): "argparse: the type of add_subparsers()",
    ("cli/_timeline.py", "_SubParsersAction"): "argparse: the type of add_subparsers()",
    ("cli/_science.py", "_actions"): "argparse: no public way to change an option's help",
    ("core/adapt/shot.py", "_softmax_backward_data"): "torch: SHOT's own backward pass",
    ("core/adapt/shot.py", "_log_softmax_backward_data"): "torch: SHOT's own backward pass",
    ("core/checkpoint/_read.py", "_reconstruct"): "numpy: what a safe unpickler must allow",
    ("core/checkpoint/_layout.py", "_metadata"): "torch: a state_dict's own metadata",
    ("core/data/_loading.py", "_shutdown_workers"): "torch: stop a DataLoader's workers",
}
_ATTRIBUTE_CALLS = ("getattr", "setattr", "hasattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_accesses(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, attribute, code) of every ``obj._x`` (also through getattr and friends) where
    obj is not ``self``, ``cls`` or ``super()``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner, name = node.value, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in _ATTRIBUTE_CALLS and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            owner, name = node.args[0], node.args[1].value
        else:
            continue
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"):
            continue
        found.append((node.lineno, name, ast.unparse(node)))
    return found


def test_no_module_touches_another_objects_private_attributes():
    offenders = []
    for path in _sources():
        where = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"protoview/{where}:{line}: {code}"
                      for line, name, code in _private_accesses(tree)
                      if (where, name) not in PRIVATE_ACCESS_ALLOWED]
    assert offenders == [], "use a public method or property of the owner"


def test_the_private_access_check_sees_what_it_must():
    code = ("view._vb.select_mode = 1\ngetattr(win, '_saved', None)\nself._x = super()._y\n"
            "cls._z\nobj.__class__\n")
    assert sorted(name for _, name, _ in _private_accesses(ast.parse(code))) == ["_saved", "_vb"]


def test_no_import_circles_between_modules():
    """Module-level graph (lazy imports included): no module reaches itself."""
    modules = {_module_name(p) for p in _sources()}
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        here = _module_name(path)
        for module, _ in _imports(path):
            # importing a package means its __init__; a name inside a module means the module
            while module not in modules and "." in module:
                module = module.rpartition(".")[0]
            if module != here:
                graph[here].add(module)
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(modules):
        if start not in state:
            visit(start, [start])
    assert circles == []


def test_core_sources_never_import_qt():
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in QT_MODULES]
    assert offenders == []


def test_the_contract_sees_lazy_imports(tmp_path):
    """The checks above would be empty words if lazy imports were missed: they are not."""
    probe = tmp_path / "protoview" / "core" / "probe.py"
    for folder in ("core", "gui"):
        (tmp_path / "protoview" / folder).mkdir(parents=True)
    (tmp_path / "protoview" / "gui" / "app.py").write_text("")
    (tmp_path / "protoview" / "core" / "session.py").write_text("")
    probe.write_text("def f():\n    from protoview.gui import app\n    from . import session\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "protoview"
    try:
        found = [m for m, _ in _imports(probe)]
        assert found == ["protoview.gui.app", "protoview.core.session"]
    finally:
        PACKAGE = saved


def test_import_protoview_is_lazy():
    code = (
        "import sys, protoview, protoview.cli, protoview.errors, protoview.core.adapt.registry;"
        "from protoview.core.adapt.registry import method_names; method_names();"
        "protoview.cli.build_parser().format_help();"
        "heavy = [m for m in ('torch', 'umap', 'faiss', 'h5py', 'PySide6', 'pyqtgraph') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
