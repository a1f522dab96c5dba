"""Fixtures: POLYNB_HOME in tmp_path, a base folder, and executors that are always shut down."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers module sits beside this file; test modules import it by name.
sys.path.insert(0, str(Path(__file__).parent))
from execkit import MakeExecutor

from polynb.executors.local.executor import LocalExecutor

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$POLYNB_HOME`` for the test; jobs can import polynb (``tracking``) even from a source tree."""
    path = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(path))
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{REPO_ROOT}{os.pathsep}{python_path}" if python_path else str(REPO_ROOT))
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The base folder of the executor: where a notebook would be."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def make_executor(workdir: Path) -> Iterator[MakeExecutor]:
    made: list[LocalExecutor] = []

    def make(**kwargs: Any) -> LocalExecutor:
        kwargs.setdefault("base_dir", workdir)
        kwargs.setdefault("stop_grace", 2.0)
        executor = LocalExecutor(**kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown()


@pytest.fixture
def executor(make_executor: MakeExecutor) -> LocalExecutor:
    return make_executor()
