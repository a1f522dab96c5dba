"""build_pipeline: what the scheduler runs, and everything refused before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.pipeline import analyze_pipeline, build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.spec.errors import SpecErrors, format_path
from polynb.spec.load import load_text
from polynb.spec.models import Component, Operation

SEED = """
kind: component
name: seed
inputs:
  - {name: lr, type: float, value: 0.005, isOptional: true}
run:
  kind: dag
  concurrency: 2
  operations:
    - name: experiment
      dagRef: experiment
      params: {lr: {ref: dag, value: inputs.lr}}
    - name: tensorboard
      hubRef: tensorboard
      params: {uuids: {ref: ops.experiment, value: globals.uuid}}
      events: [{ref: ops.experiment, kinds: [run_status_running]}]
  components:
    - name: experiment
      inputs: [{name: lr, type: float}]
      run: {kind: job, container: {command: [python, train.py]}}
"""

JOB_OP = """
kind: operation
name: train
params: {lr: 0.1}
hooks: [{hubRef: webhook, params: {url: {value: "http://127.0.0.1/x"}}}]
component:
  inputs:
    - {name: lr, type: float}
    - {name: epochs, type: int, value: 3, isOptional: true}
    - {name: tags, type: str, isList: true, isOptional: true}
  run: {kind: job, container: {command: [python, train.py]}}
"""


def spec(text: str) -> Component | Operation:
    return load_text(text)


def errors_of(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        build_pipeline(spec(text), **kwargs)
    return [str(e) for e in info.value.errors]


def test_dag_pipeline() -> None:
    pipeline = build_pipeline(spec(SEED), source="seed.yaml")
    assert (pipeline.name, pipeline.kind, pipeline.concurrency) == ("seed", "dag", 2)
    assert pipeline.inputs == {"lr": 0.005}
    assert list(pipeline.ops) == ["experiment", "tensorboard"]
    board = pipeline.ops["tensorboard"]
    assert board.upstream == frozenset({"experiment"})
    assert [e.ref for e in board.events] == ["ops.experiment"]
    assert board.component.name == "tensorboard" and board.component.run is not None
    assert board.component.run.kind == "service"
    assert pipeline.graph.stages == [["experiment"], ["tensorboard"]]
    assert pipeline.source == "seed.yaml"


def test_params_override_and_coerce_dag_inputs() -> None:
    pipeline = build_pipeline(spec(SEED), params={"lr": "0.5"})
    assert pipeline.inputs == {"lr": 0.5}


def test_single_operation() -> None:
    pipeline = build_pipeline(spec(JOB_OP), params={"epochs": "7", "tags": "a"})
    assert (pipeline.kind, list(pipeline.ops)) == ("single", ["train"])
    assert pipeline.inputs == {"lr": 0.1, "epochs": 7, "tags": ["a"]}
    assert [h.hub_ref for h in pipeline.hooks] == ["webhook"]
    assert pipeline.ops["train"].upstream == frozenset()
    assert build_pipeline(spec(JOB_OP), params={"tags": '["a", "b"]'}).inputs["tags"] == ["a", "b"]


def test_cli_params_wrong_type_unknown_and_missing_required() -> None:
    assert (
        "-P.epochs: param `epochs` (-P epochs=many): expected an integer"
        in errors_of(JOB_OP, params={"epochs": "many"})[0]
    )
    (unknown,) = errors_of(JOB_OP, params={"epoch": "3"})
    assert "param `epoch` (-P) is not an input" in unknown and "did you mean `epochs`" in unknown
    text = JOB_OP.replace("params: {lr: 0.1}\n", "")
    (missing,) = errors_of(text)
    assert "input `lr`" in missing and "-P lr=" in missing
    assert build_pipeline(spec(text), params={"lr": "1e-3"}).inputs["lr"] == 0.001


def test_literal_param_types_and_strict_params() -> None:
    (wrong,) = errors_of(JOB_OP.replace("params: {lr: 0.1}", "params: {lr: fast}"))
    assert "params.lr.value: param `lr`: expected a number" in wrong
    strict = JOB_OP.replace("params: {lr: 0.1}", "strictParams: true\nparams: {lr: 0.1, zz: 1}")
    assert "undeclared param `zz` under strictParams" in errors_of(strict)[0]
    lenient = JOB_OP.replace("params: {lr: 0.1}", "params: {lr: 0.1, zz: 1}")
    assert build_pipeline(spec(lenient)).inputs["zz"] == 1  # 2.18: an undeclared param is context


def test_dag_op_params_are_validated() -> None:
    text = SEED.replace("params: {lr: {ref: dag, value: inputs.lr}}", "params: {other: 1}")
    (missing,) = errors_of(text)
    assert "run.operations[0].params: input `lr` of `experiment` is required" in missing
    text = SEED.replace("params: {lr: {ref: dag, value: inputs.lr}}", "trigger: all_done")
    assert "run.operations[0]: input `lr`" in errors_of(text)[0]
    text = SEED.replace("params: {lr: {ref: dag, value: inputs.lr}}", "params: {lr: abc}")
    assert "run.operations[0].params.lr.value" in errors_of(text)[0]


def test_registry_components_resolve_hub_refs() -> None:
    registry = ComponentRegistry()
    mine = load_text("kind: component\nname: mine\nrun: {kind: job, container: {command: [x]}}\n")
    assert isinstance(mine, Component)
    registry.register("experiment", mine)
    text = SEED.replace("dagRef: experiment\n      params: {lr: {ref: dag, value: inputs.lr}}", "hubRef: experiment")
    pipeline = build_pipeline(spec(text), registry=registry)
    assert pipeline.ops["experiment"].component.name == "mine"


def test_path_ref_relative_to_the_source(tmp_path: Path) -> None:
    (tmp_path / "step.yaml").write_text("kind: component\nname: step\nrun: {kind: job, container: {command: [x]}}\n")
    text = "kind: operation\nname: run-step\npathRef: step.yaml\n"
    pipeline = build_pipeline(spec(text), base_dir=tmp_path)
    assert pipeline.ops["run-step"].component.name == "step"
    assert "no such file" in errors_of(text, base_dir=tmp_path / "elsewhere")[0]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("schedule: {kind: cron, cron: '{{ params.when }}'}", "a templated `cron` is not supported yet"),
        ("joins: [{ref: runs, query: 'status: succeeded', params: {}}]", "a join's `ref` is not supported yet"),
        ("build: {hubRef: kaniko}", "`build` is not supported yet"),
    ],
)
def test_unsupported_top_level_fields(snippet: str, expected: str) -> None:
    text = JOB_OP.replace("name: train\n", f"name: train\n{snippet}\n")
    assert any(expected in e for e in errors_of(text))
    report = analyze_pipeline(spec(text))
    assert report.errors == [] and report.unsupported  # check() accepts; run refuses


def test_a_top_level_schedule_is_kept_for_the_scheduler() -> None:
    text = JOB_OP.replace("name: train\n", "name: train\nschedule: {kind: interval, frequency: 60, maxRuns: 2}\n")
    pipeline = build_pipeline(spec(text))
    assert pipeline.kind == "single" and list(pipeline.ops) == ["train"]
    assert pipeline.schedule is not None and pipeline.schedule.kind == "interval"
    assert build_pipeline(spec(JOB_OP)).schedule is None


def test_a_dags_own_timeout_is_kept_and_the_operations_wins() -> None:
    """Issue 11 item 4: a DAG's ``termination`` was dropped on the way to the scheduler."""
    text = SEED.replace("name: seed\n", "name: seed\ntermination: {timeout: 2}\n")
    termination = build_pipeline(spec(text)).termination
    assert termination is not None and termination.timeout == 2
    body = "\n".join("  " + line for line in text.strip().splitlines())
    operation = f"kind: operation\nname: run-seed\ntermination: {{timeout: 5}}\ncomponent:\n{body}\n"
    termination = build_pipeline(spec(operation)).termination
    assert termination is not None and termination.timeout == 5
    assert build_pipeline(spec(SEED)).termination is None


def test_a_dags_own_ttl_is_refused_never_ignored() -> None:
    text = SEED.replace("name: seed\n", "name: seed\ntermination: {ttl: 60}\n")
    report = analyze_pipeline(spec(text))
    assert report.errors == []  # check() accepts the file; run refuses it
    (problem,) = report.unsupported
    assert ".".join(map(str, problem.path)) == "termination.ttl"
    assert "on a DAG" in problem.message and "not supported yet" in problem.message
    assert any("set it on" in e for e in errors_of(text))
    # On an op of the DAG, it is honoured as before.
    op_level = SEED.replace("dagRef: experiment\n", "dagRef: experiment\n      termination: {ttl: 60}\n", 1)
    assert build_pipeline(spec(op_level)).kind == "dag"


def test_a_dags_own_max_retries_is_kept_and_the_operations_wins() -> None:
    """Issue 11 item 4: a DAG's ``maxRetries`` was refused as not supported yet; it runs the DAG again."""
    text = SEED.replace("name: seed\n", "name: seed\ntermination: {maxRetries: 2}\n")
    report = analyze_pipeline(spec(text))
    assert report.errors == [] and report.unsupported == []
    termination = build_pipeline(spec(text)).termination
    assert termination is not None and (termination.max_retries, termination.timeout) == (2, None)
    body = "\n".join("  " + line for line in text.strip().splitlines())
    operation = f"kind: operation\nname: run-seed\ntermination: {{maxRetries: 0, timeout: 9}}\ncomponent:\n{body}\n"
    termination = build_pipeline(spec(operation)).termination
    assert termination is not None and (termination.max_retries, termination.timeout) == (None, 9)


def test_unsupported_run_kinds_events_and_init() -> None:
    text = "kind: component\nname: d\nrun: {kind: pytorchjob, master: {}}\n"
    assert "run kind `pytorchjob` is not supported yet" in errors_of(text)[0]
    text = SEED.replace("[run_status_running]", "[connection_git_commit]")
    assert (
        "`connection_git_commit` is not supported yet: it comes from a connection: write `ref: connections."
        in (errors_of(text)[0])
    )
    text = "kind: component\nname: j\nrun:\n  kind: job\n  init: [{modelRef: m}]\n  container: {command: [x]}\n"
    assert "init `modelRef` is not supported yet" in errors_of(text)[0]


COMPILED_JOB = """
kind: operation
name: train
params: {repo: {value: "https://x/r.git"}}
component:
  inputs: [{name: repo, type: git}]
  run:
    kind: job
    container: {command: [python, train.py]}
"""


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        ('{repo: {value: "https://x/r.git"}}', '{repo: {value: "https://x/r.git", toInit: true, connection: gh}}',
         "params.repo.toInit", "param `repo`: toInit with a connection is not supported yet"),
    ],
)  # fmt: skip
def test_what_the_compiler_refuses_is_unsupported_for_check(old: str, new: str, path: str, message: str) -> None:
    """``check`` says what ``run`` refuses (it used to compile, submit, and fail the op)."""
    text = COMPILED_JOB.replace(old, new)
    assert text != COMPILED_JOB
    report = analyze_pipeline(spec(text))
    assert report.errors == []
    assert [(format_path(p.path), p.message) for p in report.unsupported] == [(path, message)]
    assert errors_of(text) == [f"<string>:0:0: {path}: {message}"]


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        ("{command: [python, train.py]}", "{command: [x], envFrom: [{configMapRef: {name: c}}]}",
         "component.run.container.envFrom", "Kubernetes only: `envFrom` reads secrets and config maps"),
        ("{command: [python, train.py]}", "{command: [x], env: [{name: K, valueFrom: {secretKeyRef: {name: s}}}]}",
         "component.run.container.env[0].valueFrom", "Kubernetes only: env `K`: valueFrom reads the cluster's"),
        ("kind: job\n", "kind: job\n    sidecars: [{name: s, envFrom: [{secretRef: {name: s}}]}]\n",
         "component.run.sidecars[0].envFrom", "Kubernetes only: `envFrom`"),
        ("kind: job\n", "kind: job\n    init: [{container: {command: [x], envFrom: [{secretRef: {name: s}}]}}]\n",
         "component.run.init[0].container.envFrom", "Kubernetes only: `envFrom`"),
    ],
)  # fmt: skip
def test_what_reads_the_cluster_is_a_kubernetes_only_warning(old: str, new: str, path: str, message: str) -> None:
    """Accepted (Kubernetes runs it); ``polynb check`` for the local executor makes it an error (tests/cli)."""
    report = analyze_pipeline(spec(COMPILED_JOB.replace(old, new)))
    assert report.errors == [] and report.unsupported == []
    [warning] = [p for p in report.warnings if p.message.startswith("Kubernetes only")]
    assert format_path(warning.path) == path and warning.message.startswith(message)


def test_a_to_init_param_of_another_type_is_an_error() -> None:
    text = COMPILED_JOB.replace("{name: repo, type: git}", "{name: repo, type: int}").replace(
        '{value: "https://x/r.git"}', "{value: 3, toInit: true}"
    )
    report = analyze_pipeline(spec(text))
    assert [(format_path(p.path), p.message) for p in report.errors] == [
        (
            "params.repo.toInit",
            "param `repo`: toInit needs an input of type git, artifacts, path or dockerfile (got int)",
        )
    ]


def test_cache_on_an_op_is_applied_without_a_word() -> None:
    text = JOB_OP.replace("name: train\n", "name: train\ncache: {ttl: 100}\n")
    report = analyze_pipeline(spec(text))
    assert report.problems == []
    assert build_pipeline(spec(text)).kind == "single"


def test_hooks_are_resolved_and_checked() -> None:
    text = JOB_OP.replace("hubRef: webhook, params: {url:", "hubRef: webhok, params: {url:")
    assert "did you mean `webhook`" in errors_of(text)[0]
    text = JOB_OP.replace('params: {url: {value: "http://127.0.0.1/x"}}', "params: {}")
    assert "input `url` of `webhook` is required" in errors_of(text)[0]


def test_a_hook_param_reading_what_a_hook_cannot_see_is_an_error() -> None:
    # A hook runs after its main run, on its own: its params read the main run (`ops.<main op>`) or a run by
    # uuid. `ref: dag` or another op would fail the hook run when it compiles, after the op ran.
    text = """
kind: component
name: pipe
inputs: [{name: thr, type: float, value: 0.5, isOptional: true}]
run:
  kind: dag
  operations:
    - name: first
      component: {run: {kind: job, container: {command: [echo]}}}
    - name: train
      dependencies: [first]
      hooks:
        - hubRef: webhook
          params:
            url: {value: "http://127.0.0.1/x"}
            payload: {ref: dag, value: inputs.thr}
        - hubRef: webhook
          params:
            url: {value: "http://127.0.0.1/x"}
            payload: {ref: ops.first, value: globals.uuid}
        - hubRef: webhook
          params:
            url: {value: "http://127.0.0.1/x"}
            payload: {ref: ops.train, value: globals.uuid}
      component: {run: {kind: job, container: {command: [echo]}}}
"""
    errors = errors_of(text)
    assert len(errors) == 2, errors
    assert "run.operations[1].hooks[0].params.payload.ref" in errors[0]
    assert "`dag` is not available to a hook" in errors[0]
    assert "run.operations[1].hooks[1].params.payload.ref" in errors[1]
    assert "`ops.first` is not available to a hook: use `ops.train` (the main run) or `runs.<uuid>`" in errors[1]


def test_an_op_waiting_for_a_service_to_end_is_warned_about() -> None:
    # A service runs until it is stopped: an op that depends on it (or reads it through a param, with no event
    # on it) would wait for ever, and `polynb run` with it. An event on the service, or a timeout, ends the wait.
    text = """
kind: component
name: pipe
run:
  kind: dag
  operations:
    - name: web
      component: {run: {kind: service, ports: [8000], container: {command: [serve]}}}
    - name: timed
      termination: {timeout: 60}
      component: {run: {kind: service, ports: [8001], container: {command: [serve]}}}
    - name: after
      dependencies: [web]
      trigger: all_done
      component: {run: {kind: job, container: {command: [echo]}}}
    - name: reader
      params: {url: {ref: ops.web, value: globals.uuid}}
      component: {inputs: [{name: url, type: str}], run: {kind: job, container: {command: [echo]}}}
    - name: on-event
      params: {url: {ref: ops.web, value: globals.uuid}}
      events: [{ref: ops.web, kinds: [run_status_running]}]
      component: {inputs: [{name: url, type: str}], run: {kind: job, container: {command: [echo]}}}
    - name: after-timed
      dependencies: [timed]
      component: {run: {kind: job, container: {command: [echo]}}}
"""
    report = analyze_pipeline(spec(text))
    assert not report.errors, report.errors
    waits = [(format_path(p.path), p.message) for p in report.warnings if "service" in p.message]
    assert [path for path, _ in waits] == ["run.operations[2].dependencies[0]", "run.operations[3].params.url.ref"]
    assert "`after` waits for service `web` to end" in waits[0][1]
    assert "`reader` waits for service `web` to end" in waits[1][1]


def test_each_reference_is_resolved_once_per_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    ops = "".join(
        f"    - name: op-{i}\n      dagRef: job\n"
        f"      hooks: [{{hubRef: webhook, params: {{url: {{value: 'http://127.0.0.1/{i}'}}}}}}]\n"
        f"    - name: bad-{i}\n      hubRef: no-such-thing\n"
        for i in range(20)
    )
    text = (
        "kind: component\nrun:\n  kind: dag\n  components:\n    - name: job\n"
        "      run: {kind: job, container: {command: [echo]}}\n  operations:\n" + ops
    )
    registry = ComponentRegistry()
    calls: list[str] = []
    real_hub, real_full = registry.hub, registry.resolve_full

    def hub(ref: str) -> Any:
        calls.append(f"hub {ref}")
        return real_hub(ref)

    def resolve_full(op: Operation, **kwargs: Any) -> Any:
        calls.append(f"op {op.dag_ref or op.hub_ref}")
        return real_full(op, **kwargs)

    monkeypatch.setattr(registry, "hub", hub)
    monkeypatch.setattr(registry, "resolve_full", resolve_full)
    report = analyze_pipeline(spec(text), registry=registry)
    # resolve_full calls hub() itself for a hubRef op.
    assert sorted(calls) == ["hub no-such-thing", "hub webhook", "op job", "op no-such-thing"]
    # A failed resolution is still reported at every op naming it.
    failed = [p.path for p in report.errors]
    assert failed == [("run", "operations", 2 * i + 1, "hubRef") for i in range(20)]


def test_nested_dag_is_validated() -> None:
    text = """
kind: component
name: outer
run:
  kind: dag
  operations:
    - {name: inner, dagRef: inner, params: {region: eu}}
  components:
    - name: inner
      inputs: [{name: region, type: str}]
      run:
        kind: dag
        operations:
          - {name: a, dagRef: j, dependencies: [b]}
          - {name: b, dagRef: j, dependencies: [a]}
        components: [{name: j, run: {kind: job, container: {command: [x]}}}]
"""
    (cycle,) = errors_of(text)
    assert "run.components[0].run.operations[0].dependencies[0]: the DAG has a cycle: a -> b -> a" in cycle


def test_hooks_of_an_op_with_an_inline_run_are_listed_once() -> None:
    pipeline = build_pipeline(
        spec(
            """
version: 1.1
kind: component
run:
  kind: dag
  operations:
    - name: train
      hooks: [{hubRef: webhook, trigger: failed, params: {url: "http://127.0.0.1:9/"}}]
      run: {kind: job, container: {command: ["true"]}}
"""
        )
    )
    assert [h.hub_ref for h in pipeline.ops["train"].hooks] == ["webhook"]


def test_a_matrix_runs_on_a_top_level_op_and_on_a_dags_op_but_not_over_a_dag() -> None:
    top = "kind: operation\nname: s\nmatrix: {kind: grid, params: {lr: {kind: choice, value: [0.1]}}}\n" \
          "component: {inputs: [{name: lr, type: float}], run: {kind: job, container: {command: [x]}}}\n"  # fmt: skip
    assert build_pipeline(spec(top)).spec.matrix is not None
    nested = (
        "kind: component\nname: d\nrun:\n  kind: dag\n  operations:\n"
        "  - name: a\n    matrix: {kind: grid, params: {lr: {kind: choice, value: [0.1]}}}\n"
        "    component: {inputs: [{name: lr, type: float}], run: {kind: job, container: {command: [x]}}}\n"
    )
    assert build_pipeline(spec(nested)).ops["a"].operation.matrix is not None
    over_a_dag = (
        "kind: operation\nname: s\nmatrix: {kind: grid, params: {lr: {kind: choice, value: [0.1]}}}\n"
        "component:\n  inputs: [{name: lr, type: float}]\n  run:\n    kind: dag\n    operations:\n"
        "    - {name: x, component: {run: {kind: job, container: {command: [x]}}}}\n"
    )
    with pytest.raises(SpecErrors, match="`matrix` over a DAG is not supported yet"):
        build_pipeline(spec(over_a_dag))
