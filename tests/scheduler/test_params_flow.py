"""Params flow from upstream runs, from ``ref: dag`` and from earlier runs (``runs.UUID``)."""

from __future__ import annotations

import json

from support.schedkit import Env, dag, describe, write_outputs

from polynb.lifecycle import Status


def test_outputs_flow_downstream_including_falsy_values(env: Env) -> None:
    consumer = """name: consumer
params:
  zero: {ref: ops.producer, value: outputs.zero}
  flag: {ref: ops.producer, value: outputs.flag}
  empty: {ref: ops.producer, value: outputs.empty}
  loss: {ref: ops.producer, value: outputs.loss}
component:
  name: consumer
  inputs:
  - {name: zero, type: int}
  - {name: flag, type: bool}
  - {name: empty, type: str}
  - {name: loss, type: float}
  run:
    kind: job
    container:
      command: ["sh", "-c", "echo \\"$0 $1 $2 $3\\" > \\"$POLYAXON_RUN_OUTPUTS_PATH/seen.txt\\""]
      args: ["{{ zero }}", "{{ flag }}", "x{{ empty }}x", "{{ loss }}"]"""
    producer = f"""name: producer
component:
  name: producer
  outputs:
  - {{name: zero, type: int}}
  - {{name: flag, type: bool}}
  - {{name: empty, type: str}}
  - {{name: loss, type: float}}
  run: {{kind: job, container: {{command: {json.dumps(write_outputs(zero=0, flag=False, empty="", loss=0.25))}}}}}"""
    uuid = env.run(dag(producer, consumer))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    record = env.ops(uuid)["consumer"]
    # Polyaxon leaves falsy outputs unsubstituted; we pass them on.
    assert record.inputs == {"zero": 0, "flag": False, "empty": "", "loss": 0.25}
    seen = (env.tmp / "home" / "artifacts" / record.uuid / "outputs" / "seen.txt").read_text().split()
    assert seen[0] == "0"
    assert seen[2] == "xx"
    assert seen[3] == "0.25"


def test_missing_upstream_output_fails_the_op_with_a_clear_message(env: Env) -> None:
    consumer = """name: consumer
params: {loss: {ref: ops.producer, value: outputs.loss}}
component:
  name: consumer
  inputs: [{name: loss, type: float}]
  run: {kind: job, container: {command: ["true"]}}"""
    producer = """name: producer
component:
  name: producer
  outputs: [{name: loss, type: float, isOptional: true}]
  run: {kind: job, container: {command: ["true"]}}"""
    uuid = env.run(dag(producer, consumer))
    assert env.wait(uuid) == "failed"
    record = env.ops(uuid)["consumer"]
    assert record.status == Status.FAILED
    assert record.message is not None
    assert "loss" in record.message


def test_dag_inputs_reach_ops_through_ref_dag(env: Env) -> None:
    op = """name: op
params: {lr: {ref: dag, value: inputs.lr}}
component:
  name: op
  inputs: [{name: lr, type: float}]
  run: {kind: job, container: {command: ["true"]}}"""
    text = dag(op, extra="inputs: [{name: lr, type: float, value: 0.5, isOptional: true}]\n")
    uuid = env.run(text, params={"lr": 0.01})
    env.wait(uuid)
    assert env.ops(uuid)["op"].inputs == {"lr": 0.01}


def test_globals_uuid_of_an_upstream_is_available_before_it_finishes(env: Env) -> None:
    flag = env.tmp / "release"
    watcher = f"""name: watcher
events: [{{ref: ops.main, kinds: [run_status_running]}}]
params: {{target: {{ref: ops.main, value: globals.uuid, contextOnly: true}}}}
component:
  name: watcher
  run: {{kind: job, container: {{command: ["sh", "-c", "echo $0 > {env.tmp}/target.txt", "{{{{ target }}}}"]}}}}"""
    main = f"""name: main
component:
  name: main
  run: {{kind: job, container: {{command: ["sh", "-c", "while [ ! -e {flag} ]; do sleep 0.05; done"]}}}}"""
    uuid = env.run(dag(main, watcher))
    ops = env.ops(uuid)
    env.recorder.wait_for(
        lambda evs: any(e.run_uuid == ops["watcher"].uuid and e.kind == "run_status_done" for e in evs)
    )
    flag.touch()
    env.wait(uuid)
    assert (env.tmp / "target.txt").read_text().strip() == ops["main"].uuid


def test_runs_uuid_ref_reads_an_earlier_run_from_the_store(env: Env) -> None:
    first = env.run(
        f"""version: 1.1
kind: component
name: first
outputs: [{{name: score, type: int}}]
run: {{kind: job, container: {{command: {json.dumps(write_outputs(score=7))}}}}}
"""
    )
    assert env.wait(first) == "succeeded"
    op = f"""name: op
params: {{score: {{ref: runs.{first}, value: outputs.score}}}}
component:
  name: op
  inputs: [{{name: score, type: int}}]
  run: {{kind: job, container: {{command: ["true"]}}}}"""
    uuid = env.run(dag(op))
    env.wait(uuid)
    assert env.ops(uuid)["op"].inputs == {"score": 7}


def test_a_param_templated_from_the_ops_own_artifact_paths_gets_them(env: Env) -> None:
    # Polyaxon's params reference: `value: {{ globals.run_outputs_path }}` is the op's own outputs folder.
    op = """name: paths
params:
  out: {value: "{{ globals.run_outputs_path }}"}
  root: {value: "{{ globals.run_artifacts_path }}"}
  store: {value: "{{ globals.artifacts_path }}"}
component:
  name: paths
  inputs: [{name: out, type: str}, {name: root, type: str}, {name: store, type: str}]
  run: {kind: job, container: {command: ["sh", "-c", "echo \\"$0\\" > \\"$0/seen.txt\\"", "{{ out }}"]}}"""
    uuid = env.run(dag(op))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    record = env.ops(uuid)["paths"]
    run_dir = env.executor.run_dir(record.uuid)
    assert record.inputs == {
        "out": str(run_dir / "outputs"),
        "root": str(run_dir),
        "store": str(run_dir.parent),
    }
    assert (run_dir / "outputs" / "seen.txt").read_text().strip() == str(run_dir / "outputs")


def test_a_single_ops_templated_params_are_rendered(env: Env) -> None:
    # Polyaxon's schedules docs: `params: {schedule_at: {value: '{{ globals.schedule_at }}', contextOnly: true}}`
    # on a top-level operation. A single op's params are its pipeline's inputs; their templates are rendered
    # as an op's of a DAG are, not passed on as written.
    text = """version: 1.1
kind: operation
name: solo
params:
  mine: {value: "{{ globals.uuid }}", contextOnly: true}
  out: {value: "{{ globals.run_outputs_path }}"}
  given: {value: "{{ globals.name }}"}
component:
  name: solo
  inputs: [{name: out, type: str}, {name: given, type: str}]
  run:
    kind: job
    container: {command: ["sh", "-c", "echo \\"$0 $1\\" > \\"$1/seen.txt\\"", "{{ mine }}", "{{ out }}"]}
"""
    uuid = env.run(text, params={"given": "from -P"})
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    record = env.store.get_run(uuid)
    outputs = env.executor.run_dir(uuid) / "outputs"
    assert record.inputs == {"out": str(outputs), "given": "from -P"}
    assert (outputs / "seen.txt").read_text().split() == [uuid, str(outputs)]
