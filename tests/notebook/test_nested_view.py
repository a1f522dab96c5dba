"""The run widget's model of a nested DAG: the ops of the DAG an op runs are listed under that op as
``outer-op/inner-op``, with their own edges, from the store's event log (run by the real engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.schedkit import DEADLOCK_GUARD, build

from polynb.executors.local.executor import LocalExecutor
from polynb.notebook.model import RunTracker
from polynb.scheduler.engine import Engine
from polynb.store import Store

NESTED = """
version: 1.1
kind: component
name: outer
run:
  kind: dag
  operations:
    - name: first
      component:
        name: inner
        run:
          kind: dag
          operations:
            - {name: a, component: {run: {kind: job, container: {command: ["true"]}}}}
            - {name: b, dependencies: [a], component: {run: {kind: job, container: {command: ["true"]}}}}
    - name: after
      dependencies: [first]
      component: {run: {kind: job, container: {command: ["true"]}}}
"""


def test_the_widget_lists_a_nested_dags_ops_under_their_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    try:
        uuid = engine.submit(build(NESTED))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()
    try:
        tracker = RunTracker(store, uuid)
        tracker.refresh()
        snap = tracker.snapshot(0.0)
        assert [(op.name, op.status) for op in snap.ops] == [
            ("outer", "succeeded"),
            ("first", "succeeded"),
            ("first/a", "succeeded"),
            ("first/b", "succeeded"),
            ("after", "succeeded"),
        ]
        edges = {(e.src, e.dst, e.kind) for e in snap.edges}
        assert edges == {("first/a", "first/b", "dependency"), ("first", "after", "dependency")}
        assert any(line.name == "first/b" and line.status == "succeeded" for line in snap.log)
        assert not tracker.refresh()  # everything was read once
    finally:
        store.close()
