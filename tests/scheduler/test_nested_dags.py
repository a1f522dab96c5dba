"""Nested DAGs with the real local executor and SQLite store: an op whose component is a DAG runs as a DAG
run under the outer one (its ops' pipeline), takes the op's params as its inputs, gives its declared outputs
to the outer DAG, fails/stops like any op, and survives an engine restart without running anything twice."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.recorder import Recorder
from support.schedkit import DEADLOCK_GUARD, PY, Env, build, component, wait_flag, yaml_list

from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.scheduler.executor_checks import op_event_waits
from polynb.spec.load import load_text
from polynb.spec.models import Component
from polynb.store import RunRecord, Store

WRITE_Y = (
    "import json, os, sys; json.dump({'y': int(sys.argv[1]) * 2}, "
    "open(os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'), 'w'))"
)


def job(argv: list[str], inputs: str = "[]") -> str:
    return f"{{inputs: {inputs}, run: {{kind: job, container: {{command: {yaml_list(argv)}}}}}}}"


def appending(name: str, log: Path, then: str = "true") -> list[str]:
    return ["sh", "-c", f'echo {name} >> "{log}"; {then}']


def nested(inner_ops: str, *, after: str = "", outputs: str = "[{name: y, type: int, isOptional: true}]") -> str:
    """An outer DAG: op ``inner`` runs a DAG (input ``x`` = 4, outputs ``outputs``) made of ``inner_ops``."""
    return f"""
version: 1.1
kind: component
name: outer
run:
  kind: dag
  operations:
    - name: inner
      params: {{x: {{value: 4}}}}
      component:
        name: inner
        inputs: [{{name: x, type: int}}]
        outputs: {outputs}
        run:
          kind: dag
          operations:
{inner_ops}
{after}
"""


def children(store: Store, uuid: str) -> dict[str, RunRecord]:
    return {r.name: r for r in store.children(uuid)}


def describe(store: Store, uuid: str, depth: int = 0) -> str:
    """Every run under ``uuid``, nested DAGs' ops indented: the message of a failing assertion."""
    lines = []
    for r in store.children(uuid, include_hooks=True):
        lines.append(f"{'  ' * depth}{r.name}: {r.status} {r.reason}: {r.message}")
        if r.kind == "dag":
            lines.append(describe(store, r.uuid, depth + 1))
    return "\n".join(lines)


def wait_until(predicate: object) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "deadlock guard"
        time.sleep(0.05)


def test_params_flow_in_and_outputs_flow_out_to_a_downstream_op(env: Env) -> None:
    seen = env.tmp / "seen.json"
    inner_ops = f"""            - name: double
              params: {{x: {{ref: dag, value: inputs.x}}}}
              component: {job([PY, "-c", WRITE_Y, "{{ x }}"], "[{name: x, type: int}]")}"""
    keep = f"import json, sys; json.dump(int(sys.argv[1]), open({str(seen)!r}, 'w'))"
    after = f"""    - name: after
      params: {{y: {{ref: ops.inner, value: outputs.y}}}}
      component: {job([PY, "-c", keep, "{{ y }}"], "[{name: y, type: int}]")}
    - name: watch
      events: [{{ref: ops.inner, kinds: [run_status_running]}}]
      component: {job(["true"])}"""
    uuid = env.run(nested(inner_ops, after=after))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    ops = children(env.store, uuid)
    inner = ops["inner"]
    assert (inner.kind, inner.status, inner.inputs, inner.outputs) == ("dag", Status.SUCCEEDED, {"x": 4}, {"y": 8})
    (double,) = env.store.children(inner.uuid)
    assert (double.name, double.dag_uuid, double.inputs) == ("double", inner.uuid, {"x": 4})
    assert json.loads(seen.read_text()) == 8
    assert ops["watch"].status == Status.SUCCEEDED  # an event of the nested DAG's run triggers like any op's


def test_an_inner_failure_fails_the_op_and_its_downstream_is_upstream_failed(env: Env) -> None:
    inner_ops = f"""            - {{name: bad, component: {job(["false"])}}}
            - {{name: later, dependencies: [bad], component: {job(["true"])}}}"""
    after = f"    - {{name: after, dependencies: [inner], component: {job(['true'])}}}"
    uuid = env.run(nested(inner_ops, after=after))
    assert env.wait(uuid) == "failed"
    ops = children(env.store, uuid)
    assert ops["inner"].status == Status.FAILED
    assert ops["after"].status == Status.UPSTREAM_FAILED
    inner_runs = children(env.store, ops["inner"].uuid)
    assert {n: r.status for n, r in inner_runs.items()} == {"bad": Status.FAILED, "later": Status.UPSTREAM_FAILED}


def test_stopping_the_outer_dag_stops_the_inner_runs(env: Env) -> None:
    inner_ops = f"            - {{name: forever, component: {job(wait_flag(env.tmp / 'never'))}}}"
    uuid = env.run(nested(inner_ops))
    wait_until(lambda: any(r.status == Status.RUNNING for r in env.store.list_runs() if r.name == "forever"))
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    inner = children(env.store, uuid)["inner"]
    assert inner.status == Status.STOPPED
    assert children(env.store, inner.uuid)["forever"].status == Status.STOPPED


def test_depth_two_and_a_hub_ref_to_a_registered_dag(env: Env) -> None:
    leaf_dag = load_text(f"""
kind: component
name: leaf-dag
inputs: [{{name: x, type: int}}]
outputs: [{{name: y, type: int}}]
run:
  kind: dag
  operations:
    - name: leaf
      params: {{x: {{ref: dag, value: inputs.x}}}}
      component: {job([PY, "-c", WRITE_Y, "{{ x }}"], "[{name: x, type: int}]")}
""")
    assert isinstance(leaf_dag, Component)
    env.registry.register("leaf-dag", leaf_dag)
    inner_ops = "            - {name: middle, hubRef: leaf-dag, params: {x: {ref: dag, value: inputs.x}}}"
    uuid = env.run(nested(inner_ops))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    inner = children(env.store, uuid)["inner"]
    middle = children(env.store, inner.uuid)["middle"]
    leaf = children(env.store, middle.uuid)["leaf"]
    assert (middle.kind, middle.outputs, leaf.inputs) == ("dag", {"y": 8}, {"x": 4})
    assert inner.outputs == {"y": 8}  # the last op giving `y`, one level up again


def test_engine_restart_mid_inner_dag_finishes_without_double_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log, release = tmp_path / "submissions.txt", tmp_path / "release"
    held = appending("a", log, f'while [ ! -e "{release}" ]; do sleep 0.05; done')
    inner_ops = f"""            - {{name: a, component: {job(held)}}}
            - {{name: b, dependencies: [a], component: {job(appending("b", log))}}}"""
    after = f"    - {{name: after, dependencies: [inner], component: {job(appending('after', log))}}}"
    store = Store(tmp_path / "home" / "polynb.db")
    try:
        first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        recorder = Recorder[EngineEvent]()
        first.subscribe(recorder)
        first.start()
        uuid = first.submit(build(nested(inner_ops, after=after)))
        wait_until(lambda: log.exists() and "a" in log.read_text().split())
        first.shutdown(stop_running=False)
        inner = children(store, uuid)["inner"]
        assert inner.status == Status.RUNNING

        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        second.start()
        try:
            release.touch()
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        finally:
            second.shutdown()
        assert sorted(log.read_text().split()) == ["a", "after", "b"]  # each op ran once
        inner_runs = children(store, inner.uuid)
        assert {n: (r.status, r.attempt) for n, r in inner_runs.items()} == {
            "a": (Status.SUCCEEDED, 1),
            "b": (Status.SUCCEEDED, 1),
        }
        assert store.get_run(inner.uuid).status == Status.SUCCEEDED
    finally:
        store.close()


def test_hooks_of_the_op_and_of_an_inner_op_run(env: Env) -> None:
    marks = env.tmp / "hooks.txt"
    env.registry.register("mark", component("mark", ["sh", "-c", f'echo "$0" >> "{marks}"', "{{ name }}"]))
    inner_ops = f"""            - name: leaf
              hooks: [{{hubRef: mark, trigger: succeeded}}]
              component: {job(["true"])}"""
    text = nested(inner_ops).replace(
        "    - name: inner\n", "    - name: inner\n      hooks: [{hubRef: mark, trigger: succeeded}]\n", 1
    )
    uuid = env.run(text)
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    assert sorted(marks.read_text().split()) == ["inner", "leaf"]  # each hook once, with its main run's name


def test_an_engine_restart_while_the_op_waits_for_a_slot_starts_its_dag_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log, release = tmp_path / "submissions.txt", tmp_path / "release"
    held = appending("blocker", log, f'while [ ! -e "{release}" ]; do sleep 0.05; done')
    text = nested(f"            - {{name: a, component: {job(appending('a', log))}}}").replace(
        "  operations:\n    - name: inner\n",
        f"  concurrency: 1\n  operations:\n    - {{name: blocker, component: {job(held)}}}\n    - name: inner\n",
        1,
    )
    store = Store(tmp_path / "home" / "polynb.db")
    try:
        first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        first.start()
        uuid = first.submit(build(text))
        wait_until(lambda: log.exists() and "blocker" in log.read_text().split())
        first.shutdown(stop_running=False)
        assert children(store, uuid)["inner"].status == Status.COMPILED  # waiting for the DAG's only slot

        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        second.start()
        try:
            release.touch()
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        finally:
            second.shutdown()
        assert sorted(log.read_text().split()) == ["a", "blocker"]
        inner = children(store, uuid)["inner"]
        assert (inner.status, inner.inputs) == (Status.SUCCEEDED, {"x": 4})
        assert [r.name for r in store.children(inner.uuid)] == ["a"]  # its ops were created once
    finally:
        store.close()


def test_events_awaited_inside_a_nested_dag_are_seen_before_submission() -> None:
    inner_ops = f"""            - {{name: a, component: {job(["true"])}}}
            - name: b
              events: [{{ref: ops.a, kinds: [run_new_artifacts]}}]
              component: {job(["true"])}"""
    assert op_event_waits(build(nested(inner_ops))) == ["inner/b: run_new_artifacts of ops.a"]


def test_the_ops_timeout_stops_its_nested_dag_which_fails(env: Env) -> None:
    inner_ops = f"            - {{name: forever, component: {job(wait_flag(env.tmp / 'never'))}}}"
    text = nested(inner_ops).replace("    - name: inner\n", "    - name: inner\n      termination: {timeout: 1}\n", 1)
    uuid = env.run(text)
    assert env.wait(uuid) == "failed"
    inner = children(env.store, uuid)["inner"]
    assert (inner.status, inner.reason) == (Status.FAILED, "Timeout")
    assert children(env.store, inner.uuid)["forever"].status == Status.STOPPED


def retried(text: str, max_retries: int) -> str:
    """``text`` with ``termination: {maxRetries: N}`` on its op ``inner``."""
    return text.replace(
        "    - name: inner\n", f"    - name: inner\n      termination: {{maxRetries: {max_retries}}}\n", 1
    )


def failing_first(counter: Path, log: Path) -> list[str]:
    """Fails on its first run, succeeds on the next: a count kept in ``counter``."""
    script = f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"; echo flaky >> "{log}"'
    return ["sh", "-c", f'{script}; [ "$n" -ge 2 ]']


def test_max_retries_on_the_op_runs_a_failed_inner_dag_again_as_a_whole(env: Env) -> None:
    log = env.tmp / "runs.txt"
    inner_ops = f"""            - {{name: first, component: {job(appending("first", log))}}}
            - {{name: flaky, dependencies: [first], component: {job(failing_first(env.tmp / "n", log))}}}"""
    after = f"    - {{name: after, dependencies: [inner], component: {job(appending('after', log))}}}"
    uuid = env.run(retried(nested(inner_ops, after=after), 2))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    inner = children(env.store, uuid)["inner"]
    assert (inner.status, inner.attempt) == (Status.SUCCEEDED, 2)  # a new attempt of the op
    history = [(c.status, c.reason) for c in env.store.status_history(inner.uuid)]
    assert (Status.RETRYING, "AttemptFailed") in history
    # All its ops ran anew (new runs, same names); the failed attempt's runs stay in the store.
    everything = env.store.children(inner.uuid, all_attempts=True)
    assert [(r.name, r.status, r.dag_attempt) for r in everything] == [
        ("first", Status.SUCCEEDED, 1),
        ("flaky", Status.FAILED, 1),
        ("first", Status.SUCCEEDED, 2),
        ("flaky", Status.SUCCEEDED, 2),
    ]
    assert log.read_text().split() == ["first", "flaky", "first", "flaky", "after"]  # after waited for the retry


def test_an_inner_dag_failing_every_attempt_fails_the_op_after_its_last_try(env: Env) -> None:
    inner_ops = f"            - {{name: bad, component: {job(['false'])}}}"
    after = f"    - {{name: after, dependencies: [inner], component: {job(['true'])}}}"
    uuid = env.run(retried(nested(inner_ops, after=after), 1))
    assert env.wait(uuid) == "failed"
    ops = children(env.store, uuid)
    assert (ops["inner"].status, ops["inner"].attempt) == (Status.FAILED, 2)
    assert ops["after"].status == Status.UPSTREAM_FAILED
    assert [r.status for r in env.store.children(ops["inner"].uuid, all_attempts=True)] == [Status.FAILED] * 2


def test_stopping_the_outer_dag_while_the_inner_one_is_retrying_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    # A retry delay no test waits for: the inner DAG stays `retrying` until the stop.
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, retry_delay=3600)
    engine.start()
    try:
        uuid = engine.submit(build(retried(nested(f"            - {{name: bad, component: {job(['false'])}}}"), 3)))
        wait_until(lambda: children(store, uuid)["inner"].status == Status.RETRYING)
        engine.stop(uuid)
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "stopped"
        inner = children(store, uuid)["inner"]
        assert (inner.status, inner.attempt) == (Status.STOPPED, 1)  # no next attempt
    finally:
        engine.shutdown()
        store.close()


def test_a_restarted_engine_starts_the_next_attempt_of_a_retrying_inner_dag_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log = tmp_path / "runs.txt"
    text = retried(nested(f"            - {{name: flaky, component: {job(failing_first(tmp_path / 'n', log))}}}"), 2)
    store = Store(tmp_path / "home" / "polynb.db")
    try:
        first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, retry_delay=3600)
        first.start()
        uuid = first.submit(build(text))
        wait_until(lambda: children(store, uuid)["inner"].status == Status.RETRYING)
        first.shutdown(stop_running=False)

        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, retry_delay=0.05)
        second.start()
        try:
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        finally:
            second.shutdown()
        inner = children(store, uuid)["inner"]
        assert (inner.status, inner.attempt) == (Status.SUCCEEDED, 2)
        assert log.read_text().split() == ["flaky", "flaky"]  # the second attempt ran once
    finally:
        store.close()


def test_a_restart_during_a_later_attempt_of_an_inner_dag_re_attaches_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log, release, counter = tmp_path / "runs.txt", tmp_path / "release", tmp_path / "n"
    # Fails on its first run; its second run waits for the test's flag (an engine restart falls in between).
    script = f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"; echo flaky >> "{log}"'
    held = ["sh", "-c", f'{script}; [ "$n" -ge 2 ] || exit 1; while [ ! -e "{release}" ]; do sleep 0.05; done']
    after = f"    - {{name: after, dependencies: [inner], component: {job(appending('after', log))}}}"
    text = retried(nested(f"            - {{name: flaky, component: {job(held)}}}", after=after), 2)
    store = Store(tmp_path / "home" / "polynb.db")
    try:
        first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, retry_delay=0.05)
        first.start()
        uuid = first.submit(build(text))
        wait_until(lambda: log.exists() and log.read_text().split() == ["flaky", "flaky"])
        first.shutdown(stop_running=False)
        inner = children(store, uuid)["inner"]
        assert (inner.status, inner.attempt) == (Status.RUNNING, 2)
        assert [r.name for r in children(store, uuid).values()] == ["inner", "after"]  # the op is its DAG's

        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        second.start()
        try:
            release.touch()
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        finally:
            second.shutdown()
        assert log.read_text().split() == ["flaky", "flaky", "after"]  # the second attempt ran once
        assert children(store, uuid)["inner"].attempt == 2
    finally:
        store.close()


def test_a_retried_inner_dags_op_awaiting_a_custom_event_waits_for_one_after_the_new_attempt_began(env: Env) -> None:
    # The op's maxRetries runs the inner DAG anew: its `ref: dag` wait reads the events of the new attempt only.
    flaky = job(failing_first(env.tmp / "n", env.tmp / "log"))
    inner_ops = f"""            - {{name: prep, component: {job(["true"])}}}
            - {{name: deploy, events: [{{ref: dag, kinds: [project_custom_event]}}], component: {job(["true"])}}}
            - {{name: flaky, dependencies: [deploy], component: {flaky}}}"""
    uuid = env.run(retried(nested(inner_ops), 1))
    wait_until(lambda: "inner" in children(env.store, uuid))
    inner = children(env.store, uuid)["inner"].uuid
    wait_until(lambda: children(env.store, inner).get("deploy") is not None)
    env.engine.emit("project_custom_event", {"name": "first"})
    wait_until(lambda: env.store.get_run(inner).attempt == 2)

    def second(name: str) -> RunRecord | None:
        run = children(env.store, inner).get(name)
        return run if run is not None and run.dag_attempt == 2 else None

    # The new attempt's ops were all decided in its first pass, before its prep could end: deploy waits.
    wait_until(lambda: (prep := second("prep")) is not None and prep.status == Status.SUCCEEDED)
    deploy = second("deploy")
    assert deploy is not None and deploy.status == Status.CREATED, describe(env.store, uuid)
    (seq, *_) = env.engine.emit("project_custom_event", {"name": "second"})
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    assert env.seq(deploy.uuid, "run_status_running") > seq
