"""The rooms of DESIGN.md talk in one direction; the pure ones import nothing of the rest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harvester"

# module prefix -> harvester modules it may import (besides itself)
RULES = {
    "harvester.imaging": (),
    "harvester.emulator": (),
    "harvester.storage.layout": (),
    "harvester.http": ("harvester.errors",),
    "harvester.errors": (),
    "harvester.config": ("harvester.errors",),
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _harvester_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "harvester" or name.startswith("harvester.")}


@pytest.mark.parametrize("prefix", sorted(RULES))
def test_pure_rooms_import_only_what_they_may(prefix: str):
    allowed = (prefix, *RULES[prefix])
    files = [p for p in PACKAGE.rglob("*.py") if _module(p).startswith(prefix)]
    assert files, f"no module under {prefix}"
    offenders = {
        f"{_module(path)} imports {name}"
        for path in files
        for name in _harvester_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not offenders, sorted(offenders)
