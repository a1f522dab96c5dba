"""Events beyond statuses from their real sources: tracking calls inside ops (local executor), approvals and
custom events through the engine's API (docs/semantics.md, "Events")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.schedkit import PY, Env, dag, describe, job, wait_flag

from polynb.compiler.check import check
from polynb.lifecycle import Status


def tracked(code: str, *, then_wait: Path | None = None) -> list[str]:
    """A python op that calls ``polynb.runtime.tracking`` (what ``polynb.tracking`` re-exports), then
    optionally blocks until ``then_wait`` exists (so the test can prove its downstream started meanwhile)."""
    wait = f"\nimport os, time\nwhile not os.path.exists({str(then_wait)!r}): time.sleep(0.02)" if then_wait else ""
    return [PY, "-c", "from polynb.runtime import tracking\n" + code + wait]


def report(types: dict[str, str] | None = None, **refs: str) -> tuple[str, str]:
    """A downstream op body: params from ``refs`` (name -> value path on ops.train), written as outputs."""
    params = ", ".join(f"{k}: {{ref: ops.train, value: {v}}}" for k, v in refs.items())
    inputs = ", ".join(f"{{name: {k}, type: {(types or {}).get(k, 'str')}}}" for k in refs)
    args = json.dumps(
        [PY, "-c", "import json, os, sys; p = os.environ['POLYAXON_RUN_OUTPUTS_PATH'] + '/outputs.json'; "
         "json.dump(dict(zip(sys.argv[1::2], sys.argv[2::2])), open(p, 'w'))"]
        + [a for k in refs for a in (k, f"{{{{ {k} }}}}")]
    )  # fmt: skip
    return f"{{inputs: [{inputs}], run: {{kind: job, container: {{command: {args}}}}}}}", params


def consumer(name: str, kinds: str, refs: dict[str, str], types: dict[str, str] | None = None) -> str:
    component, params = report(types, **refs)
    return f"name: {name}\nevents: [{{ref: ops.train, kinds: [{kinds}]}}]\nparams: {{{params}}}\ncomponent: {component}"


def test_an_op_starts_on_the_first_artifact_and_reads_it_while_the_upstream_still_runs(env: Env) -> None:
    flag = env.tmp / "let-train-finish"
    ckpt = env.tmp / "ckpt-1.pt"
    code = f"tracking.log_artifact({str(ckpt)!r}, kind='model')"
    uuid = env.run(
        dag(
            job("train", tracked(code, then_wait=flag)),
            consumer("evaluate", "run_new_artifacts", {"ckpt": "artifacts.latest"}),
        )
    )
    ops = env.ops(uuid)
    evaluate = ops["evaluate"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == evaluate and e.kind == "run_status_succeeded" for e in evs))
    assert env.store.get_run(ops["train"].uuid).status == Status.RUNNING  # evaluated while train still runs
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    assert env.store.get_run(evaluate).outputs == {"ckpt": str(ckpt)}
    (artifact,) = [e for e in env.store.events(run_uuid=ops["train"].uuid) if e.kind == "run_new_artifacts"]
    assert artifact.payload == {"path": str(ckpt), "kind": "model", "name": "ckpt-1.pt"}


def test_an_artifact_logged_just_before_the_op_exits_still_fires(env: Env) -> None:
    code = "tracking.log_artifact('last.pt', name='last')"
    uuid = env.run(
        dag(job("train", tracked(code)), consumer("evaluate", "run_new_artifacts", {"ckpt": "artifacts.last"}))
    )
    assert env.wait(uuid) == "succeeded"
    ops = env.ops(uuid)
    assert ops["evaluate"].status == Status.SUCCEEDED
    assert ops["evaluate"].outputs["ckpt"].endswith("/last.pt")
    kinds = env.kinds(ops["train"].uuid)
    # Recorded before the final status, so the log tells the truth about when it happened.
    assert kinds.index("run_new_artifacts") < kinds.index("run_status_succeeded")


def test_an_op_awaiting_an_artifact_never_logged_is_skipped_naming_the_upstream(env: Env) -> None:
    uuid = env.run(dag(job("train", tracked("pass")), consumer("evaluate", "run_new_artifacts", {"x": "globals.uuid"})))
    assert env.wait(uuid) == "succeeded"
    evaluate = env.ops(uuid)["evaluate"]
    assert evaluate.status == Status.SKIPPED
    assert evaluate.reason == "UpstreamEventNotEmitted"
    assert evaluate.message == "upstream train ended succeeded without emitting run_new_artifacts"


def test_metrics_and_alerts_fire_their_kinds_and_reach_params(env: Env) -> None:
    flag = env.tmp / "done"
    code = "\n".join(
        [
            "tracking.log_metrics(step=1, loss=0.5)",
            "tracking.log_metrics(step=2, loss=0.25)",
            "tracking.alert('critical', 'loss exploded', value=1e9)",
        ]
    )
    uuid = env.run(
        dag(
            job("train", tracked(code, then_wait=flag)),
            consumer("page", "alert_critical", {"why": "globals.events"}, {"why": "dict"}),
            consumer("metric", "model_version_new_metric", {"m": "globals.metrics"}, {"m": "dict"}),
        )
    )
    ops = env.ops(uuid)
    page = ops["page"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == page and e.kind == "run_status_succeeded" for e in evs))
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    ops = env.ops(uuid)
    assert "loss exploded" in ops["page"].outputs["why"]
    # The metric op started on the first metric; it read what had arrived by then (one or both values).
    assert ops["metric"].outputs["m"] in ("{'loss': 0.5}", "{'loss': 0.25}")
    kinds = env.kinds(ops["train"].uuid)
    assert kinds.count("model_version_new_metric") == 2
    assert "alert_critical" in kinds


def test_an_unapproved_op_waits_for_its_approval(env: Env) -> None:
    uuid = env.run(dag(job("gate", [PY, "-c", "pass"], extra="isApproved: false\n")))
    gate = env.ops(uuid)["gate"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == uuid and e.kind == "run_status_running" for e in evs))
    assert env.store.get_run(gate).status == Status.CREATED
    env.engine.approve(gate, actor="alice")
    assert env.wait(uuid) == "succeeded"
    assert env.store.get_run(gate).status == Status.SUCCEEDED
    (approved,) = [e for e in env.store.events(run_uuid=gate) if e.kind == "run_approved_actor"]
    assert approved.payload == {"actor": "alice"}


def test_an_invalidated_op_is_skipped_with_the_reason(env: Env) -> None:
    uuid = env.run(dag(job("gate", [PY, "-c", "pass"], extra="isApproved: false\n")))
    gate = env.ops(uuid)["gate"].uuid
    env.engine.approve(gate, approved=False)
    assert env.wait(uuid) == "succeeded"
    record = env.store.get_run(gate)
    assert (record.status, record.reason) == (Status.SKIPPED, "Invalidated")


def test_a_custom_event_emitted_to_the_dag_starts_the_op_awaiting_it(env: Env) -> None:
    flag = env.tmp / "stop-waiting"
    waiting = job("deploy", [PY, "-c", "pass"], extra="events: [{ref: dag, kinds: [project_custom_event]}]\n")
    uuid = env.run(dag(job("serve", wait_flag(flag)), waiting))
    env.recorder.wait_for(lambda evs: any(e.kind == "run_status_running" for e in evs if e.name == "serve"))
    assert env.store.get_run(env.ops(uuid)["deploy"].uuid).status == Status.CREATED
    (seq,) = env.engine.emit("project_custom_event", {"name": "ship-it"})
    deploy = env.ops(uuid)["deploy"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == deploy and e.kind == "run_status_succeeded" for e in evs))
    flag.touch()
    assert env.wait(uuid) == "succeeded"
    (event,) = [e for e in env.store.events(run_uuid=uuid) if e.kind == "project_custom_event"]
    assert (event.seq, event.payload) == (seq, {"name": "ship-it"})


def test_a_retried_dag_waits_for_a_custom_event_emitted_after_its_new_attempt_began(env: Env) -> None:
    flag, marker = env.tmp / "go", env.tmp / "failed-once"
    gate = f'while [ ! -e "{flag}" ]; do sleep 0.05; done; [ -e "{marker}" ] || {{ touch "{marker}"; exit 1; }}'
    text = dag(
        job("prepare", [PY, "-c", "pass"]),
        job("deploy", [PY, "-c", "pass"], extra="events: [{ref: dag, kinds: [project_custom_event]}]\n"),
        job("evaluate", ["sh", "-c", gate], extra="dependencies: [deploy]\n"),
        extra="termination: {maxRetries: 1}\n",
    )
    uuid = env.run(text)
    env.engine.emit("project_custom_event", {"name": "first"})
    env.recorder.wait_for(lambda evs: any(e.kind == "run_status_running" for e in evs if e.name == "evaluate"))
    env.engine.emit("project_custom_event", {"name": "while the first attempt ran"})
    flag.touch()  # evaluate fails: the DAG runs again
    env.recorder.wait_for(lambda evs: any(e.run_uuid == uuid and e.kind == "run_status_retrying" for e in evs))

    def second(name: str) -> str | None:
        run = env.ops(uuid).get(name)
        return run.uuid if run is not None and run.dag_attempt == 2 else None

    env.recorder.wait_for(
        lambda evs: any(e.run_uuid == second("prepare") and e.kind == "run_status_succeeded" for e in evs)
    )
    # The new attempt's ops were all decided in its first pass, before prepare could run: deploy waits.
    assert env.ops(uuid)["deploy"].status == Status.CREATED, describe(env.store, uuid)
    (seq,) = env.engine.emit("project_custom_event", {"name": "second"})
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    deploy = env.ops(uuid)["deploy"]
    assert deploy.dag_attempt == 2
    assert env.seq(deploy.uuid, "run_status_running") > seq


def test_check_names_where_connection_events_come_from() -> None:
    text = dag(
        job("a", [PY, "-c", "pass"]),
        job("b", ["true"], extra="events: [{ref: ops.a, kinds: [connection_git_commit]}]\n"),
    )
    messages = [str(e) for e in check([text]).unsupported]
    assert any("it comes from a connection: write `ref: connections.<name>`" in m for m in messages)


def test_a_single_run_awaiting_approval_starts_once_approved(env: Env) -> None:
    command = json.dumps([PY, "-c", "pass"])
    text = f"kind: component\nname: gated\nisApproved: false\nrun: {{kind: job, container: {{command: {command}}}}}\n"
    uuid = env.run(text)
    assert env.store.get_run(uuid).status == Status.CREATED
    env.engine.approve(uuid)
    assert env.wait(uuid) == "succeeded"


def test_an_executor_that_cannot_read_the_ops_events_files_refuses_the_pipeline() -> None:
    from support.schedkit import build

    from polynb.scheduler.executor_checks import check_submission

    class Elsewhere:  # runs ops where their events files are not readable, and brings no events back
        name = "remote"

    text = dag(job("train", ["true"]), consumer("evaluate", "run_new_artifacts", {"ckpt": "artifacts.latest"}))
    with pytest.raises(RuntimeError, match=r"evaluate: run_new_artifacts of ops\.train"):
        check_submission(Elsewhere(), build(text))  # type: ignore[arg-type]
    statuses_only = dag(
        job("a", ["true"]), job("b", ["true"], extra="events: [{ref: ops.a, kinds: [run_status_running]}]\n")
    )
    check_submission(Elsewhere(), build(statuses_only))  # type: ignore[arg-type]


def test_events_of_ops_and_approvals_survive_an_engine_restart_once_each(env: Env) -> None:
    """An engine released mid-run (``shutdown(stop_running=False)``); meanwhile the op logs more and a
    terminal approves the gated op through the store; the next engine records each line once and starts it."""
    from polynb.executors.local.executor import LocalExecutor
    from polynb.scheduler import remote_events
    from polynb.scheduler.engine import Engine

    flag = env.tmp / "finish"
    code = "\n".join(
        [
            "import os, time",
            "tracking.log_artifact('a.ckpt')",
            f"while not os.path.exists({str(flag)!r}): time.sleep(0.02)",
            "tracking.log_artifact('b.ckpt')",
            "tracking.alert('info', 'done')",
        ]
    )
    gate = job("gate", [PY, "-c", "pass"], extra="isApproved: false\ndependencies: [evaluate]\n")
    uuid = env.run(
        dag(job("train", tracked(code)), consumer("evaluate", "run_new_artifacts", {"c": "artifacts.latest"}), gate)
    )
    ops = env.ops(uuid)
    env.recorder.wait_for(
        lambda evs: any(e.run_uuid == ops["evaluate"].uuid and e.kind == "run_status_succeeded" for e in evs)
    )
    env.engine.shutdown(stop_running=False)
    flag.touch()
    remote_events.approve(env.store, env.store.get_run(ops["gate"].uuid), actor="bob")
    engine = Engine(store=env.store, executors={"local": LocalExecutor(base_dir=env.tmp)})
    engine.start()
    try:
        assert engine.wait(uuid, timeout=60) == "succeeded"
    finally:
        engine.shutdown(stop_running=True)
    kinds = env.kinds(ops["train"].uuid)
    assert kinds.count("run_new_artifacts") == 2 and kinds.count("alert_info") == 1
    assert env.store.get_run(ops["gate"].uuid).status == Status.SUCCEEDED
