"""The package's shape, read with ``ast`` (nothing is imported): no import cycle (imports inside
functions included), no module over 400 lines, and terminal output only in ``cli/``."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mtgc_cli"
MAX_LINES = 400
UI_PACKAGES = ("rich", "typer", "click")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    lines: int
    imports: set[str] = field(default_factory=set)  # absolute dotted names, as written


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        text = path.read_text()
        name = ".".join(parts)
        found[name] = Module(name, path, is_package, ast.parse(text, str(path)), len(text.splitlines()))
    for module in found.values():
        module.imports = _imports(module, found)
    return found


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The module an ``from ... import`` reads from, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]  # a module's level-1 import is its package
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: Module, known: dict[str, Module]) -> set[str]:
    """Every name ``module`` imports, anywhere in it (functions and ``TYPE_CHECKING`` blocks too);
    ``from a import b`` also names ``a.b`` where that is a module."""
    names: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            names.add(source)
            names.update(f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in known)
    return names


def _edges(module: Module, known: dict[str, Module]) -> set[str]:
    """The package's modules that importing ``module`` runs.

    ``import a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``; an attribute (``a.b.func``) runs its
    module. A package that contains ``module`` is already being imported when ``module`` runs
    (Python imports a package before its submodules), so it is not an edge of ``module``.
    """
    own = {".".join(module.name.split(".")[:i]) for i in range(1, module.name.count(".") + 1)}
    if module.is_package:
        own.add(module.name)
    edges: set[str] = set()
    for name in module.imports:
        parts = name.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()  # from a module to its attribute
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in known and target not in own and target != module.name:
                edges.add(target)
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


MODULES = _modules()


def test_the_walk_sees_the_package() -> None:
    # The checks below would pass on nothing: make sure the walk found the modules and their imports.
    assert {"mtgc_cli.cli.app", "mtgc_cli.training.loop", "mtgc_cli.relabel.her_buffer"} <= MODULES.keys()
    graph = {name: _edges(module, MODULES) for name, module in MODULES.items()}
    assert "mtgc_cli.training.setup" in graph["mtgc_cli.training.loop"]
    # A lazy import inside a function is an edge too.
    assert "mtgc_cli.backends.local" in graph["mtgc_cli.backends"]


def test_cycle_detection_finds_a_lazy_cycle() -> None:
    a = ast.parse("def f():\n    from . import b\n")
    b = ast.parse("from mtgc_cli.x import a\n")
    known = {
        "mtgc_cli.x": Module("mtgc_cli.x", Path("x/__init__.py"), True, ast.parse(""), 0),
        "mtgc_cli.x.a": Module("mtgc_cli.x.a", Path("x/a.py"), False, a, 2),
        "mtgc_cli.x.b": Module("mtgc_cli.x.b", Path("x/b.py"), False, b, 1),
    }
    for module in known.values():
        module.imports = _imports(module, known)
    graph = {name: _edges(module, known) for name, module in known.items()}
    assert _cycles(graph) == [["mtgc_cli.x.a", "mtgc_cli.x.b"]]


def test_no_import_cycles() -> None:
    graph = {name: _edges(module, MODULES) for name, module in MODULES.items()}
    assert _cycles(graph) == []


def test_no_module_over_400_lines() -> None:
    long = [f"{m.path}: {m.lines} lines" for m in MODULES.values() if m.lines > MAX_LINES]
    assert long == []


def test_only_cli_prints() -> None:
    """rich, typer (and click) are imported and ``print`` is called only under ``mtgc_cli/cli/``."""
    offences = []
    for name, module in MODULES.items():
        if name == "mtgc_cli.cli" or name.startswith("mtgc_cli.cli."):
            continue
        for imported in module.imports:
            if imported.split(".")[0] in UI_PACKAGES:
                offences.append(f"{module.path}: imports {imported}")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offences.append(f"{module.path}:{node.lineno}: print()")
    assert offences == []
