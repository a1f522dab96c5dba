"""Top-level test configuration: the helper modules beside the CLI tests (``clikit``) import by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--k8s-real``: also run the Kubernetes tests against the cluster of ``KUBECONFIG`` (kind, k3d, ...)."""
    parser.addoption("--k8s-real", action="store_true", default=False, help="run the real-cluster Kubernetes tests")
