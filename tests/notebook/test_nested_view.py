"""The run widget's model of a nested DAG: the ops of the DAG an op runs are listed under that op as
``outer-op/inner-op``, with their own edges, from the store's event log (run by the real engine)."""

from __future__ import annotations

import json
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


def test_a_retried_nested_dag_shows_its_current_attempts_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    counter = tmp_path / "n"
    flaky = f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"; [ "$n" -ge 2 ]'
    a = '{name: a, component: {run: {kind: job, container: {command: ["true"]}}}}'
    assert a in NESTED
    text = NESTED.replace("    - name: first\n", "    - name: first\n      termination: {maxRetries: 1}\n", 1).replace(
        a, a.replace('["true"]', json.dumps(["sh", "-c", flaky])), 1
    )
    store = Store(tmp_path / "home" / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, retry_delay=0.05)
    engine.start()
    try:
        uuid = engine.submit(build(text))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()
    try:
        tracker = RunTracker(store, uuid)
        tracker.refresh()
        snap = tracker.snapshot(0.0)
        # The ops of its second attempt, once each (the first attempt's stay in the log).
        assert [(op.name, op.status) for op in snap.ops] == [
            ("outer", "succeeded"),
            ("first", "succeeded"),
            ("first/a", "succeeded"),
            ("first/b", "succeeded"),
            ("after", "succeeded"),
        ]
        assert any(line.name == "first/a" and line.status == "failed" for line in snap.log), snap.log
    finally:
        store.close()


SCHEDULED = """
version: 1.1
kind: component
name: nightly
run:
  kind: dag
  operations:
    - name: every
      schedule: {kind: interval, frequency: 1, maxRuns: 2}
      component: {run: {kind: job, container: {command: ["true"]}}}
    - name: after
      dependencies: [every]
      component: {run: {kind: job, container: {command: ["true"]}}}
"""


def test_the_widget_lists_a_scheduled_ops_ticks_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    try:
        uuid = engine.submit(build(SCHEDULED))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()
    try:
        tracker = RunTracker(store, uuid)
        tracker.refresh()
        snap = tracker.snapshot(0.0)
        assert [(op.name, op.kind, op.status) for op in snap.ops] == [
            ("nightly", "dag", "succeeded"),
            ("every", "schedule", "succeeded"),
            ("every/every-1", "job", "succeeded"),
            ("every/every-2", "job", "succeeded"),
            ("after", "job", "succeeded"),
        ]
        assert {(e.src, e.dst, e.kind) for e in snap.edges} == {("every", "after", "dependency")}
        assert any(line.name == "every" and line.status == "on_schedule" for line in snap.log)
    finally:
        store.close()
