"""A nested DAG from the terminal: ``polynb run`` prints its ops as ``outer-op/inner-op``, ``polynb ls --all``
lists them under their op, ``polynb events`` and ``polynb logs`` of the top-level DAG include them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import Cli

NESTED = """
version: 1.1
kind: component
name: outer
run:
  kind: dag
  operations:
    - name: first
      params: {x: {value: 3}}
      component:
        name: inner
        inputs: [{name: x, type: int}]
        run:
          kind: dag
          operations:
            - name: a
              params: {x: {ref: dag, value: inputs.x}}
              component:
                inputs: [{name: x, type: int}]
                run: {kind: job, container: {command: [sh, -c, "echo hello {{ x }}"]}}
    - name: after
      dependencies: [first]
      component: {run: {kind: job, container: {command: [echo, after]}}}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def test_run_ls_events_and_logs_show_the_nested_dags_ops(cli: Cli) -> None:
    result = cli.run("run", "-f", str(cli.write("nested.yaml", NESTED)))
    assert result.returncode == 0, result.stderr
    assert "first/a" in result.stdout
    code, everything = cli.run_json("ls", "--all", "--json")
    assert code == 0
    assert [(r["name"], r["kind"], r["status"]) for r in everything] == [
        ("outer", "dag", "succeeded"),
        ("first", "dag", "succeeded"),
        ("a", "job", "succeeded"),
        ("after", "job", "succeeded"),
    ]
    assert everything[2]["dag_uuid"] == everything[1]["uuid"]
    code, events = cli.run_json("events", "outer", "--json")
    assert code == 0
    done = [e["op"] for e in events if e["kind"] == "run_status_succeeded"]
    assert done == ["first/a", "first", "after", "outer"]
    logs = cli.run("logs", "outer").stdout.splitlines()
    assert logs == ["first/a | hello 3", "after | after"]
