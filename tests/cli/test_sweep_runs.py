"""``polynb run`` of a matrix and ``polynb ls``: the sweep at the top, its trials under it with their params."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import Cli

SWEEP = """
version: 1.1
kind: operation
name: sweep
matrix:
  kind: grid
  concurrency: 2
  params:
    n: {kind: range, value: [1, 4, 1]}
component:
  name: count
  inputs: [{name: n, type: int}]
  run: {kind: job, container: {command: [sh, -c, "echo {{ n }}"]}}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def test_polynb_run_runs_a_sweep_and_ls_shows_its_trials_under_it(cli: Cli) -> None:
    result = cli.run("run", "-f", str(cli.write("sweep.yaml", SWEEP)))
    assert result.returncode == 0, result.stderr
    code, tops = cli.run_json("ls", "--json")
    assert code == 0
    assert [(r["name"], r["kind"], r["status"]) for r in tops] == [("sweep", "matrix", "succeeded")]
    code, everything = cli.run_json("ls", "--all", "--json")
    trials = everything[1:]
    assert [r["name"] for r in trials] == ["sweep-1", "sweep-2", "sweep-3"]
    assert [r["trial"]["params"] for r in trials] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert {r["dag_uuid"] for r in trials} == {tops[0]["uuid"]}
    table = cli.run("ls", "--all").stdout
    assert "(grid, 3 trials)" in table
    assert "sweep-2  n=2" in table


def test_polynb_events_of_a_sweep_has_each_trials_statuses(cli: Cli) -> None:
    assert cli.run("run", "-f", str(cli.write("sweep.yaml", SWEEP))).returncode == 0
    code, events = cli.run_json("events", "sweep", "--json")
    assert code == 0
    done = {e["op"] for e in events if e["kind"] == "run_status_succeeded"}
    assert done == {"sweep", "sweep-1", "sweep-2", "sweep-3"}


NOTE = """
version: 1.1
kind: component
name: note
inputs:
- {name: name, type: str, isOptional: true, value: none}
- {name: status, type: str, isOptional: true, value: none}
run: {kind: job, container: {command: [sh, -c, "echo noted $0 $1", "{{ name }}", "{{ status }}"]}}
"""


def test_the_hook_of_a_sweeps_operation_is_shown_with_the_sweep(cli: Cli) -> None:
    # The operation's hooks run once for the sweep (docs/semantics.md, Sweeps): its run, its events and its logs
    # are the sweep's, as a DAG's own hooks are the DAG's.
    (cli.hub / "note.yaml").write_text(textwrap.dedent(NOTE))
    hooked = SWEEP.replace("name: sweep\n", "name: sweep\nhooks: [{hubRef: note}]\n")
    result = cli.run("run", "-f", str(cli.write("sweep.yaml", hooked)))
    assert result.returncode == 0, result.stderr
    assert "sweep-note" in result.stdout, result.stdout
    code, events = cli.run_json("events", "sweep", "--json")
    assert code == 0
    assert {e["op"] for e in events if e["kind"] == "run_status_succeeded"} >= {"sweep", "sweep-note"}
    logs = cli.run("logs", "sweep")
    assert "noted sweep succeeded" in logs.stdout, logs.stdout


DAG_SWEEP = """
version: 1.1
kind: component
name: pipeline
run:
  kind: dag
  operations:
    - name: tune
      matrix: {kind: mapping, values: [{n: 1}, {n: 2}]}
      component:
        inputs: [{name: n, type: int}]
        run: {kind: job, container: {command: [sh, -c, "echo {{ n }}"]}}
"""


def test_ls_shows_the_trials_of_a_dags_sweeping_op_under_it(cli: Cli) -> None:
    assert cli.run("run", "-f", str(cli.write("dag.yaml", DAG_SWEEP))).returncode == 0
    code, everything = cli.run_json("ls", "--all", "--json")
    assert code == 0
    assert [r["name"] for r in everything] == ["pipeline", "tune", "tune-1", "tune-2"]
    # The sweeping op's run is of kind matrix (Polyaxon's run kind for it), as a top-level sweep's; its trials jobs.
    assert [r["kind"] for r in everything] == ["dag", "matrix", "job", "job"]
    assert [r["trial"]["params"] for r in everything[2:]] == [{"n": 1}, {"n": 2}]
    # `polynb logs` of the op prints its trials' logs, as for a top-level sweep (the op has no process).
    logs = cli.run("logs", everything[1]["uuid"])
    assert logs.returncode == 0
    assert sorted(line for line in logs.stdout.splitlines() if line.strip()) == ["tune-1 | 1", "tune-2 | 2"]
