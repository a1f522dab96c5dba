"""matrix: every kind and generator of Polyaxon 2.18, checked field by field with positioned errors."""

from __future__ import annotations

import pytest

from polynb.compiler.check import check
from polynb.compiler.pipeline import build_pipeline
from polynb.compiler.trials import gp_available
from polynb.spec.load import load_text
from polynb.spec.matrix import HpParam, RandomSearch, gives_input

HEAD = """\
kind: operation
name: sweep
component:
  inputs:
    - {name: lr, type: float}
    - {name: epochs, type: int}
    - {name: act, type: str, isOptional: true}
    - {name: day, type: date, isOptional: true}
  run: {kind: job, container: {command: [python, train.py]}}
matrix:
"""


def sweep(*lines: str) -> str:
    return HEAD + "".join(f"  {line}\n" for line in lines)


def first_error(text: str) -> tuple[int, str, str]:
    result = check(text)
    assert not result.valid, "expected an error"
    e = result.errors[0]
    return e.line, e.path, e.message


def test_a_hyperband_resource_gives_its_input() -> None:
    """The resource hyperband grows (epochs) is an input the trials receive: it is not missing."""
    text = sweep(
        "kind: hyperband",
        "maxIterations: 81",
        "eta: 3",
        "resource: {name: epochs, type: int}",
        "metric: {name: loss, optimization: minimize}",
        "params: {lr: {kind: loguniform, value: [0.001, 0.1]}}",
    )
    result = check(text)
    assert result.valid, result.errors
    assert not result.unsupported
    assert build_pipeline(load_text(text)).spec.matrix is not None  # polynb runs it as a sweep


def test_without_a_resource_hyperband_does_not_give_that_input() -> None:
    text = sweep("kind: hyperband", "maxIterations: 81", "params: {lr: {kind: loguniform, value: [0.001, 0.1]}}")
    assert "input `epochs` is required" in first_error(text)[2]


@pytest.mark.parametrize(
    "lines",
    [
        ("kind: grid", "params: {lr: {kind: logspace, value: '0.0001:0.1:4'}, epochs: {kind: choice, value: [1, 2]}}"),
        ("kind: grid", "numRuns: 3", "params: {lr: {kind: linspace, value: {start: 0.1, stop: 1, num: 3}},"
         " epochs: {kind: range, value: '1:10:2'}, day: {kind: daterange, value: ['2024-06-01', '2024-06-09', 2]}}"),
        ("kind: random", "numRuns: 20", "seed: 3", "concurrency: 4",
         "params: {lr: {kind: qloguniform, value: [0.001, 0.1, 0.001]}, epochs: {kind: range, value: [1, 10, 1]},"
         " act: {kind: pchoice, value: [[relu, 0.5], [gelu, 0.5]]}}"),
        ("kind: random", "numRuns: 5", "params: {lr: {kind: normal, value: {loc: 0, scale: 1}},"
         " epochs: {kind: qnormal, value: [10, 2, 1]}}"),
        ("kind: random", "numRuns: 5", "params: {lr: {kind: lognormal, value: '0:1'},"
         " epochs: {kind: qlognormal, value: [1, 1, 1, 3]}}"),
        ("kind: random", "numRuns: 5", "params: {lr: {kind: geomspace, value: [1, 100, 3]},"
         " epochs: {kind: quniform, value: [1, 10, 1]}}"),
        ("kind: mapping", "values: [{lr: 0.1, epochs: 1}, {lr: 0.2, epochs: 2}]"),
        ("kind: mapping", "values: '{{ rows }}'"),
        ("kind: bayes", "numInitialRuns: 5", "maxIterations: 10", "metric: {name: loss, optimization: minimize}",
         "utilityFunction: {acquisitionFunction: ei, eps: 0.1, gaussianProcess: {kernel: rbf}}",
         "params: {lr: {kind: uniform, value: [0, 1]}, epochs: {kind: range, value: [1, 10, 1]}}"),
        ("kind: tpe", "numRuns: 10", "maxIterations: 5", "metric: {name: loss, optimization: minimize}",
         "params: {lr: {kind: loguniform, value: [0.001, 0.1]}, epochs: {kind: choice, value: [1, 2]}}"),
        ("kind: iterative", "maxIterations: 5", "tuner: {hubRef: my-tuner}",
         "params: {lr: {kind: choice, value: [0.1]}, epochs: {kind: choice, value: [1, 2]}}"),
        ("kind: random", "numRuns: 5",
         "params: {lr: {kind: uniform, value: [0, 1]}, epochs: {kind: choice, value: [1]}}",
         "earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 0.01, optimization: minimize,"
         " policy: {kind: truncation, percent: 50, evaluationInterval: 1}},"
         " {kind: failure_early_stopping, percent: 50}]"),
    ],
)  # fmt: skip
def test_real_shaped_matrices_check(lines: tuple[str, ...]) -> None:
    result = check(sweep(*lines))
    assert result.valid, result.errors
    # polynb runs every kind but `iterative` (a custom tuner component), refused with the reason, and `bayes`
    # where Optuna's GPSampler cannot run (no torch/scipy installed).
    refused = "kind: iterative" in lines or ("kind: bayes" in lines and not gp_available())
    expected = ["matrix.kind"] if refused else []
    assert [w.path for w in result.unsupported] == expected


@pytest.mark.parametrize(
    ("lines", "path", "fragment"),
    [
        (("kind: random", "params: {lr: {kind: uniform, value: [0, 1]}}"), "matrix.numRuns", "missing required"),
        (("kind: random", "numRun: 5", "params: {}"), "matrix.numRun", "did you mean 'numRuns'"),
        (("kind: random", "numRuns: 0", "params: {}"), "matrix.numRuns", "positive integer"),
        (("kind: random", "numRuns: '{{ n }}'", "params: {}"), "matrix.numRuns", "cannot take a `{{ ... }}`"),
        (("kind: random", "numRuns: 2", "seed: '1'", "params: {}"), "matrix.seed", "expected an integer"),
        (("kind: grid", "params: {lr: {kind: uniform, value: [0, 1]}}"), "matrix.params", "grid search takes"),
        (("kind: bayes", "numInitialRuns: 1", "maxIterations: 1", "metric: {name: loss}",
          "params: {lr: {kind: normal, value: [0, 1]}}"), "matrix.params", "`uniform` distributions"),
        (("kind: bayes", "numInitialRuns: 1", "maxIterations: 1", "metric: {name: loss}", "utilityFunction: {eps: 1}",
          "params: {lr: {kind: uniform, value: [0, 1]}}"), "matrix.utilityFunction", "needs `kappa`"),
        (("kind: hyperopt", "params: {}"), "matrix.kind", "`kind: tpe`"),
        (("kind: random", "numRuns: 2", "params: {lr: {kind: uniforms, value: [0, 1]}}"), "matrix.params.lr.kind",
         "did you mean 'uniform'"),
        (("kind: random", "numRuns: 2", "params: {lr: {kind: uniform, valeu: [0, 1]}}"), "matrix.params.lr.valeu",
         "did you mean 'value'"),
        (("kind: random", "numRuns: 2", "params: {epochs: {kind: range, value: [5, 1, 1]}}"),
         "matrix.params.epochs.value", "start < stop"),
        (("kind: random", "numRuns: 2", "params: {epochs: {kind: range, value: [1, 5, 0]}}"),
         "matrix.params.epochs.value", "`step` of a `range` must not be 0"),
        (("kind: random", "numRuns: 2", "params: {epochs: {kind: range, value: '1:5'}}"),
         "matrix.params.epochs.value", "3 values, got 2"),
        (("kind: random", "numRuns: 2", "params: {epochs: {kind: linspace, value: [1, 5, 2.5]}}"),
         "matrix.params.epochs.value", "`num`: expected an integer"),
        (("kind: random", "numRuns: 2", "params: {epochs: {kind: pchoice, value: [[1, 0.7], [2, 0.7]]}}"),
         "matrix.params.epochs.value", "sum to 1.4"),
        (("kind: random", "numRuns: 2", "params: {epochs: {kind: pchoice, value: [[1, 1]]}}"),
         "matrix.params.epochs.value", "float probability"),
        (("kind: random", "numRuns: 2", "params: {day: {kind: daterange, value: '2024-01-01:2024-02-01:1'}}"),
         "matrix.params.day.value", "a list or a mapping"),
        (("kind: random", "numRuns: 2", "params: {act: {kind: range, value: [1, 5, 1]}}"), "matrix.params.act",
         "must be of type int or float (it is str)"),
        (("kind: random", "numRuns: 2", "params: {act: {kind: daterange, value: ['2024-01-01', '2024-02-01', 1]}}"),
         "matrix.params.act", "must be of type date"),
        (("kind: random", "numRuns: 2", "params: {lr: {kind: uniform, value: [0, 1]}}",
          "earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 0.1, optimization: down}]"),
         "matrix.earlyStopping[0].optimization", "'down' is not"),
        (("kind: random", "numRuns: 2", "params: {lr: {kind: uniform, value: [0, 1]}}",
          "earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 0.1, optimization: minimize,"
          " policy: {kind: truncation, percent: 50}}]"),
         "matrix.earlyStopping[0].policy.evaluationInterval", "missing required"),
        (("kind: mapping", "values: [{lr: 0.1}, {lr: 0.2, epochs: 1}]"), "component.inputs[1]",
         "input `epochs` is required"),
    ],
)  # fmt: skip
def test_matrix_mistakes_are_reported_where_they_are(lines: tuple[str, ...], path: str, fragment: str) -> None:
    result = check(sweep(*lines))
    assert not result.valid
    assert any(e.path == path and fragment in e.message and e.line > 0 for e in result.errors), result.errors


def test_only_the_first_row_of_a_mapping_gives_inputs() -> None:
    """As Polyaxon: rows are one shape, the first one names the inputs."""
    rows = RandomSearch.model_validate({"kind": "random", "numRuns": 1, "params": {"a": {"kind": "choice",
                                                                                   "value": [1]}}})  # fmt: skip
    assert gives_input(rows, "a") and not gives_input(rows, "b")


def test_a_generator_value_may_be_a_param_reference() -> None:
    assert HpParam.model_validate({"kind": "range", "value": "{{ params.space }}"}).value == "{{ params.space }}"


def test_hyperband_resume_and_early_stopping_policies_are_warned_not_applied() -> None:
    text = sweep(
        "kind: hyperband",
        "maxIterations: 9",
        "eta: 3",
        "resume: true",
        "resource: {name: epochs, type: int}",
        "metric: {name: loss, optimization: minimize}",
        "params: {lr: {kind: uniform, value: [0, 1]}}",
        "earlyStopping: [{kind: metric_early_stopping, metric: loss, value: 0.1, optimization: minimize,"
        " policy: {kind: median, evaluationInterval: 1}}]",
    )
    result = check(text)
    assert result.valid and not result.unsupported
    assert sorted(w.path for w in result.warnings) == ["matrix.earlyStopping[0].policy", "matrix.resume"]
