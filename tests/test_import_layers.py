"""The packages depend one way (DESIGN.md): schemas < corpus.dataset < corpus.manifest <
tokenization and corpus.pipeline < trainer < flows. Read from the source with `ast`: no module
imports from a higher layer (function-local imports included), the packages form no cycle, and
no two modules import each other, directly or round a loop, when they are loaded."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {  # package -> rank: a module may import from its own rank or a lower one
    "schemas": 0,
    "corpus": 1,  # corpus/__init__.py and corpus/atomic_file.py
    "corpus.dataset": 1,
    "corpus.manifest": 2,
    "corpus.pipeline": 3,
    "tokenization": 3,
    "trainer": 4,
    "flows": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


TOPS = ("schemas", "corpus", "tokenization", "trainer", "flows")
MODULES = {_module_name(path): path for top in TOPS for path in (REPO / top).rglob("*.py")}
EXTENSIONS = {_module_name(path) for top in TOPS for path in (REPO / top).rglob("*.c")}  # compiled: import nothing


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if ".".join(parts[:2]) in LAYERS else parts[0]


def _resolve(name: str) -> str | None:
    while name and name not in MODULES and name not in EXTENSIONS:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, top_level_only: bool) -> set[str]:
    """The repository modules `module` imports (`from a.b import c` is a.b.c when that is a module)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if not top_level_only else (
        node for statement in tree.body for node in ast.walk(statement)
        if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in map(_resolve, names)
                  if target is not None and target != module and target not in EXTENSIONS}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph`, as the nodes round it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_from_a_higher_layer():
    upward = sorted((module, target) for module in MODULES for target in _imports(module, top_level_only=False)
                    if LAYERS[_package(target)] > LAYERS[_package(module)])
    assert not upward, f"imports from a higher layer: {upward}"


def test_the_packages_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph.setdefault(_package(module), set()).update(
            _package(target) for target in _imports(module, top_level_only=False)
            if _package(target) != _package(module))
    assert _cycle(graph) is None, f"packages import each other: {' -> '.join(_cycle(graph))}"


def test_no_import_loop_between_modules():
    graph = {module: _imports(module, top_level_only=True) for module in MODULES}
    assert _cycle(graph) is None, f"modules import each other when loaded: {' -> '.join(_cycle(graph))}"
