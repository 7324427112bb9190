"""Every third-party package epitensor imports is declared in pyproject.toml.

Each module of ``epitensor/`` is parsed (ast, nothing imported): every absolute import, at module
level or inside a function, counts. An import inside ``try:`` whose handler catches ImportError is
optional: its distribution may sit in an extra of ``[project.optional-dependencies]`` instead of
``[project] dependencies``. Import names map to distributions through the installed packages'
metadata (``importlib.metadata.packages_distributions``); an optional import whose package is not
installed here (an extra the test environment lacks) must match an extra's distribution by name
(``umap`` -> ``umap-learn``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "epitensor"
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in names if n is not None)


def imports(source: str) -> dict[str, bool]:
    """Top-level names of the absolute imports in ``source`` -> True when every one is guarded
    by ``try/except ImportError``."""
    found: dict[str, bool] = {}

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            inner = guarded or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, inner)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        roots = []
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = [node.module.split(".")[0]]
        for root in roots:
            found[root] = found.get(root, True) and guarded
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return found


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)[1]).lower()


def declared() -> tuple[set[str], set[str]]:
    """(distributions in [project] dependencies, distributions in any optional extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {_name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    return {_name(r) for r in project["dependencies"]}, extras


def third_party_imports() -> dict[str, tuple[bool, list[str]]]:
    """Import root -> (optional everywhere, modules importing it), over every module of epitensor."""
    out: dict[str, tuple[bool, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for root, guarded in imports(path.read_text()).items():
            if root in sys.stdlib_module_names or root in ("epitensor", "__future__"):
                continue
            was, where = out.get(root, (True, []))
            out[root] = (was and guarded, [*where, str(path.relative_to(ROOT))])
    return out


def test_the_walk_sees_function_level_and_guarded_imports():
    found = imports("import a.b\nfrom c import d\ndef f():\n    import e\n    try:\n        import g\n"
                    "    except (ImportError, OSError):\n        import h\n    try:\n        import i\n"
                    "    except ValueError:\n        pass\nfrom . import local\n")
    assert found == {"a": False, "c": False, "e": False, "g": True, "h": False, "i": False}


def test_every_third_party_import_is_declared():
    required, extras = declared()
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for root, (optional, where) in sorted(third_party_imports().items()):
        names = {_name(d) for d in distributions.get(root, [])}
        if not names and optional:  # an extra not installed here: its distribution named after the module
            names = {d for d in extras if d == _name(root) or d.startswith(_name(root) + "-")}
        if not names:
            pytest.fail(f"{root!r} (imported by {where[0]}) is not installed and not guarded by try/except "
                        "ImportError: declare its distribution in [project] dependencies (then it is installed)")
        allowed = required | extras if optional else required
        if not names & allowed:
            need = "an optional extra" if optional else "[project] dependencies"
            undeclared.append(f"{root} (distribution {', '.join(sorted(names))}; imported by {', '.join(where[:3])}) "
                              f"belongs in {need}")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)
