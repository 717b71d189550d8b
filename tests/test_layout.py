"""The house rules of the package's layout (issues #18, #26): topic-named modules, one folder per
framework implementing every contract in order, an import graph without a cycle whose arrows all run
down the declared layers (folders counted as one unit), a registry at the bottom, and functions short
enough to read."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import multissd
from multissd import registry

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
    """``multissd/registry.py`` imports only the standard library, NumPy and multissd's errors (einops'
    ``_backends.py``): everything may import it, it imports nothing back."""
    tree = ast.parse(MODULES["multissd.registry"].read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert {name for name in names if name.split(".")[0] not in sys.stdlib_module_names} == {"numpy", "multissd.errors"}


# ---- the layers of the house (drawn in docs/backends.md) ----------------------------------------------

LAYERS = (
    ("foundations", {"errors", "types", "host", "files"}),
    ("registry and checks", {"registry", "checks", "config"}),
    ("contracts", {"dispatch", "boxes", "nn", "model", "classifier", "trainer", "exporter"}),
    ("framework folders", {"backends"}),
    ("data, detection, training", {"data", "metrics", "detection", "weights", "plots", "engine", "inference", "anchor_fit",
                                   "onnx_export", "training"}),
    ("command lines", {"cli", "train", "predict", "evaluate", "export", "bench", ""}),
)
"""Bottom to top. A module may import its own layer and those below, never one above; a folder of the
package (``backends/``, ``data/``, ``training/``, ``bench/``) is one unit. ``""`` is the package
itself (``multissd/__init__.py``, the public face)."""


def _unit(module: str) -> str:
    """The unit of ``module``: its folder of the package, or itself (``""`` for ``multissd``)."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


LAYER_OF = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}


def _upward_imports(graph: dict[str, set[str]], layer_of: dict[str, int]) -> list[str]:
    """Every import of ``graph`` that runs from a unit up to a unit of a higher layer."""
    return [f"{a} ({LAYERS[layer_of[_unit(a)]][0]}) imports {b} ({LAYERS[layer_of[_unit(b)]][0]})"
            for a, targets in sorted(graph.items()) for b in sorted(targets) if layer_of[_unit(b)] > layer_of[_unit(a)]]


def _unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for a, targets in graph.items():
        units.setdefault(_unit(a), set()).update(_unit(b) for b in targets if _unit(b) != _unit(a))
    return units


def test_every_module_has_a_layer():
    assert {_unit(module) for module in MODULES} - set(LAYER_OF) == set()
    assert sum(len(units) for _, units in LAYERS) == len(LAYER_OF)  # no unit in two layers


def test_no_import_runs_back_up_the_layers():
    assert _upward_imports(GRAPH, LAYER_OF) == []


def test_folders_form_no_cycle_with_the_rest():
    """Counting each folder as one unit, the imports still form no cycle (no ``backends/`` <-> ``checks``)."""
    assert _cycles(_unit_graph(GRAPH)) == []


def test_the_layer_check_fails_on_an_import_against_the_order():
    """A planted import from the box contract up into the training loop, and from a framework folder
    up into the command line, are both reported."""
    planted = {**GRAPH, "multissd.boxes": GRAPH["multissd.boxes"] | {"multissd.training.loop"},
               "multissd.backends.torch.nn": GRAPH["multissd.backends.torch.nn"] | {"multissd.cli"}}
    found = _upward_imports(planted, LAYER_OF)
    assert found == ["multissd.backends.torch.nn (framework folders) imports multissd.cli (command lines)",
                     "multissd.boxes (contracts) imports multissd.training.loop (data, detection, training)"]


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
    assert {"boxes.py", "nn.py", "trainer.py", "exporter.py", "model.py", "registry.py", "data", "training",
            "backends", "train.py", "predict.py", "evaluate.py", "export.py", "engine.py", "inference.py",
            "onnx_export.py"} <= listing


@pytest.mark.parametrize("name", registry.BACKEND_NAMES)
def test_one_folder_per_framework_with_the_same_files(name):
    files = {path.name for path in (PACKAGE / "backends" / name).glob("*.py")}
    expected = {"__init__.py"} | {f"{part}.py" for part in registry.PARTS}
    assert expected <= files
    assert files - expected == ({"layers.py"} if name == "numpy" else set())


def _defined_in_order(path: Path, names) -> list[str]:
    tree = ast.parse(path.read_text())
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names]


@pytest.mark.parametrize("part", registry.PARTS)
@pytest.mark.parametrize("name", registry.BACKEND_NAMES)
def test_every_framework_folder_implements_each_contract_in_order(name, part):
    """Each backend's ``<part>.py`` defines the contract's functions in the contract's order, with
    its parameters and defaults (``@implements`` checks them on import) and its constants; a backend
    whose framework is not installed is checked from its source alone."""
    contract = importlib.import_module(f"multissd.{part}")
    assert _defined_in_order(PACKAGE / "backends" / name / f"{part}.py", contract.CONTRACT) == list(contract.CONTRACT)
    if registry.is_installed(name):
        assert getattr(contract, part.upper()).missing(registry.load_part(name, part)) == []
