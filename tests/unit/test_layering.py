"""The rooms of DESIGN.md talk in one direction; the pure ones import nothing of the rest.

Imports are read from the source (type-only and function-local ones included), so a cycle
hidden behind `if TYPE_CHECKING:` or a late import counts as a cycle.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harvester"

# module prefix -> harvester modules it may import (besides itself)
RULES = {
    "harvester.imaging": (),
    "harvester.emulator": (),
    "harvester.storage.layout": (),
    "harvester.http": ("harvester.errors", "harvester.backoff", "harvester.redact"),
    "harvester.backoff": (),
    "harvester.redact": (),
    "harvester.records": (),
    "harvester.licences": (),
    "harvester.errors": (),
    "harvester.reasons": (),
    "harvester.config": ("harvester.errors", "harvester.redact"),
    "harvester.log": ("harvester.redact",),
}

# module prefix -> top-level packages it must not import: SQL lives in harvester/db/
FORBIDDEN = {
    "harvester.worker": ("sqlalchemy", "alembic"),
    "harvester.sources": ("sqlalchemy", "alembic"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


@cache
def _imports(path: Path) -> frozenset[str]:
    """Every module named by an import statement anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from harvester.db import models` imports the module harvester.db.models
            found.update(
                f"{node.module}.{a.name}"
                for a in node.names
                if f"{node.module}.{a.name}" in MODULES
            )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return frozenset(found)


def _harvester_imports(path: Path) -> set[str]:
    return {name for name in _imports(path) if name == "harvester" or name.startswith("harvester.")}


def _files(prefix: str) -> list[Path]:
    files = [p for m, p in MODULES.items() if m == prefix or m.startswith(prefix + ".")]
    assert files, f"no module under {prefix}"
    return files


@pytest.mark.parametrize("prefix", sorted(RULES))
def test_pure_rooms_import_only_what_they_may(prefix: str):
    allowed = (prefix, *RULES[prefix])
    offenders = {
        f"{_module(path)} imports {name}"
        for path in _files(prefix)
        for name in _harvester_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not offenders, sorted(offenders)


@pytest.mark.parametrize("prefix", sorted(FORBIDDEN))
def test_rooms_outside_db_do_not_import_the_database_driver(prefix: str):
    offenders = {
        f"{_module(path)} imports {name}"
        for path in _files(prefix)
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN[prefix]
    }
    assert not offenders, sorted(offenders)


def _graph() -> dict[str, set[str]]:
    """Module -> harvester modules it imports (a package's own submodules excluded: its
    __init__ re-exporting them is not a cycle with them importing each other)."""
    return {
        module: {
            name
            for name in _harvester_imports(path)
            if name in MODULES and name != module and not module.startswith(name + ".")
        }
        for module, path in MODULES.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    assert _cycles(_graph()) == []


def test_a_type_only_import_back_is_found_as_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
