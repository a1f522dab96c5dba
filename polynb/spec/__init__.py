"""The Polyaxonfile v1.1 layer: models, YAML loading with positions, DAG validation and ``check()``.

``load``, ``load_text`` and ``check`` are imported lazily: ``check`` builds pipelines with the compiler, and
importing the package should stay cheap for code that only needs the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polynb.spec.check import CheckResult, check
    from polynb.spec.load import load, load_text

__all__ = ["CheckResult", "check", "load", "load_text"]


def __getattr__(name: str) -> Any:
    if name in ("load", "load_text"):
        from polynb.spec import load as _load

        return getattr(_load, name)
    if name in ("check", "CheckResult"):
        from polynb.spec import check as _check

        return getattr(_check, name)
    raise AttributeError(f"module 'polynb.spec' has no attribute {name!r}")
