"""Top-level test configuration.

The tree mirrors ``polynb/`` (``tests/cli/``, ``tests/executors/local/``, ...); helpers shared by several
folders live in the ``support`` package and the Kubernetes API emulator in ``k8s_emulator``. This file puts
``tests/`` on ``sys.path`` once, so every test imports them the same way (``from support.execkit import ...``,
``from k8s_emulator import Emulator``) whatever folder it sits in; test modules themselves are imported by
pytest with ``--import-mode=importlib`` and need no entry on the path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from polynb.cli import served

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--k8s-real``: also run the Kubernetes tests against the cluster of ``KUBECONFIG`` (kind, k3d, ...)."""
    parser.addoption("--k8s-real", action="store_true", default=False, help="run the real-cluster Kubernetes tests")


@pytest.fixture(scope="session", autouse=True)
def command_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``polynb`` commands the tests start are served as a user's are (the command server is on by default),
    by servers in a folder of this session's, stopped when the session ends: none outlives the tests."""
    folder = tmp_path_factory.mktemp("command-servers")
    folder.chmod(0o700)
    before = os.environ.get(served.FOLDER)
    os.environ[served.FOLDER] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(served.FOLDER, None)
    else:
        os.environ[served.FOLDER] = before
    for lock in folder.glob("cmd-*.lock"):
        text = lock.read_text().strip()
        if text.isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(text), signal.SIGTERM)
