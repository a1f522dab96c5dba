"""Joins run: when an op compiles, its joins select runs of the store (Polyaxon's query language, sort,
limit, offset) and each join param receives the list of what it reads from them, in the sort's order."""

from __future__ import annotations

import json

from support.schedkit import PY, Env, dag, job, write_outputs

from polynb.lifecycle import Status

_ECHO = [PY, "-c", "print('joined')"]


def report(joins: str) -> str:
    return (
        "name: report\n"
        "dependencies: [a, b, c]\n"
        f"joins:\n{joins}"
        "component:\n"
        "  name: report\n"
        "  inputs: [{name: losses, type: float, isList: true}, {name: names, type: str, isList: true}]\n"
        f"  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"
    )


def loss_sweep(name: str, losses: list[float], *, output: str = "loss") -> str:
    """An op of a DAG sweeping its input `loss` over ``losses`` (a mapping), each trial writing it as ``output``."""
    values = ", ".join(f"{{loss: {loss}}}" for loss in losses)
    write = f"""'echo "{{\\"{output}\\": $0}}" > "$POLYAXON_RUN_OUTPUTS_PATH/outputs.json"'"""
    return (
        f"name: {name}\n"
        f"matrix: {{kind: mapping, values: [{values}]}}\n"
        "component:\n"
        f"  name: {name}\n"
        "  inputs: [{name: loss, type: float}]\n"
        f"  outputs: [{{name: {output}, type: float}}]\n"
        f'  run: {{kind: job, container: {{command: [sh, -c, {write}, "{{{{ loss }}}}"]}}}}'
    )


def producers() -> list[str]:
    return [
        job("a", write_outputs(loss=0.3)),
        job("b", write_outputs(loss=0.1)),
        job("c", [PY, "-c", "raise SystemExit(1)"]),
    ]


def test_a_join_selects_the_dags_succeeded_runs_sorted_and_limited(env: Env) -> None:
    joins = (
        "  - query: 'pipeline: {{ dag.uuid }}, status: succeeded'\n"
        "    sort: metrics.loss\n"
        "    limit: 5\n"
        "    params:\n"
        "      losses: {value: outputs.loss}\n"
        "      names: {value: globals.name}\n"
    )
    text = dag(
        *producers(), report(joins).replace("dependencies: [a, b, c]", "trigger: all_done\ndependencies: [a, b, c]")
    )
    uuid = env.run(text)
    env.wait(uuid)
    record = env.ops(uuid)["report"]
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs["losses"] == [0.1, 0.3]
    assert record.inputs["names"] == ["b", "a"]


def test_descending_sort_and_offset(env: Env) -> None:
    joins = (
        "  - query: 'pipeline: {{ dag.uuid }}, metrics.loss: >0'\n"
        "    sort: -metrics.loss\n"
        "    offset: 1\n"
        "    params:\n"
        "      losses: {value: outputs.loss}\n"
        "      names: {value: globals.name}\n"
    )
    text = dag(
        *producers(), report(joins).replace("dependencies: [a, b, c]", "trigger: all_done\ndependencies: [a, b, c]")
    )
    uuid = env.run(text)
    env.wait(uuid)
    record = env.ops(uuid)["report"]
    assert record.inputs["losses"] == [0.1]


def test_a_query_that_cannot_be_read_once_rendered_fails_the_op_with_the_reason(env: Env) -> None:
    joins = (
        "  - query: '{{ \"nosuchfield\" }}: 1'\n"
        "    params:\n"
        "      losses: {value: outputs.loss}\n"
        "      names: {value: globals.name}\n"
    )
    text = dag(
        *producers(), report(joins).replace("dependencies: [a, b, c]", "trigger: all_done\ndependencies: [a, b, c]")
    )
    uuid = env.run(text)
    env.wait(uuid)
    record = env.ops(uuid)["report"]
    assert record.status == Status.FAILED
    assert record.reason == "JoinsError" and "nosuchfield" in (record.message or "")


def test_a_join_reads_the_trials_of_a_sweep(env: Env) -> None:
    sweep = env.run(
        "version: 1.1\nkind: operation\nname: s\n"
        "matrix: {kind: mapping, values: [{x: 3}, {x: 1}, {x: 2}]}\n"
        "component:\n  inputs: [{name: x, type: int}]\n"
        f"  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}\n"
    )
    env.wait(sweep)
    best = env.run(
        "version: 1.1\nkind: operation\nname: pick\n"
        f"joins: [{{query: 'pipeline: {sweep}', sort: -inputs.x, limit: 2, params: {{xs: {{value: inputs.x}}}}}}]\n"
        "component:\n  inputs: [{name: xs, type: int, isList: true}]\n"
        f"  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}\n"
    )
    assert env.wait(best) == "succeeded", env.store.get_run(best).message
    assert env.store.get_run(best).inputs["xs"] == [3, 2]


def test_a_query_reads_the_ops_own_params_as_polyaxons_map_reduce_does(env: Env) -> None:
    # Polyaxon's map-reduce fixture: the reducer's query is `pipeline: {{ map_controller }}`, a contextOnly
    # param holding the uuid of the mapping op, so the join selects that sweep's trials.
    mapper = loss_sweep("mapper", [0.5, 0.25], output="result")
    reducer = f"""name: reducer
dependencies: [mapper, other]
params:
  map_controller: {{ref: ops.mapper, value: globals.uuid, contextOnly: true}}
joins:
- query: 'pipeline: {{{{ map_controller }}}}'
  sort: metrics.result
  params:
    results: {{value: outputs.result}}
component:
  name: reducer
  inputs: [{{name: results, type: float, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"""
    uuid = env.run(dag(mapper, job("other", write_outputs(result=0.1)), reducer))
    env.wait(uuid)
    ops = env.ops(uuid)
    record = ops["reducer"]
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs["results"] == [0.25, 0.5]


def test_a_top_level_ops_query_reads_its_params_as_overridden(env: Env) -> None:
    # Polyaxon's fixture get_fxt_job_with_inputs_and_joins: `limit: '{{ top }}'` with `top` a contextOnly param.
    # A `-P top=1` (the pipeline's params) wins over the file's value, in the join as in the command.
    earlier = env.run(dag(job("a", write_outputs(loss=0.3)), job("b", write_outputs(loss=0.1))))
    env.wait(earlier)
    text = f"""version: 1.1
kind: operation
name: report
joins:
- query: 'pipeline: {earlier}'
  sort: metrics.loss
  limit: '{{{{ top }}}}'
  params:
    losses: {{value: outputs.loss}}
    names: {{value: globals.name}}
params:
  top: {{value: 2, contextOnly: true}}
component:
  name: report
  inputs: [{{name: losses, type: float, isList: true}}, {{name: names, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}
"""
    uuid = env.run(text, params={"top": 1})
    env.wait(uuid)
    record = env.store.get_run(uuid)
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs["names"] == ["b"]


def test_a_query_on_the_project_selects_the_runs_of_this_pipeline(env: Env) -> None:
    # Polyaxon's quick-start (joins/map_reduce_tune_join.yaml) joins with `project.name: {{ globals.project_name }}`;
    # locally the project is the pipeline: a DAG's ops (its sweeps' trials included) are in the DAG's project.
    other = env.run(dag(job("old", write_outputs(loss=0.9)), name="elsewhere"))
    env.wait(other)
    sweep = loss_sweep("tune", [0.2, 0.4])
    best = f"""name: best
dependencies: [a, tune]
joins:
- query: 'project.name: {{{{ globals.project_name }}}}, kind: job, metrics.loss: >0'
  sort: metrics.loss
  params:
    losses: {{value: outputs.loss}}
    names: {{value: globals.name}}
component:
  name: best
  inputs: [{{name: losses, type: float, isList: true}}, {{name: names, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"""
    uuid = env.run(dag(job("a", write_outputs(loss=0.3)), sweep, best, name="tuning"))
    env.wait(uuid)
    record = env.ops(uuid)["best"]
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs["names"] == ["tune", "a", "tune"]  # a trial is named like its op (see below)
    assert record.inputs["losses"] == [0.2, 0.3, 0.4]


def test_a_query_by_the_ops_name_finds_its_sweeps_trials(env: Env) -> None:
    # In Polyaxon every trial of the op `tune` is named `tune` (get_ops_from_suggestions keeps the op's name), as
    # each trial's own `globals.name` is in polynb: `name: tune` is how a join collects a sweep's outputs. polynb
    # stores the trials as `tune-1`, `tune-2` to tell them apart in its lists; a join reads them by the op's name.
    sweep = loss_sweep("tune", [0.4, 0.2])
    report = f"""name: report
dependencies: [tune]
joins:
- query: 'name: tune, kind: job'
  sort: metrics.loss
  params:
    losses: {{value: outputs.loss}}
    names: {{value: globals.name}}
component:
  name: report
  inputs: [{{name: losses, type: float, isList: true}}, {{name: names, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"""
    uuid = env.run(dag(sweep, report))
    env.wait(uuid)
    record = env.ops(uuid)["report"]
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs == {"losses": [0.2, 0.4], "names": ["tune", "tune"]}


def test_a_query_by_the_ops_name_finds_its_schedules_ticks(env: Env) -> None:
    # A tick's run is named like its op too, in Polyaxon (get_op_from_schedule) and in its own `globals.name`.
    ticking = env.run(
        "version: 1.1\nkind: operation\nname: nightly\n"
        "schedule: {kind: interval, frequency: 1, maxRuns: 1}\n"
        f"component:\n  run: {{kind: job, container: {{command: {json.dumps(write_outputs(loss=0.5))}}}}}\n"
    )
    assert env.wait(ticking) == "succeeded"
    best = env.run(
        "version: 1.1\nkind: operation\nname: pick\n"
        "joins: [{query: 'name: nightly, kind: job', params: {losses: {value: outputs.loss}}}]\n"
        "component:\n  inputs: [{name: losses, type: float, isList: true}]\n"
        f"  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}\n"
    )
    assert env.wait(best) == "succeeded", env.store.get_run(best).message
    assert env.store.get_run(best).inputs["losses"] == [0.5]


def test_a_join_param_reads_the_artifacts_paths_of_the_runs_found(env: Env) -> None:
    # Polyaxon's V1Join docs and fixtures: `value: artifacts.base`, `artifacts.outputs` (the runs' folders, as
    # `{ref: ops.X, value: artifacts.outputs}` reads them: relative to the artifacts root).
    reader = f"""name: reader
dependencies: [a, b]
joins:
- query: 'pipeline: {{{{ dag.uuid }}}}, status: succeeded'
  sort: metrics.loss
  params:
    bases: {{value: artifacts.base}}
    outs: {{value: artifacts.outputs}}
component:
  name: reader
  inputs: [{{name: bases, type: str, isList: true}}, {{name: outs, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"""
    uuid = env.run(dag(job("a", write_outputs(loss=0.3)), job("b", write_outputs(loss=0.1)), reader))
    env.wait(uuid)
    ops = env.ops(uuid)
    record = ops["reader"]
    assert record.status == Status.SUCCEEDED, record.message
    a, b = ops["a"].uuid, ops["b"].uuid
    assert record.inputs["bases"] == [b, a]
    assert record.inputs["outs"] == [f"{b}/outputs", f"{a}/outputs"]


def test_a_join_params_value_may_be_written_in_braces(env: Env) -> None:
    # As a param's `value` with a ref, a join param's may be written `{{ outputs.loss }}` (Polyaxon's
    # ParamValueMixin.get_spec strips the braces): the same path.
    reader = f"""name: reader
dependencies: [a, b]
joins:
- query: 'pipeline: {{{{ dag.uuid }}}}, status: succeeded'
  sort: metrics.loss
  params:
    losses: {{value: "{{{{ outputs.loss }}}}"}}
    names: {{value: "{{{{ globals.name }}}}"}}
component:
  name: reader
  inputs: [{{name: losses, type: float, isList: true}}, {{name: names, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"""
    uuid = env.run(dag(job("a", write_outputs(loss=0.3)), job("b", write_outputs(loss=0.1)), reader))
    env.wait(uuid)
    record = env.ops(uuid)["reader"]
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs == {"losses": [0.1, 0.3], "names": ["b", "a"]}


def test_a_join_param_reads_a_runs_times_as_a_ref_param_does(env: Env) -> None:
    # `globals.created_at` of the runs found: ISO 8601 text, as `{ref: ops.X, value: globals.created_at}` gives.
    reader = f"""name: reader
dependencies: [a]
joins:
- query: 'pipeline: {{{{ dag.uuid }}}}, status: succeeded'
  params:
    created: {{value: globals.created_at}}
    finished: {{value: globals.finished_at}}
component:
  name: reader
  inputs: [{{name: created, type: str, isList: true}}, {{name: finished, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}"""
    uuid = env.run(dag(job("a", write_outputs(loss=0.3)), reader))
    env.wait(uuid)
    ops = env.ops(uuid)
    record = ops["reader"]
    assert record.status == Status.SUCCEEDED, record.message
    a = ops["a"]
    assert a.finished_at is not None
    assert record.inputs == {"created": [a.created_at.isoformat()], "finished": [a.finished_at.isoformat()]}


def test_a_single_ops_query_reads_its_templated_params_rendered(env: Env) -> None:
    # A top-level op's param written as a template (`value: "{{ globals.name }}-"`) is rendered before the
    # query reads it, as anywhere else.
    earlier = env.run(
        dag(job("rep-a", write_outputs(loss=0.3)), job("rep-b", write_outputs(loss=0.1)), job("x", ["true"]))
    )
    env.wait(earlier)
    text = f"""version: 1.1
kind: operation
name: rep
joins:
- query: 'name: {{{{ prefix }}}}%, status: succeeded'
  sort: name
  params:
    names: {{value: globals.name}}
params:
  prefix: {{value: "{{{{ globals.name }}}}-", contextOnly: true}}
component:
  name: rep
  inputs: [{{name: names, type: str, isList: true}}]
  run: {{kind: job, container: {{command: {json.dumps(_ECHO)}}}}}
"""
    uuid = env.run(text)
    env.wait(uuid)
    record = env.store.get_run(uuid)
    assert record.status == Status.SUCCEEDED, record.message
    assert record.inputs["names"] == ["rep-a", "rep-b"]
