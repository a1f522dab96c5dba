"""The join query language (Polyaxon's runs queries), sort, limit and list aggregation, on run records."""

from __future__ import annotations

from typing import Any

import pytest

from polynb.compiler.check import check
from polynb.compiler.joins import Condition, QueryError, aggregate, parse_query, parse_sort, select

RUNS: list[dict[str, Any]] = [
    {"uuid": "a" * 32, "name": "train-1", "kind": "job", "status": "succeeded", "created_at": "2024-06-01T10:00:00",
     "inputs": {"lr": 0.1}, "outputs": {"loss": 0.30}, "metrics": {"loss": 0.30}, "tags": ["sweep"]},
    {"uuid": "b" * 32, "name": "train-2", "kind": "job", "status": "succeeded", "created_at": "2024-06-02T10:00:00",
     "inputs": {"lr": 0.01}, "outputs": {"loss": 0.05}, "metrics": {"loss": 0.05}, "tags": ["sweep", "best"]},
    {"uuid": "c" * 32, "name": "train-3", "kind": "job", "status": "failed", "created_at": "2024-06-03T10:00:00",
     "inputs": {"lr": 1.0}, "outputs": {}, "metrics": {}, "tags": []},
    {"uuid": "d" * 32, "name": "eval", "kind": "service", "status": "succeeded", "created_at": "2024-06-04T10:00:00",
     "inputs": {}, "outputs": {"loss": 0.2}, "metrics": {"loss": 0.2}, "tags": []},
]  # fmt: skip


def names(query: str, **kwargs: Any) -> list[str]:
    return [str(r["name"]) for r in select(RUNS, query, **kwargs)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status: succeeded", ["train-1", "train-2", "eval"]),
        ("status: ~succeeded", ["train-3"]),
        ("status: succeeded|failed, kind: job", ["train-1", "train-2", "train-3"]),
        ("metrics.loss: <0.1", ["train-2"]),
        ("metrics.loss: ~<0.1", ["train-1", "train-3", "eval"]),  # a negation holds where the test does not
        ("metrics.loss: 0.1 .. 0.25", ["eval"]),
        ("metrics.loss: nil", ["train-3"]),
        ("metrics.loss: ~nil, kind: job", ["train-1", "train-2"]),
        ("params.lr: 0.01", ["train-2"]),
        ("name: train%", ["train-1", "train-2", "train-3"]),
        ("name: %val", ["eval"]),
        ("tags: best", ["train-2"]),
        ("created_at: >=2024-06-03", ["train-3", "eval"]),
        ("", ["train-1", "train-2", "train-3", "eval"]),
    ],
)
def test_queries_select_as_polyaxons_query_language(query: str, expected: list[str]) -> None:
    assert names(query) == expected


def test_sort_limit_and_offset() -> None:
    assert names("metrics.loss: ~nil", sort="metrics.loss") == ["train-2", "eval", "train-1"]
    assert names("status: succeeded", sort="-metrics.loss", limit=2) == ["train-1", "eval"]
    assert names("kind: job", sort="-created_at", limit=1, offset=1) == ["train-2"]
    assert names("", sort="metrics.loss") == ["train-2", "eval", "train-1", "train-3"]  # unset last


def test_params_are_aggregated_as_lists() -> None:
    best = select(RUNS, "kind: job, status: succeeded", sort="metrics.loss")
    values = aggregate(best, {"losses": "outputs.loss", "lrs": "inputs.lr", "uuids": "globals.uuid", "all": "inputs"})
    assert values == {"losses": [0.05, 0.30], "lrs": [0.01, 0.1], "uuids": ["b" * 32, "a" * 32],
                      "all": [{"lr": 0.01}, {"lr": 0.1}]}  # fmt: skip


def test_parsing() -> None:
    assert parse_query("metrics.loss: <0.01, project.name: {{ globals.project_name }}") == [
        Condition("metrics.loss", False, "lt", ("0.01",)),
        Condition("project.name", False, "eq", ("__ref__",)),
    ]
    assert parse_sort("created_at, -metrics.loss") == [("created_at", False), ("metrics.loss", True)]
    assert parse_query("{{ params.query }}") == [] and parse_sort("{{ params.sort }}") == []  # read once rendered
    mistakes = [
        ("status succeeded", "write `field: value`"),
        ("stauts: running", "not a run field"),
        ("metric.loss: <1", "not a run field"),
        ("status:", "no value"),
        ("duration: 1 ..", "range"),
    ]
    for bad, fragment in mistakes:
        with pytest.raises(QueryError, match=fragment):
            parse_query(bad)


def test_check_reports_a_bad_query_at_its_line() -> None:
    text = """\
kind: operation
joins:
  - query: "stauts: succeeded"
    sort: "-metrics.loss"
    params: {losses: {value: outputs.loss}}
component:
  inputs: [{name: losses, type: float, isList: true}]
  run: {kind: job, container: {command: [python, report.py]}}
"""
    result = check(text)
    assert not result.valid
    error = result.errors[0]
    assert (error.line, error.path) == (3, "joins[0].query") and "`stauts` is not a run field" in error.message
    assert check(text.replace("stauts", "status")).valid
    bad_sort = check(text.replace("stauts", "status").replace("-metrics.loss", "-metric"))
    assert bad_sort.errors[0].path == "joins[0].sort"
