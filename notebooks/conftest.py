"""nbval runs of the example notebooks: a fresh ``POLYNB_HOME`` (runs, artifacts, the store) for the session.

nbval starts each notebook's kernel from this process, so the kernel inherits the environment set here.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_home: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _home
    _home = tempfile.mkdtemp(prefix="polynb-nbval-")
    os.environ["POLYNB_HOME"] = _home
    os.environ["IPYKERNEL_CELL_NAME"] = "<IPY-INPUT>"  # stable tracebacks


def pytest_unconfigure(config: pytest.Config) -> None:
    if _home is not None:
        shutil.rmtree(_home, ignore_errors=True)
