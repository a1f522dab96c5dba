"""A DAG's index of its runs' logs, written to the artifacts store when it ends (polynb/scheduler/log_index.py):
a nested DAG's ops under ``outer/inner`` labels, and a store that cannot be written costs a warning, never the
engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from support.schedkit import DEADLOCK_GUARD, PY, build, dag, job

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.log_archive import LogArchive
from polynb.scheduler.engine import Engine
from polynb.spec.load import load_text
from polynb.spec.models import Component
from polynb.store import Store

FIT = json.dumps([PY, "-c", "print('fit')"])
INNER = f"""
version: 1.1
kind: component
name: inner
run:
  kind: dag
  operations:
    - {{name: fit, component: {{name: fit, run: {{kind: job, container: {{command: {FIT}}}}}}}}}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run_dag(tmp_path: Path, archive: LogArchive) -> str:
    store = Store(tmp_path / "home" / "polynb.db")
    registry = ComponentRegistry()
    inner = load_text(INNER, "inner.yaml")
    assert isinstance(inner, Component)
    registry.register("inner", inner)
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, registry=registry,
                    log_archive=lambda: archive)  # fmt: skip
    engine.start()
    try:
        text = dag(
            job("prepare", [PY, "-c", "print('prepared')"]), "{name: nested, hubRef: inner, dependencies: [prepare]}"
        )
        uuid = engine.submit(build(text, registry=registry))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()  # writes what was handed to the index's worker
        store.close()
    return uuid


def test_an_ended_dag_leaves_its_runs_in_order_with_their_labels(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "store"
    archive = LogArchive("shared", "host_path", str(folder), folder=folder)
    uuid = run_dag(tmp_path, archive)
    index = json.loads((folder / uuid / "logs" / "dag.json").read_text())
    assert (index["uuid"], index["status"]) == (uuid, "succeeded")
    assert [r["label"] for r in index["runs"]] == ["prepare", "nested/fit"]
    assert [label for label, _ in archive.read_index(uuid) or []] == ["prepare", "nested/fit"]
    assert archive.find(uuid[:12]) == [uuid]


def test_a_store_that_cannot_be_written_is_a_warning(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    archive = LogArchive("shared", "host_path", str(blocker), folder=blocker)
    with caplog.at_level(logging.WARNING, logger="polynb.scheduler.log_index"):
        uuid = run_dag(tmp_path, archive)
    assert f"DAG {uuid}: its logs' index is not in the artifacts store: artifacts store shared" in caplog.text
