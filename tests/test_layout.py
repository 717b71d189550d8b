"""The house rules of the package's layout (issue #18): topic-named modules, one folder per framework,
an import graph without a cycle, a leaf registry, and functions short enough to read."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import multissd

PACKAGE = Path(multissd.__file__).parent
MAX_FUNCTION_LINES = 80
ARGUMENT_PARSERS = {"parser"}  # functions that only declare a command line's options


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The multissd module an import of ``name`` loads explicitly (the longest known prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> set[str]:
    """Every multissd module that ``module`` names in an ``import``/``from`` statement, at any level
    (module, function, class): ``from a.b import c`` counts as ``a.b.c`` when that is a module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in map(_resolve, targets) if t and t.startswith("multissd") and t != module)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_import_graph_has_no_cycle():
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_registry_is_a_leaf():
    """``backends/_registry.py`` imports only the standard library and NumPy (einops' ``_backends.py``)."""
    tree = ast.parse(MODULES["multissd.backends._registry"].read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert names - set(sys.stdlib_module_names) == {"numpy"}


def test_functions_fit_on_a_screen():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in ARGUMENT_PARSERS:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_folder_listing_names_the_topics():
    listing = {path.name for path in PACKAGE.iterdir()}
    assert {"boxes.py", "nn.py", "model.py", "data", "training", "backends", "train.py", "predict.py",
            "evaluate.py", "export.py", "engine.py"} <= listing


@pytest.mark.parametrize("name", ["numpy", "torch", "paddle"])
def test_one_folder_per_framework_with_the_same_files(name):
    files = {path.name for path in (PACKAGE / "backends" / name).glob("*.py")}
    assert {"__init__.py", "boxes.py", "nn.py", "train.py", "export.py"} <= files
    assert files - {"__init__.py", "boxes.py", "nn.py", "train.py", "export.py"} == (
        {"layers.py"} if name == "numpy" else set())
