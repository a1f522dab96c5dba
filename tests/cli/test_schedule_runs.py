"""``polynb run -f`` of a scheduled op runs until the schedule ends; ``polynb ls`` shows its ticks' runs under
the schedule run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import Cli

EVERY_SECOND = """
version: 1.1
kind: operation
name: every
schedule: {kind: interval, frequency: 1, maxRuns: 2}
component:
  name: hello
  run: {kind: job, container: {command: [sh, -c, "echo tick"]}}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def test_polynb_run_of_a_schedule_ends_with_its_ticks_runs_and_ls_shows_them(cli: Cli) -> None:
    path = str(cli.write("every.yaml", EVERY_SECOND))
    check = cli.run("check", "-f", path)
    assert check.returncode == 0, check.stdout + check.stderr
    result = cli.run("run", "-f", path)
    assert result.returncode == 0, result.stderr
    assert "ScheduleDone: 2 ticks done" in result.stdout
    code, tops = cli.run_json("ls", "--json")
    assert code == 0
    assert [(r["name"], r["kind"], r["status"]) for r in tops] == [("every", "schedule", "succeeded")]
    code, everything = cli.run_json("ls", "--all", "--json")
    ticks = everything[1:]
    assert [(r["name"], r["status"], r["tick"]["index"]) for r in ticks] == [
        ("every-1", "succeeded", 1),
        ("every-2", "succeeded", 2),
    ]
    assert {r["dag_uuid"] for r in ticks} == {tops[0]["uuid"]}
    table = cli.run("ls", "--all").stdout
    assert "(interval schedule, 2 ticks)" in table
    assert "every-2  tick at" in table
    logs = cli.run("logs", ticks[1]["uuid"][:12])
    assert logs.returncode == 0 and "tick" in logs.stdout, logs.stdout + logs.stderr


def test_polynb_check_still_positions_a_bad_cron_expression(cli: Cli) -> None:
    path = cli.write("bad.yaml", EVERY_SECOND.replace("{kind: interval, frequency: 1, maxRuns: 2}",
                                                      "{kind: cron, cron: '0 25 * * *'}"))  # fmt: skip
    result = cli.run("check", "-f", str(path))
    assert result.returncode != 0
    assert f"{path}:5:" in result.stdout + result.stderr
    assert "hour 25 is out of range 0-23" in result.stdout + result.stderr


IN_A_DAG = """
version: 1.1
kind: component
name: nightly
run:
  kind: dag
  operations:
    - name: every
      schedule: {kind: interval, frequency: 1, maxRuns: 2}
      component:
        name: hello
        run: {kind: job, container: {command: [sh, -c, "echo tick at {{ globals.schedule_at }}"]}}
    - name: report
      dependencies: [every]
      component: {name: report, run: {kind: job, container: {command: [sh, -c, "echo done"]}}}
"""


def test_polynb_run_of_a_dag_with_a_scheduled_op_waits_for_the_schedule_and_ls_nests_its_ticks(cli: Cli) -> None:
    path = str(cli.write("nightly.yaml", IN_A_DAG))
    check = cli.run("check", "-f", path)
    assert check.returncode == 0, check.stdout + check.stderr
    result = cli.run("run", "-f", path)
    assert result.returncode == 0, result.stdout + result.stderr
    code, everything = cli.run_json("ls", "--all", "--json")
    assert code == 0
    rows = [(r["name"], r["kind"], r["status"]) for r in everything]
    assert rows == [
        ("nightly", "dag", "succeeded"),
        ("every", "schedule", "succeeded"),
        ("every-1", "job", "succeeded"),
        ("every-2", "job", "succeeded"),
        ("report", "job", "succeeded"),
    ]
    tick = everything[3]
    logs = cli.run("logs", tick["uuid"][:12])
    assert f"tick at {tick['tick']['at']}" in logs.stdout, logs.stdout + logs.stderr
    # The DAG's logs and events include its schedule's ticks, under the op (`every/every-2`).
    dag_logs = cli.run("logs", everything[0]["uuid"][:12])
    assert f"tick at {tick['tick']['at']}" in dag_logs.stdout and "every/every-2" in dag_logs.stdout, dag_logs.stdout
    events = cli.run("events", everything[0]["uuid"][:12])
    assert "every/every-1" in events.stdout and "on_schedule" in events.stdout, events.stdout
