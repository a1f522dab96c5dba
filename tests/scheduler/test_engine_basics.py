"""The engine runs DAGs on the real local executor with a real store."""

from __future__ import annotations

import pytest
from support.schedkit import PY, Env, build

from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status

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
