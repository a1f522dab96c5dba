"""Top-level test configuration.

The tree mirrors ``polynb/`` (``tests/cli/``, ``tests/executors/local/``, ...); helpers shared by several
folders live in the ``support`` package and the Kubernetes API emulator in ``k8s_emulator``. This file puts
``tests/`` on ``sys.path`` once, so every test imports them the same way (``from support.execkit import ...``,
``from k8s_emulator import Emulator``) whatever folder it sits in; test modules themselves are imported by
pytest with ``--import-mode=importlib`` and need no entry on the path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--k8s-real``: also run the Kubernetes tests against the cluster of ``KUBECONFIG`` (kind, k3d, ...)."""
    parser.addoption("--k8s-real", action="store_true", default=False, help="run the real-cluster Kubernetes tests")
