"""Fixtures for the local executor: a base folder, and executors that are always shut down.

Every test that makes an executor runs twice: with shims forked by the fork server and spawned one
interpreter each (``POLYNB_LOCAL_SPAWN``), so both ways of starting a shim keep the same behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.execkit import MakeExecutor

from polynb.executors.local.executor import LocalExecutor
from polynb.executors.local.launch import SPAWN_MODE_ENV, SPAWN_MODES


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The base folder of the executor: where a notebook would be."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture(params=SPAWN_MODES)
def spawn_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the executors of the test start their shims (and those of any engine the test starts)."""
    mode: str = request.param
    monkeypatch.setenv(SPAWN_MODE_ENV, mode)
    return mode


@pytest.fixture
def make_executor(workdir: Path, spawn_mode: str) -> Iterator[MakeExecutor]:
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
