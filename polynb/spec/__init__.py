"""The Polyaxonfile v1.1 layer: models, YAML loading with positions, DAG validation.

The bottom layer: it imports nothing above it. ``load`` and ``load_text`` are defined here; ``check`` (which
resolves components and params, so it lives in the compiler) stays reachable as ``polynb.spec.check`` for
users: it is bound lazily on first access, so importing the spec layer never imports the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polynb.spec.load import load, load_text

if TYPE_CHECKING:
    from polynb.compiler.check import CheckResult, check

__all__ = ["CheckResult", "check", "load", "load_text"]


def __getattr__(name: str) -> Any:
    if name in {"check", "CheckResult"}:
        from polynb.compiler import check as module  # the public façade: the one upward reference, lazy

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
