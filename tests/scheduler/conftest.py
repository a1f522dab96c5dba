"""Fixtures for engine tests: a real store and local executor in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.recorder import Recorder
from support.schedkit import Env

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.store import Store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    executor = LocalExecutor(base_dir=tmp_path, stop_grace=2.0)
    registry = ComponentRegistry()
    engine = Engine(store=store, executors={"local": executor}, registry=registry, retry_delay=0.05)
    recorder = Recorder[EngineEvent]()
    engine.subscribe(recorder)
    engine.start()
    try:
        yield Env(store, engine, executor, registry, recorder, tmp_path)
    finally:
        engine.shutdown(stop_running=True)
        store.close()
