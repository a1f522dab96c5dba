"""The scheduler drives executors through their protocol only: it never imports a concrete executor (not even
lazily inside a function), so the caller decides which executors an engine has."""

from __future__ import annotations

import ast
from pathlib import Path

import polynb.scheduler

SCHEDULER = Path(polynb.scheduler.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``from pkg import mod`` counts as ``pkg.mod``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "polynb.executors")
    return found


def test_the_scheduler_imports_only_the_executor_protocol() -> None:
    executors = {
        path.name: {m for m in imported_modules(path) if m.startswith("polynb.executors")}
        for path in sorted(SCHEDULER.rglob("*.py"))
    }
    assert {name: found for name, found in executors.items() if found - {"polynb.executors.base"}} == {}
