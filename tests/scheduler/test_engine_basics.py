"""The engine runs DAGs on the real local executor with a real store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.schedkit import DEADLOCK_GUARD, PY, Env, build

from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.store import Store

TWO_STEPS = f"""
version: 1.1
kind: component
name: two-steps
run:
  kind: dag
  operations:
  - name: a
    dagRef: quick
  - name: b
    dagRef: quick
    dependencies: [a]
  components:
  - name: quick
    run: {{kind: job, container: {{command: ["{PY}", "-c", "pass"]}}}}
"""


def test_dag_runs_ops_in_order_and_succeeds(env: Env) -> None:
    uuid = env.run(TWO_STEPS)
    assert env.wait(uuid) == "succeeded"
    ops = env.ops(uuid)
    assert {r.status for r in ops.values()} == {Status.SUCCEEDED}
    assert env.seq(ops["a"].uuid, "run_status_done") < env.seq(ops["b"].uuid, "run_status_compiled")


def test_every_run_goes_through_polyaxon_statuses(env: Env) -> None:
    uuid = env.run(TWO_STEPS)
    env.wait(uuid)
    a = env.ops(uuid)["a"]
    kinds = env.kinds(a.uuid)
    assert kinds[0] == "run_status_created"
    for earlier, later in [
        ("run_status_created", "run_status_compiled"),
        ("run_status_compiled", "run_status_queued"),
        ("run_status_queued", "run_status_running"),
        ("run_status_running", "run_status_succeeded"),
    ]:
        assert kinds.index(earlier) < kinds.index(later)
    assert kinds[-2:] == ["run_status_succeeded", "run_status_done"]
    history = env.store.status_history(a.uuid)
    assert all(change.reason for change in history[1:])
    # Compiled and claimed in one write, still a history row each, with the compiled op stored.
    assert [change.status for change in history[:3]] == [Status.CREATED, Status.COMPILED, Status.QUEUED]
    assert (history[1].reason, history[2].reason, a.attempt) == ("Compiled", "Queued", 1)
    assert a.spec["uuid"] == a.uuid
    assert env.kinds(uuid)[-2:] == ["run_status_succeeded", "run_status_done"]


def test_an_executor_added_after_start_runs_ops_submitted_to_it(env: Env) -> None:
    other = LocalExecutor(base_dir=env.tmp, stop_grace=2.0)
    env.engine.add_executor("second", other)
    try:
        job = "version: 1.1\nkind: component\nname: one\nrun: {kind: job, container: {command: ['true']}}\n"
        uuid = env.engine.submit(build(job, registry=env.registry), executor="second")
        assert env.wait(uuid) == Status.SUCCEEDED
        assert env.store.get_run(uuid).executor == "second"
        with pytest.raises(ValueError, match="already configured"):
            env.engine.add_executor("second", other)
    finally:
        other.shutdown()


def test_a_shutdown_that_stops_a_dag_ends_it_after_its_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As after a user's stop: the DAG is `stopped` once its ops are, never while one is still `stopping`."""
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    up = tmp_path / "up"
    text = (
        "version: 1.1\nkind: component\nname: d\nrun:\n  kind: dag\n  operations:\n"
        '  - {name: slow, component: {run: {kind: job, container: {command: [sh, -c, \'trap "sleep 0.3; exit 1" '
        f"TERM; touch {up}; while true; do sleep 0.05; done']}}}}}}}}\n"
        "  - {name: after, dependencies: [slow], component: {run: {kind: job, container: {command: ['true']}}}}\n"
    )
    with Store(tmp_path / "home" / "polynb.db") as store:
        engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path, stop_grace=5.0)})
        engine.start()
        uuid = engine.submit(build(text))
        deadline = time.monotonic() + DEADLOCK_GUARD
        while not up.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        engine.shutdown(stop_running=True)
        dag = store.get_run(uuid)
        assert (dag.status, dag.reason) == (Status.STOPPED, "EngineShutdown")
        ops = {r.name: r for r in store.children(uuid)}
        assert {name: r.status for name, r in ops.items()} == {"slow": Status.STOPPED, "after": Status.STOPPED}
        final = {e.run_uuid: e.seq for e in store.events(dag_uuid=uuid) if e.kind == "run_status_stopped"}
        assert final[uuid] > final[ops["slow"].uuid]
