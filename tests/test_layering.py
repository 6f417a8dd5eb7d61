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
     "core.neighbors", "core._fuzzy", "core.preprocess"),
    ("core.model",),
    ("core.demo",),
    ("core.checkpoint", "core.data", "core.snapshot"),
    ("core.features", "core.cluster", "core.sinkhorn", "core.metrics", "core.projection", "core.adapt"),
    ("core.distributed", "core.state", "core.opening", "core.runs"),
    ("core.session", "core.compare"),
    ("gui",),
    ("cli",),
    ("__main__",),
]
#: The window reaches the core only through the session, its requests and results, and
#: snapshot files (a replay needs no model); core.neighbors reads a result (numpy only).
GUI_MAY_IMPORT = {"protoview", "errors", "core.session", "core.state", "core.snapshot", "core.neighbors"}
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


def test_the_window_reaches_the_core_only_through_the_session():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in (PACKAGE / "gui").rglob("*.py")
        for module, line in _imports(path)
        if _unit(module) not in GUI_MAY_IMPORT | {"gui"}
    ]
    assert offenders == []


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
        "import sys, protoview, protoview.cli, protoview.errors;"
        "heavy = [m for m in ('torch', 'umap', 'faiss', 'h5py', 'PySide6', 'pyqtgraph') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
