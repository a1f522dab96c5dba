"""A nested DAG from the terminal: ``polynb run`` prints its ops as ``outer-op/inner-op``, ``polynb ls --all``
lists them under their op, ``polynb events`` and ``polynb logs`` of the top-level DAG include them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, Cli
from support.execkit import wait_dead

from polynb.lifecycle import Status
from polynb.store import RunRecord, Store

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
    code, summary = cli.run_json("run", "-f", str(cli.write("nested.yaml", NESTED)), "--json")
    assert code == 0
    first = next(op for op in summary["ops"] if op["name"] == "first")
    assert [(op["name"], op["status"]) for op in first["ops"]] == [("a", "succeeded")]
    code, everything = cli.run_json("ls", "--all", "--json")
    assert code == 0
    assert [(r["name"], r["kind"], r["status"]) for r in everything[:4]] == [
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


SLEEPY_NESTED = """
version: 1.1
kind: component
name: sleepy
run:
  kind: dag
  operations:
    - name: first
      component:
        name: inner
        run:
          kind: dag
          operations:
            - {name: sleeper, component: {run: {kind: job, container: {command: [sleep, "300"]}}}}
    - {name: after, dependencies: [first], component: {run: {kind: job, container: {command: ["true"]}}}}
"""


def sleeper(cli: Cli, store: Store) -> RunRecord | None:
    return next((r for r in store.list_runs() if r.name == "sleeper"), None)


@pytest.mark.parametrize("engine_alive", [True, False])
def test_stop_of_the_outer_dag_stops_the_nested_dags_processes(cli: Cli, engine_alive: bool) -> None:
    proc = cli.start("run", "-f", str(cli.write("nested.yaml", SLEEPY_NESTED)))
    cli.wait_for(lambda s: (op := sleeper(cli, s)) is not None and op.status == Status.RUNNING, "the sleeper running")
    if not engine_alive:
        proc.kill()  # the engine dies; the op's process (in a session of its own) lives on
    result = cli.run("stop", "sleepy", "--grace", "2")
    assert result.returncode == 0, result.stderr
    assert ("by the engine running it" if engine_alive else "directly") in result.stdout
    proc.communicate(timeout=DEADLOCK_GUARD)
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.STOPPED
        statuses = {r.name: r.status for r in store.list_runs() if r.hook_of is None}
        assert statuses == dict.fromkeys(("sleepy", "first", "sleeper", "after"), Status.STOPPED)
        held = sleeper(cli, store)
        assert held is not None and held.handle is not None
    # Its shim, which ended the op, ends too: once its stopped status is written it only tops up the spare run
    # folders (at niceness 19: on a busy machine that can outlast the stop by a moment).
    wait_dead(int(held.handle["shim_pid"]))


def test_run_json_lists_a_retried_nested_dags_current_ops_once(cli: Cli, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    flaky = f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"; [ "$n" -ge 2 ]'
    text = NESTED.replace("    - name: first\n", "    - name: first\n      termination: {maxRetries: 1}\n", 1)
    text = text.replace('"echo hello {{ x }}"', repr(flaky), 1)
    code, summary = cli.run_json("run", "-f", str(cli.write("retried.yaml", text)), "--json")
    assert code == 0, summary
    first = next(op for op in summary["ops"] if op["name"] == "first")
    assert (first["status"], [(op["name"], op["status"]) for op in first["ops"]]) == (
        "succeeded",
        [("a", "succeeded")],
    )


SWEEP = """
version: 1.1
kind: component
name: swept
run:
  kind: dag
  operations:
    - name: prep
      component: {run: {kind: job, container: {command: [echo, prep]}}}
    - name: tune
      dependencies: [prep]
      matrix: {kind: grid, params: {lr: {kind: choice, value: [0.1, 0.2]}}}
      component:
        inputs: [{name: lr, type: float}]
        run: {kind: job, container: {command: [sh, -c, "echo trial {{ lr }}; sleep SLEEP"]}}
"""


def test_run_events_and_logs_of_a_dag_show_its_sweeps_trials(cli: Cli) -> None:
    result = cli.run("run", "-f", str(cli.write("sweep.yaml", SWEEP.replace("SLEEP", "0"))))
    assert result.returncode == 0, result.stderr
    assert "tune/tune-1" in result.stdout and "tune/tune-2" in result.stdout
    code, events = cli.run_json("events", "swept", "--json")
    assert code == 0
    done = sorted(e["op"] for e in events if e["kind"] == "run_status_succeeded")
    assert done == ["prep", "swept", "tune", "tune/tune-1", "tune/tune-2"]
    logs = sorted(cli.run("logs", "swept").stdout.splitlines())
    assert logs == ["prep | prep", "tune/tune-1 | trial 0.1", "tune/tune-2 | trial 0.2"]


def test_stop_of_a_dag_with_no_engine_stops_its_sweeps_trials(cli: Cli) -> None:
    proc = cli.start("run", "-f", str(cli.write("sweep.yaml", SWEEP.replace("SLEEP", "300"))))

    def trials_running(store: Store) -> bool:
        trials = [r for r in store.list_runs() if r.name.startswith("tune-")]
        return len(trials) == 2 and all(r.status == Status.RUNNING for r in trials)

    cli.wait_for(trials_running, "both trials running")
    proc.kill()  # the engine dies; the trials' processes live on
    result = cli.run("stop", "swept", "--grace", "2")
    assert result.returncode == 0, result.stderr
    proc.communicate(timeout=DEADLOCK_GUARD)
    with cli.store() as store:
        trials = [r for r in store.list_runs() if r.name.startswith("tune-")]
        assert {r.status for r in trials} == {Status.STOPPED}, [(r.name, r.status) for r in trials]
        pids = [int(r.handle["shim_pid"]) for r in trials if r.handle is not None]
    assert len(pids) == 2
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
