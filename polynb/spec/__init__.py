"""The Polyaxonfile v1.1 layer: models, YAML loading with positions, DAG validation and ``check()``.

``load``, ``load_text`` and ``check`` share their names with the modules that define them: they are bound
here, after those modules are imported, so ``from polynb.spec import check`` is the function. Import the
modules themselves with ``from polynb.spec.check import ...`` (``check`` imports the compiler only when
called, so this stays cheap).
"""

from __future__ import annotations

from polynb.spec.check import CheckResult, check
from polynb.spec.load import load, load_text

__all__ = ["CheckResult", "check", "load", "load_text"]
