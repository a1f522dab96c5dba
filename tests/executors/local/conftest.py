"""Fixtures for the local executor: a base folder, and executors that are always shut down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.execkit import MakeExecutor

from polynb.executors.local.executor import LocalExecutor


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
