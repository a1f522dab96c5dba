"""polynb: Polyaxon-style ML pipelines with events and hooks, native to Jupyter.

``%load_ext polynb`` loads the notebook magics (or ``c.InteractiveShellApp.extensions = ["polynb"]`` in
``ipython_kernel_config.py``); ``polynb.run(...)`` submits a pipeline from Python. Both import the
notebook layer lazily, so ``import polynb`` stays light for the CLI and for running jobs.
"""

from __future__ import annotations

import os

# ``typing`` and ``collections.abc`` only for the type checker: every ``polynb`` command and every op's shim
# imports this package first, and ``typing`` (with ``re``) is ~10 ms of a served command's ~60.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from polynb.notebook.handle import RunHandle
    from polynb.spec.models import Component, Operation

    __version__: str


def __getattr__(name: str) -> Any:
    # Looked up on first use (polynb.version): every local run's shim imports this package.
    if name == "__version__":
        from polynb.version import installed_version

        return installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext polynb``."""
    from polynb.notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext polynb``."""
    from polynb.notebook.magics import unload_ipython_extension as unload

    unload(ipython)


def run(
    spec: Component | Operation | str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    executor: str | None = None,
    kubernetes: Mapping[str, Any] | None = None,
) -> RunHandle:
    """Submit a pipeline to this process's scheduler session; see :func:`polynb.notebook.api.run`."""
    from polynb.notebook.api import run as submit

    return submit(spec, params=params, executor=executor, kubernetes=kubernetes)


def emit(name: str, *, org: bool = False, **payload: Any) -> list[int]:
    """Send a custom event to the running DAGs; see :func:`polynb.notebook.api.emit` (inside an op, use
    ``polynb.tracking.emit``, which emits on the op's own run)."""
    from polynb.notebook.api import emit as send

    return send(name, org=org, **payload)
