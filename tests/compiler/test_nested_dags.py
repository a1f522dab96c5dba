"""Nested DAGs at compile time: an op whose component is a DAG, however it is given, has its inner ops'
components resolved and written inline (what the engine runs without the registry); a component that
contains itself is an error at the reference closing the cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.compiler.check import check
from polynb.compiler.pipeline import PipelineOp, build_pipeline
from polynb.compiler.registry import HUB_PATH_ENV
from polynb.spec.load import load_text
from polynb.spec.models import Component, Dag

JOB = "run: {kind: job, container: {command: [python, -c, pass]}}"

INNER = f"""
name: inner
inputs: [{{name: x, type: int}}]
outputs: [{{name: y, type: int, isOptional: true}}]
run:
  kind: dag
  operations:
    - name: a
      params: {{x: {{ref: dag, value: inputs.x}}}}
      dagRef: step
  components:
    - name: step
      inputs: [{{name: x, type: int}}]
      {JOB}
"""


def _indent(text: str, by: int) -> str:
    return "\n".join(" " * by + line if line else line for line in text.strip("\n").splitlines())


def outer(first: str, *, components: str = "") -> str:
    return f"""
kind: component
name: outer
run:
  kind: dag
  operations:
{_indent(first, 4)}
    - name: after
      dependencies: [first]
      params: {{y: {{ref: ops.first, value: outputs.y}}}}
      component:
        inputs: [{{name: y, type: int, isOptional: true}}]
        {JOB}
{components}"""


def inner_dag(op: PipelineOp) -> Dag:
    assert op.is_dag
    assert isinstance(op.component.run, Dag)
    return op.component.run


def assert_inlined(dag: Dag) -> None:
    """Every op carries its component; nothing is left to resolve."""
    assert dag.components is None
    for op in dag.operations:
        assert op.component is not None
        assert (op.hub_ref, op.dag_ref, op.path_ref, op.url_ref) == (None, None, None, None)


def test_inline_nested_dag_is_inlined() -> None:
    first = "- name: first\n  params: {x: {value: 3}}\n  component:\n" + _indent(INNER, 4)
    pipeline = build_pipeline(load_text(outer(first)))
    dag = inner_dag(pipeline.ops["first"])
    assert_inlined(dag)
    assert dag.operations[0].component is not None
    assert [io.name for io in dag.operations[0].component.inputs or ()] == ["x"]
    assert pipeline.ops["after"].upstream == {"first"}


def test_dag_ref_to_a_component_of_the_enclosing_dag() -> None:
    first = "- {name: first, dagRef: inner, params: {x: {value: 3}}}"
    components = "  components:\n  -" + _indent(INNER, 4)[3:]
    pipeline = build_pipeline(load_text(outer(first, components=components)))
    assert_inlined(inner_dag(pipeline.ops["first"]))


def test_hub_ref_to_a_registered_dag_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "inner.yaml").write_text("kind: component\n" + INNER)
    monkeypatch.setenv(HUB_PATH_ENV, str(tmp_path))
    first = "- {name: first, hubRef: inner, params: {x: {value: 3}}}"
    pipeline = build_pipeline(load_text(outer(first)))
    assert_inlined(inner_dag(pipeline.ops["first"]))


def test_depth_two_is_inlined_at_every_level() -> None:
    middle = f"""
name: middle
inputs: [{{name: x, type: int}}]
run:
  kind: dag
  operations:
    - name: deeper
      params: {{x: {{ref: dag, value: inputs.x}}}}
      component:
{_indent(INNER, 8)}
"""
    first = "- name: first\n  params: {x: {value: 3}}\n  component:\n" + _indent(middle, 4)
    pipeline = build_pipeline(load_text(outer(first).replace("outputs.y", "inputs.x")))
    level1 = inner_dag(pipeline.ops["first"])
    assert_inlined(level1)
    deeper = level1.operations[0].component
    assert isinstance(deeper, Component) and isinstance(deeper.run, Dag)
    assert_inlined(deeper.run)


def test_an_inner_dag_error_is_reported_at_its_place() -> None:
    bad = INNER.replace("value: inputs.x", "value: inputs.nope")
    first = "- name: first\n  params: {x: {value: 3}}\n  component:\n" + _indent(bad, 4)
    result = check(outer(first))
    assert not result.valid
    (error,) = result.errors
    assert error.path == "run.operations[0].component.run.operations[0].params.x.value"
    assert "nope" in error.message


def test_a_component_containing_itself_is_an_error_at_the_reference(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text(
        "kind: component\nname: loop\nrun:\n  kind: dag\n  operations:\n    - name: again\n      pathRef: ./loop.yaml\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text("kind: component\nname: top\nrun:\n  kind: dag\n  operations:\n  - {name: a, pathRef: loop.yaml}\n")
    result = check(top)
    assert not result.valid
    (error,) = result.errors
    assert (Path(error.file).name, error.line, error.column) == ("loop.yaml", 7, 16)
    assert error.path == "run.operations[0].pathRef"
    assert "`loop` contains itself" in error.message


def test_hub_ref_cycle_through_two_components(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, other in (("ping", "pong"), ("pong", "ping")):
        (tmp_path / f"{name}.yaml").write_text(
            f"kind: component\nname: {name}\nrun:\n  kind: dag\n  operations:\n    - {{name: call, hubRef: {other}}}\n"
        )
    monkeypatch.setenv(HUB_PATH_ENV, str(tmp_path))
    result = check("kind: component\nname: top\nrun:\n  kind: dag\n  operations:\n    - {name: first, hubRef: ping}\n")
    assert not result.valid
    (error,) = result.errors
    assert (Path(error.file).name, error.line, error.column) == ("pong.yaml", 6, 28)
    assert "`ping` contains itself" in error.message


def test_max_retries_on_an_op_running_a_dag_checks_clean() -> None:
    retried = "- name: first\n  termination: {maxRetries: 2}\n  params: {x: {value: 3}}\n  component:\n"
    first = retried + _indent(INNER, 4)
    result = check(outer(first))
    assert result.valid
    assert result.warnings == []  # applied: a failed inner DAG runs again as a whole (scheduler.nesting)
