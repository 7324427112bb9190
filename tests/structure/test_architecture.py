"""The package's structure: no import cycles, no private names across modules, small files.

These are read from the source with :mod:`ast`, so every import counts, including the ones a
function makes lazily: a cycle closed inside a function is still a wrong split between layers.
See ``docs/architecture.md`` for the layers these rules keep apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "epitensor"

#: The longest a module of the package may be (``docs/architecture.md``).
MAX_LINES = 450

#: Private attributes of other libraries the package uses on purpose, with the reason.
OUTSIDE_PRIVATE = {
    "_linear_pointwise": "torch.ops.mkldnn: oneDNN's fused linear + ReLU (model/kernels.py)",
    "_is_mkldnn_bf16_supported": "torch.backends.mkldnn: whether the CPU has native bf16",
    "_modules": "torch.nn.Module's child registry, to swap an embedding in place (model/extend.py)",
    "_async_group": "zarr.Group's asynchronous twin, for concurrent metadata reads",
    "_version": "torch.Tensor's in-place change counter: the model's fingerprint is cached until a weight changes (model/frozen.py)",
    "_predictors": "a fitted HistGradientBoostingRegressor's trees, kept as arrays so a model file needs no pickle (evaluation/trees.py)",
    "_baseline_prediction": "a fitted HistGradientBoostingRegressor's prediction before its first tree (evaluation/trees.py)",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _package_of(name: str) -> str:
    """The package a module belongs to (a package belongs to itself)."""
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str):
    """Yield ``(target module, imported name or None, line)`` for every import of the package."""
    tree = ast.parse(MODULES[name].read_text())
    here = _package_of(name).split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "epitensor":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in MODULES:  # `from . import store`: the module itself
                    yield full, None, node.lineno
                else:
                    yield source, alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "epitensor":
                    yield alias.name, None, node.lineno


def _graph() -> dict[str, set[str]]:
    return {name: {target for target, _, _ in _imports(name) if target in MODULES and target != name}
            for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checks_see_the_package():
    assert len(MODULES) > 40 and "epitensor.genome" in MODULES
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (each list imports itself through the others):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_package():
    crossing = [
        f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: from {source} import {imported}"
        for name in MODULES
        for source, imported, line in _imports(name)
        if imported and imported.startswith("_") and not imported.startswith("__")
        and source in MODULES and _package_of(source) != _package_of(name)
    ]
    assert not crossing, "private names imported across packages:\n" + "\n".join(crossing)


def test_no_private_attribute_of_another_object_is_used():
    """``obj._name`` only on ``self``/``cls``: other objects are used through what they make public."""
    used = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and node.attr not in OUTSIDE_PRIVATE):
                used.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not used, "private attributes used from outside their object:\n" + "\n".join(used)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_short(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{MODULES[name].relative_to(PACKAGE.parent)} has {n} lines (at most {MAX_LINES}): split it by responsibility"
