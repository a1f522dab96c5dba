"""One ``check`` pass reports schema errors and, where the file parsed, the DAG errors they used to hide."""

from __future__ import annotations

import pytest

from polynb.compiler.check import check

BROKEN = """\
version: 1.1
kind: component
name: salvage
run:
  kind: dag
  concurrency: lots
  operations:
    - name: a
      component:
        outputs: [{name: loss, type: float}]
        run: {kind: job, container: {command: ["true"]}}
    - name: b
      dependecies: [a]
      params: {x: {ref: ops.a, value: outputs.loss}}
      component:
        inputs: [{name: x, type: float}]
        run: {kind: jbo, container: {command: ["true"]}}
    - name: c
      dependencies: [nope, b]
      params: {y: {ref: ops.a, value: outputs.missing}}
      component:
        inputs: [{name: y, type: float}]
        run: {kind: job, container: {command: ["true"]}}
    - {name: d, dependencies: [e], dagRef: job}
    - {name: e, dependencies: [d], dagRef: job}
    - {name: c, dagRef: job}
  components:
    - name: job
      run: {kind: job, container: {command: ["true"]}}
"""


def rendered(text: str) -> list[str]:
    result = check(text)
    assert not result.valid and result.pipelines == [] and result.ops == []
    return [str(e).removeprefix("<string>:") for e in result.errors]


def test_schema_errors_and_dag_errors_in_one_pass() -> None:
    assert rendered(BROKEN) == [
        "6:16: run.concurrency: expected an integer, got 'lots'",
        "13:7: run.operations[1].dependecies: unexpected key 'dependecies'; did you mean 'dependencies'?",
        "17:21: run.operations[1].component.run.kind: 'jbo' is not a run kind; did you mean 'job'?",
        "19:22: run.operations[2].dependencies[0]: `nope` is not an op of this DAG (orphan ref)",
        "20:39: run.operations[2].params.y.value: param `y` reads `outputs.missing` from `ops.a`, which has no such "
        "output (it declares outputs: loss)",
        "24:32: run.operations[3].dependencies[0]: the DAG has a cycle: d -> e -> d",
        "26:14: run.operations[5].name: the DAG has several ops named `c` (first at operations[2]); op names must be "
        "unique",
    ]


def test_an_op_with_schema_errors_keeps_its_edges() -> None:
    """The broken op ``b`` is in the graph through its ref param, so the cycle through it is found."""
    text = BROKEN.replace("dependencies: [nope, b]", "dependencies: [b]").replace(
        "params: {x: {ref: ops.a, value: outputs.loss}}", "params: {x: {ref: ops.c, value: outputs.loss}}"
    )
    errors = rendered(text)
    assert "14:25: run.operations[1].params.x.ref: the DAG has a cycle: b -> c -> b" in errors
    assert not any("outputs.loss" in e for e in errors)  # b's own params are not checked: its component is broken


def test_a_broken_op_whose_name_is_lost_hides_no_orphan_ref() -> None:
    text = BROKEN.replace("    - name: b\n", "    - name: {b: 1}\n")
    errors = rendered(text)
    assert "12:13: run.operations[1].name: expected a string, got a mapping" in errors
    assert not any("orphan ref" in e for e in errors), errors  # `b` may be what they name


@pytest.mark.parametrize(
    ("old", "new", "schema_error"),
    [
        # Outside the ops, what the graph checks read is not guessed at: an input's type, the components, the kind.
        ("name: salvage\n", "name: salvage\ninputs: [{name: q, type: flaot}]\n", "inputs[0].type"),
        ("  components:\n", "  components: 3\n  other:\n", "run."),
        ("kind: component\n", "kind: [component]\n", "kind"),
    ],
)
def test_what_cannot_be_repaired_safely_reports_the_schema_errors_only(old: str, new: str, schema_error: str) -> None:
    assert old in BROKEN
    errors = rendered(BROKEN.replace(old, new))
    assert any(schema_error in e for e in errors), errors
    assert not any("orphan ref" in e or "cycle" in e for e in errors), errors


def test_a_matrix_that_does_not_validate_does_not_make_its_inputs_required() -> None:
    text = """\
kind: operation
name: sweep
matrix: [lr]
component:
  inputs: [{name: lr, type: float}]
  run: {kind: job, container: {command: [x]}}
"""
    assert rendered(text) == ["3:9: matrix: expected a mapping, got a list"]


def test_a_valid_file_is_unaffected() -> None:
    text = BROKEN.replace("  concurrency: lots\n", "").replace("dependecies", "dependencies")
    text = text.replace("kind: jbo", "kind: job").replace("nope, b", "b").replace("outputs.missing", "outputs.loss")
    text = text.replace("dependencies: [e]", "dependencies: []").replace("    - {name: c, dagRef: job}\n", "")
    result = check(text)
    assert result.valid, result.errors
    assert [op.name for op in result.ops] == ["a", "d", "b", "e", "c"]
