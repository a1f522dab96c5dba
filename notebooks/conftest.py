"""nbval runs of the example notebooks: a fresh ``POLYNB_HOME`` (runs, artifacts, the store) for the session.

nbval starts each notebook's kernel from this process, so the kernel inherits the environment set here.

``--polynb-executor kubernetes`` runs the same notebooks on Kubernetes: the kernels' default executor is
``kubernetes`` (``POLYNB_EXECUTOR``) and ``KUBECONFIG`` points at the test cluster, the project's API-server
emulator whose kubelet executes every container as a local process from stock images (none of them holds
polynb), with a ReadWriteMany claim as the artifacts volume, as a cluster user would configure it
(docs/kubernetes.md). The outputs must match the local run's: the notebooks promise the same results on both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

_home: str | None = None
_cluster: contextlib.ExitStack | None = None

ARTIFACTS_CLAIM = "polynb-artifacts"
TESTS = Path(__file__).resolve().parents[1] / "tests"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--polynb-executor",
        choices=("local", "kubernetes"),
        default="local",
        help="where the example notebooks' ops run (kubernetes: the executing test cluster)",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _home, _cluster
    _home = tempfile.mkdtemp(prefix="polynb-nbval-")
    os.environ["POLYNB_HOME"] = _home
    os.environ["IPYKERNEL_CELL_NAME"] = "<IPY-INPUT>"  # stable tracebacks
    if config.getoption("--polynb-executor") == "kubernetes":
        _cluster = contextlib.ExitStack()
        os.environ.update(_start_cluster(_cluster, Path(_home) / "k8s"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _cluster is not None:
        _cluster.close()
    if _home is not None:
        shutil.rmtree(_home, ignore_errors=True)


def _start_cluster(stack: contextlib.ExitStack, folder: Path) -> dict[str, str]:
    """The executing test cluster, with the artifacts claim created as an administrator would."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from k8s_emulator import testkit

    folder.mkdir(parents=True)
    emu: Any = stack.enter_context(testkit.executing(folder))
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": ARTIFACTS_CLAIM, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    emu.store.create("persistentvolumeclaims", "default", claim)
    return {
        "KUBECONFIG": str(folder / "kubeconfig"),
        "POLYNB_EXECUTOR": "kubernetes",
        "POLYNB_K8S_ARTIFACTS_CLAIM": ARTIFACTS_CLAIM,
    }


LOCAL_ONLY: dict[str, str] = {}
"""Notebooks that show what only the local executor does yet: skipped with ``--polynb-executor kubernetes``."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--polynb-executor") != "kubernetes":
        return
    for item in items:
        reason = LOCAL_ONLY.get(Path(str(item.fspath)).name)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"local executor only: {reason}"))
