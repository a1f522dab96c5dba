"""joins: Polyaxon's V1Join (a `query` over runs, params aggregated as lists), checked field by field."""

from __future__ import annotations

import pytest

from polynb.compiler.check import check
from polynb.compiler.pipeline import build_pipeline
from polynb.spec.errors import SpecErrors
from polynb.spec.joins import join_value_problem
from polynb.spec.load import load_text

HEAD = """\
kind: operation
name: report
component:
  inputs:
    - {name: losses, type: float, isList: true}
    - {name: best, type: float, isOptional: true}
  run: {kind: job, container: {command: [python, report.py]}}
"""


def first_error(text: str) -> tuple[int, int, str, str]:
    result = check(text)
    assert not result.valid, "expected an error"
    e = result.errors[0]
    return e.line, e.column, e.path, e.message


def test_a_join_feeds_a_list_input_and_builds() -> None:
    text = (
        HEAD
        + """\
joins:
  - query: "metrics.loss: <0.01, kind: job"
    sort: "-metrics.loss"
    limit: 5
    offset: 10
    params:
      losses: {value: outputs.loss}
      uuids: {value: globals.uuid, contextOnly: true}
"""
    )
    result = check(text)
    assert result.valid, result.errors
    assert not result.unsupported  # the scheduler runs the query when the op compiles (scheduler/joining.py)
    assert build_pipeline(load_text(text)).spec.joins is not None


def test_a_joins_ref_and_artifacts_init_are_refused_with_the_reason() -> None:
    text = HEAD + "joins:\n  - query: 'status: succeeded'\n    ref: runs\n    params: {losses: {value: outputs.loss}}\n"
    assert any("`ref` is not supported yet" in w.message for w in check(text).unsupported)
    with pytest.raises(SpecErrors, match="ref"):
        build_pipeline(load_text(text))


def test_the_query_is_required_and_ref_is_optional() -> None:
    line, _, path, message = first_error(HEAD + "joins:\n  - ref: runs\n    params: {losses: {value: outputs.loss}}\n")
    assert (line, path, message) == (9, "joins[0].query", "missing required field 'query'")


def limit_text(limit: str) -> str:
    return (
        HEAD
        + f"joins:\n  - query: 'status: succeeded'\n    limit: {limit}\n"
        + "    params: {losses: {value: outputs.loss}}\n"
    )


@pytest.mark.parametrize("limit", ["'{{ params.n }}'", "3", "0"])
def test_limit_is_an_integer_or_a_param_reference(limit: str) -> None:
    text = limit_text(limit)
    assert check(text).valid


@pytest.mark.parametrize("limit", ["ten", "'10'", "true"])
def test_limit_that_is_neither_is_an_error_at_its_position(limit: str) -> None:
    text = limit_text(limit)
    line, column, path, message = first_error(text)
    assert (line, column, path) == (10, 12, "joins[0].limit")
    assert "expected an integer or a `{{ ... }}` param reference" in message


def test_a_join_param_into_an_input_that_is_not_a_list_is_an_error() -> None:
    text = (
        HEAD
        + "joins:\n  - query: 'status: succeeded'\n"
        + "    params: {losses: {value: outputs.loss}, best: {value: outputs.loss}}\n"
    )
    line, _, path, message = first_error(text)
    assert (line, path) == (10, "joins[0].params.best.value")
    assert "isList: true" in message


def test_a_join_param_needs_a_value_and_has_no_short_form() -> None:
    text = HEAD + "joins:\n  - query: 'status: succeeded'\n    params: {losses: {contextOnly: true}}\n"
    assert "needs a `value`" in first_error(text)[3]
    text = HEAD + "joins:\n  - query: 'status: succeeded'\n    params: {losses: outputs.loss}\n"
    assert first_error(text)[2:] == ("joins[0].params.losses", "expected a mapping, got 'outputs.loss'")


def test_a_misspelled_join_key_gets_a_suggestion() -> None:
    text = HEAD + "joins:\n  - query: 'status: succeeded'\n    sortt: x\n    params: {losses: {value: outputs.loss}}\n"
    assert first_error(text)[2:] == ("joins[0].sortt", "unexpected key 'sortt'; did you mean 'sort'?")


def test_a_join_param_ref_is_accepted_with_a_warning() -> None:
    text = HEAD + "joins:\n  - query: 'status: succeeded'\n    params: {losses: {value: outputs.loss, ref: ops.x}}\n"
    result = check(text)
    assert result.valid
    assert any("`ref` is ignored" in w.message for w in result.warnings)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("outputs.loss", True),
        ("inputs", True),
        ("artifacts.base", True),
        ("artifacts.lineage.path", True),
        ("globals.uuid", True),
        ({"files": ["a"]}, True),
        ("globals", False),
        ("foo.bar", False),
        ("outputs.a.b", False),
        ("a.b.c.d", False),
        (3, False),
    ],
)
def test_what_a_join_param_may_read(value: object, ok: bool) -> None:
    assert (join_value_problem(value) is None) == ok
