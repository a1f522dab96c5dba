"""The run widget's model: a tracker refreshed again and again shows exactly what a new one shows.

A snapshot rebuilds only the views of the runs whose events it applied since the last one (a DAG of a thousand
ops is redrawn ten times a second), so a view kept from an earlier snapshot must never be stale: replayed one
event at a time, every snapshot of one long-lived tracker equals that of a tracker made from the same events.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.schedkit import DEADLOCK_GUARD, build, component, dag, job

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.notebook.model import RunTracker
from polynb.scheduler.engine import Engine
from polynb.store import Store

HOOKS = "hooks:\n- {hubRef: notify, trigger: succeeded}\n- {hubRef: notify, trigger: done}\n"
NESTED = """
name: inner
component:
  name: inner
  run:
    kind: dag
    operations:
      - {name: a, component: {run: {kind: job, container: {command: ["true"]}}}}
      - {name: b, dependencies: [a], component: {run: {kind: job, container: {command: ["false"]}}}}
"""


def test_every_snapshot_of_a_tracker_refreshed_event_by_event_equals_a_new_trackers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    registry = ComponentRegistry()
    registry.register("notify", component("notify", ["true"]))
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, registry=registry)
    engine.start()
    try:
        # Hooks (a marker on their main op), an op started by another's running event (a marker on that one),
        # a dependency, a nested DAG that fails, and a hook of the DAG itself.
        text = dag(
            job("first", ["sleep", "0.2"], extra=HOOKS),
            job("watcher", ["true"], extra="events: [{ref: ops.first, kinds: [run_status_running]}]\n"),
            job("after", ["true"], extra="dependencies: [first]\n" + HOOKS),
            NESTED.strip(),
            extra=HOOKS,
        )
        uuid = engine.submit(build(text, registry=registry))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
    finally:
        engine.shutdown()
    try:
        events = store.events()
        assert len(events) > 50
        kept = RunTracker(store, uuid)
        seen_markers = seen_stale = False
        for n in range(1, len(events) + 1):
            kept.apply(events[n - 1 : n])
            now = events[n - 1].at.timestamp()
            new = RunTracker(store, uuid)
            new.apply(events[:n])
            snapshot = kept.snapshot(now)
            assert snapshot == new.snapshot(now), f"after event {n}: {events[n - 1]}"
            seen_markers |= any(m.kind in ("hook", "event") for op in snapshot.ops for m in op.markers)
            seen_stale |= snapshot.ops != kept.snapshot(now + 1).ops  # (never: no event between the two)
        assert seen_markers
        assert not seen_stale
        names = {op.name for op in snapshot.ops}
        assert {"first", "watcher", "after", "inner", "inner/a", "inner/b", "first-notify-on-done"} <= names
    finally:
        store.close()
