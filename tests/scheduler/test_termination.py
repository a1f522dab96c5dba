"""Timeouts, retries, stop, concurrency, services and the DAG status (DESIGN §3)."""

from __future__ import annotations

from support.execkit import wait_until
from support.schedkit import PY, Env, dag, describe, job, wait_flag

from polynb.lifecycle import Status
from polynb.scheduler.engine import EngineEvent


def test_timeout_stops_the_op_and_fails_it_with_reason_timeout(env: Env) -> None:
    uuid = env.run(dag(job("slow", wait_flag(env.tmp / "never"), extra="termination: {timeout: 1}\n")))
    assert env.wait(uuid) == "failed"
    op = env.ops(uuid)["slow"]
    assert op.status == Status.FAILED
    assert op.reason == "Timeout"
    kinds = env.kinds(op.uuid)
    assert kinds.index("run_status_stopping") < kinds.index("run_status_failed")


def test_retries_resubmit_until_success(env: Env) -> None:
    counter = env.tmp / "count"
    # Fails on the first attempt, succeeds on the second.
    script = f'echo x >> "{counter}"; [ "$(wc -l < "{counter}")" -ge 2 ]'
    uuid = env.run(dag(job("flaky", ["sh", "-c", script], extra="termination: {maxRetries: 3}\n")))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    op = env.ops(uuid)["flaky"]
    assert op.attempt == 2
    assert env.kinds(op.uuid).count("run_status_retrying") == 1


def test_stop_an_op_goes_through_stopping_to_stopped(env: Env) -> None:
    uuid = env.run(
        dag(job("long", wait_flag(env.tmp / "never")), job("next", ["true"], extra="dependencies: [long]\n"))
    )
    long_uuid = env.ops(uuid)["long"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == long_uuid and e.kind == "run_status_running" for e in evs))
    env.engine.stop(long_uuid)
    assert env.wait(uuid) == "stopped"
    ops = env.ops(uuid)
    assert ops["long"].status == Status.STOPPED
    kinds = env.kinds(long_uuid)
    assert kinds.index("run_status_stopping") < kinds.index("run_status_stopped")
    assert ops["next"].status == Status.UPSTREAM_FAILED


def test_stop_a_dag_stops_running_ops_and_marks_pending_ops_stopped(env: Env) -> None:
    uuid = env.run(
        dag(
            job("long", wait_flag(env.tmp / "never")),
            job("later", ["true"], extra="dependencies: [long]\n"),
            job("last", ["true"], extra="dependencies: [later]\ntrigger: all_done\n"),
        )
    )
    long_uuid = env.ops(uuid)["long"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == long_uuid and e.kind == "run_status_running" for e in evs))
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    ops = env.ops(uuid)
    assert {r.status for r in ops.values()} == {Status.STOPPED}
    assert "run_status_running" not in env.kinds(ops["later"].uuid)
    assert "run_status_stopping" in env.kinds(uuid)


def test_concurrency_never_runs_more_than_n_ops_at_once(env: Env) -> None:
    ops = [job(f"op{i}", ["sh", "-c", "sleep 0.2"]) for i in range(6)]
    uuid = env.run(dag(*ops, extra="").replace("  kind: dag\n", "  kind: dag\n  concurrency: 2\n"))
    assert env.wait(uuid) == "succeeded"
    running = 0
    peak = 0
    children = {r.uuid for r in env.store.children(uuid)}
    for event in env.log(uuid):
        if event.run_uuid not in children:
            continue
        if event.kind == "run_status_queued":
            running += 1
        elif event.kind == "run_status_done":
            running -= 1
        peak = max(peak, running)
    assert peak == 2


def test_service_keeps_running_until_stopped_without_blocking_the_dag(env: Env) -> None:
    service = f"""name: board
component:
  name: board
  run:
    kind: service
    ports: [8000]
    container: {{command: ["{PY}", "-m", "http.server", "{{{{ globals.ports[0] }}}}", "--bind", "127.0.0.1"]}}"""
    uuid = env.run(dag(service, job("work", ["sh", "-c", "sleep 0.2"])))
    assert env.wait(uuid) == "succeeded"
    board = env.ops(uuid)["board"]
    assert not board.is_final
    env.engine.stop(board.uuid)
    assert env.wait(uuid, include_services=True) == "succeeded"
    assert env.store.get_run(board.uuid).status == Status.STOPPED


def test_service_timeout_fails_it(env: Env) -> None:
    service = f"""name: board
termination: {{timeout: 1}}
component:
  name: board
  run:
    kind: service
    ports: [8000]
    container: {{command: ["{PY}", "-m", "http.server", "{{{{ globals.ports[0] }}}}", "--bind", "127.0.0.1"]}}"""
    uuid = env.run(dag(service))
    assert env.wait(uuid, include_services=True) == "failed"
    assert env.ops(uuid)["board"].reason == "Timeout"


def test_dag_status_is_failed_over_stopped_over_succeeded(env: Env) -> None:
    uuid = env.run(dag(job("bad", ["false"]), job("fine", ["true"])))
    assert env.wait(uuid) == "failed"
    assert env.store.get_run(uuid).status == Status.FAILED


def test_single_op_pipeline_is_its_own_top_level_run(env: Env) -> None:
    uuid = env.run(
        """version: 1.1
kind: component
name: solo
run: {kind: job, container: {command: ["true"]}}
"""
    )
    assert env.wait(uuid) == "succeeded"
    record = env.store.get_run(uuid)
    assert record.dag_uuid is None
    assert record.kind == "job"


def test_a_failing_listener_never_kills_the_engine(env: Env) -> None:
    def broken(event: EngineEvent) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = env.engine.subscribe(broken)
    uuid = env.run(dag(job("a", ["true"]), job("b", ["true"], extra="dependencies: [a]\n")))
    assert env.wait(uuid) == "succeeded"
    unsubscribe()


def test_listeners_see_every_event_in_seq_order(env: Env) -> None:
    uuid = env.run(dag(job("a", ["true"]), job("b", ["true"], extra="dependencies: [a]\n")))
    env.wait(uuid)
    stored = [e.seq for e in env.log(uuid)]
    seen = [e.seq for e in env.recorder.events if e.run_uuid == uuid or e.dag_uuid == uuid]
    assert seen == stored


def test_dag_timeout_stops_every_op_and_fails_the_dag_with_reason_timeout(env: Env) -> None:
    """Issue 11 item 4: a DAG's own ``termination.timeout`` was ignored (the DAG ran on and succeeded)."""
    text = dag(
        job("long", wait_flag(env.tmp / "never")),
        job("later", ["true"], extra="dependencies: [long]\n"),
        extra="termination: {timeout: 1}\n",
    )
    uuid = env.run(text)
    assert env.wait(uuid) == "failed", describe(env.store, uuid)
    record = env.store.get_run(uuid)
    assert (record.status, record.reason) == (Status.FAILED, "Timeout")
    assert record.message is not None
    assert "termination.timeout of 1 s" in record.message
    kinds = env.kinds(uuid)
    assert kinds.index("run_status_stopping") < kinds.index("run_status_failed")
    ops = env.ops(uuid)
    assert {name: op.status for name, op in ops.items()} == {"long": Status.STOPPED, "later": Status.STOPPED}
    assert "run_status_running" not in env.kinds(ops["later"].uuid)


def test_dag_timeout_of_a_top_level_operation_wins_over_its_component(env: Env) -> None:
    component = dag(job("long", wait_flag(env.tmp / "never")), extra="termination: {timeout: 3600}\n")
    body = "\n".join("  " + line for line in component.splitlines()[1:])  # the DAG component, inline
    text = f"version: 1.1\nkind: operation\nname: op\ntermination: {{timeout: 1}}\ncomponent:\n{body}\n"
    uuid = env.run(text)
    assert env.wait(uuid) == "failed", describe(env.store, uuid)
    assert env.store.get_run(uuid).reason == "Timeout"


def test_a_dag_done_within_its_timeout_succeeds(env: Env) -> None:
    uuid = env.run(dag(job("quick", ["true"]), extra="termination: {timeout: 3600}\n"))
    assert env.wait(uuid) == "succeeded"
    assert env.store.get_run(uuid).reason == "OpsDone"


def templated_op(name: str, argv: list[str], *, termination: str, params: str, component_termination: str = "") -> str:
    """An op of a DAG whose ``termination`` fields are templates of its params (Polyaxon renders them when the
    op compiles); ``component_termination`` is its component's, which the op's fields override."""
    inputs = ", ".join(f"{{name: {key.split(':')[0].strip()}, type: any}}" for key in params.split(",") if key)
    extra = f"params: {{{params}}}\ntermination: {{{termination}}}\n"
    op = job(name, argv, extra=extra)
    component = f"  inputs: [{inputs}]\n"
    if component_termination:
        component += f"  termination: {{{component_termination}}}\n"
    return op.replace(f"component:\n  name: {name}\n", f"component:\n  name: {name}\n{component}")


def test_termination_written_as_templates_is_rendered_with_the_ops_params(env: Env) -> None:
    counter = env.tmp / "count"
    uuid = env.run(
        dag(
            # Always fails: `maxRetries: "{{ retries }}"` with retries 2 gives it 3 attempts.
            templated_op("flaky", ["sh", "-c", f'echo x >> "{counter}"; exit 1'],
                         termination='maxRetries: "{{ retries }}"', params="retries: {value: 2}"),
            # The op's `timeout` (the template of `limit`) wins over its component's (60 s).
            templated_op("slow", wait_flag(env.tmp / "never"), termination='timeout: "{{ limit }}"',
                         params="limit: {value: 1}", component_termination='timeout: "{{ limit * 60 }}"'),
        )
    )  # fmt: skip
    assert env.wait(uuid) == "failed", describe(env.store, uuid)
    ops = env.ops(uuid)
    assert ops["flaky"].attempt == 3, describe(env.store, uuid)
    assert counter.read_text().count("x") == 3
    assert env.kinds(ops["flaky"].uuid).count("run_status_retrying") == 2
    assert ops["slow"].reason == "Timeout", describe(env.store, uuid)
    assert ops["slow"].message == "stopped after termination.timeout of 1 s"


def test_a_termination_template_that_gives_no_number_fails_the_op_unrun(env: Env) -> None:
    ran = env.tmp / "ran"
    uuid = env.run(
        dag(
            templated_op("word", ["touch", str(ran)], termination='maxRetries: "{{ retries }}"',
                         params="retries: {value: abc}"),
            templated_op("negative", ["touch", str(ran)], termination='timeout: "{{ limit - 10 }}"',
                         params="limit: {value: 5}"),
        )
    )  # fmt: skip
    assert env.wait(uuid) == "failed"
    ops = env.ops(uuid)
    assert ops["word"].status == ops["negative"].status == Status.FAILED
    assert ops["word"].reason == ops["negative"].reason == "CompilationFailed"
    assert ops["word"].message == (
        "termination.maxRetries: expected a whole number, 0 or more; the template `{{ retries }}` gave 'abc'"
    )
    assert ops["negative"].message == (
        "termination.timeout: expected a whole number, 0 or more; the template `{{ limit - 10 }}` gave -5"
    )
    assert "run_status_queued" not in env.kinds(ops["word"].uuid)
    assert not ran.exists()


def test_a_ttl_written_as_a_template_cleans_up_the_run_once_it_ends(env: Env) -> None:
    uuid = env.run(
        dag(
            templated_op("kept-briefly", ["true"], termination='ttl: "{{ keep }}"', params="keep: {value: 0}"),
            job("kept", ["true"]),
        )
    )
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    ops = env.ops(uuid)
    briefly, kept = (env.executor.run_dir(ops[name].uuid) / ".executor" for name in ("kept-briefly", "kept"))
    wait_until(lambda: not briefly.exists(), f"the clean-up of {briefly}")
    assert kept.is_dir()
