"""Events: an op starts on an upstream's event, is skipped when the event can no longer come (DESIGN §3)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from support.schedkit import DEADLOCK_GUARD, PY, Env, build, dag, job, wait_flag

from polynb.compiler.types import CompiledOp, OpKind, Placement
from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.store import Store


def tensorboard_op(extra: str = "") -> str:
    # A service on the port the executor gives it: a stand-in for TensorBoard.
    return f"""name: tensorboard
events: [{{ref: ops.experiment, kinds: [run_status_running]}}]
params: {{uuid: {{ref: ops.experiment, value: globals.uuid, contextOnly: true}}}}
{extra}component:
  name: tensorboard
  run:
    kind: service
    ports: [6006]
    container: {{command: ["{PY}", "-m", "http.server", "{{{{ globals.ports[0] }}}}", "--bind", "127.0.0.1"]}}"""


def test_service_starts_while_the_experiment_is_still_running(env: Env) -> None:
    flag = env.tmp / "finish-experiment"
    uuid = env.run(dag(job("experiment", wait_flag(flag)), tensorboard_op()))
    ops = env.ops(uuid)
    tb, experiment = ops["tensorboard"].uuid, ops["experiment"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == tb and e.kind == "run_status_running" for e in evs))
    flag.touch()
    # The DAG is decided by its non-service ops: the running service does not keep it alive.
    assert env.wait(uuid) == "succeeded"
    assert env.seq(tb, "run_status_running") < env.seq(experiment, "run_status_succeeded")
    assert env.store.get_run(tb).status == Status.RUNNING
    assert env.store.get_run(tb).inputs == {}
    env.engine.stop(tb)
    assert env.wait(uuid, include_services=True) == "succeeded"
    assert env.store.get_run(tb).status == Status.STOPPED


def test_service_is_skipped_naming_the_upstream_when_the_experiment_fails_before_running(env: Env) -> None:
    uuid = env.run(dag(job("experiment", [str(env.tmp / "no-such-program")]), tensorboard_op()))
    assert env.wait(uuid, include_services=True) == "failed"
    ops = env.ops(uuid)
    assert ops["experiment"].status == Status.FAILED
    assert "run_status_running" not in env.kinds(ops["experiment"].uuid)
    tb = ops["tensorboard"]
    assert tb.status == Status.SKIPPED
    assert tb.reason == "UpstreamEventNotEmitted"
    assert tb.message is not None
    assert "experiment" in tb.message
    assert "failed" in tb.message
    assert "run_status_running" in tb.message


def test_event_op_does_not_wait_for_its_event_upstream_to_finish(env: Env) -> None:
    flag = env.tmp / "go"
    follower = job("follower", ["true"], extra="events: [{ref: ops.leader, kinds: [run_status_running]}]\n")
    uuid = env.run(dag(job("leader", wait_flag(flag)), follower))
    ops = env.ops(uuid)
    env.recorder.wait_for(
        lambda evs: any(e.run_uuid == ops["follower"].uuid and e.kind == "run_status_done" for e in evs)
    )
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    assert env.seq(ops["follower"].uuid, "run_status_succeeded") < env.seq(ops["leader"].uuid, "run_status_done")


def test_event_op_also_waits_for_its_dependencies(env: Env) -> None:
    flag = env.tmp / "prep-done"
    follower = job(
        "follower",
        ["true"],
        extra="dependencies: [prep]\nevents: [{ref: ops.leader, kinds: [run_status_running]}]\n",
    )
    uuid = env.run(dag(job("leader", ["sleep", "0.2"]), job("prep", wait_flag(flag)), follower))
    ops = env.ops(uuid)
    env.recorder.wait_for(
        lambda evs: any(e.run_uuid == ops["leader"].uuid and e.kind == "run_status_done" for e in evs)
    )
    assert env.store.get_run(ops["follower"].uuid).status == Status.CREATED
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    assert env.seq(ops["prep"].uuid, "run_status_done") < env.seq(ops["follower"].uuid, "run_status_compiled")


def test_done_event_starts_the_op_whatever_the_upstream_ended_as(env: Env) -> None:
    follower = job("follower", ["true"], extra="events: [{ref: ops.leader, kinds: [run_status_done]}]\n")
    uuid = env.run(dag(job("leader", ["false"]), follower))
    env.wait(uuid)
    assert env.ops(uuid)["follower"].status == Status.SUCCEEDED


class InstantExecutor:
    """Reports ``succeeded`` right away, never ``running``: a job too fast to be seen running."""

    name = "instant"

    def __init__(self, tmp: Any) -> None:
        self.tmp = tmp

    def place(self, run_uuid: str, kind: OpKind, port_count: int) -> Placement:
        root = f"{self.tmp}/{run_uuid}"
        return Placement(artifacts_path=str(self.tmp), run_artifacts_path=root, run_outputs_path=root + "/outputs")

    def submit(self, op: CompiledOp, on_update: Callable[[ExecutorUpdate], None]) -> dict[str, Any]:
        threading.Thread(target=on_update, args=(ExecutorUpdate(op.uuid, "succeeded", "ExitCode", "0"),)).start()
        return {"uuid": op.uuid}

    def stop(self, run_uuid: str, *, grace: float | None = None) -> None: ...
    def logs(self, run_uuid: str, *, follow: bool = False) -> Any:
        return iter(())

    def reattach(self, op: CompiledOp, record: dict[str, Any], on_update: Any) -> bool:
        return False

    def cleanup(self, run_uuid: str) -> None: ...
    def shutdown(self, *, stop_running: bool = True) -> None: ...


def test_fast_job_reported_succeeded_emits_running_first(tmp_path: Any) -> None:
    store = Store(tmp_path / "db.sqlite")
    engine = Engine(store=store, executors={"instant": InstantExecutor(tmp_path)}, default_executor="instant")
    engine.start()
    try:
        waiter = job("waiter", ["true"], extra="events: [{ref: ops.fast, kinds: [run_status_running]}]\n")
        uuid = engine.submit(build(dag(job("fast", ["true"]), waiter)))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
        fast = next(r for r in store.children(uuid) if r.name == "fast")
        kinds = [e.kind for e in store.events(run_uuid=fast.uuid)]
        assert kinds.index("run_status_running") < kinds.index("run_status_succeeded")
        running = next(c for c in store.status_history(fast.uuid) if c.status == Status.RUNNING)
        assert running.reason == "ObservedSucceeded"
        assert {r.name: r.status for r in store.children(uuid)}["waiter"] == Status.SUCCEEDED
    finally:
        engine.shutdown()
        store.close()
