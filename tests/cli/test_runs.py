"""``polynb ls``, ``logs``, ``events`` and ``stop``: reading and acting on runs from other processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, SLEEPY_DAG, SMALL_DAG, Cli

from polynb.lifecycle import Status
from polynb.store import AmbiguousRunError, NewRun, Store, resolve_run

SLOW_PRINTER = """
version: 1.1
kind: component
name: printer
run:
  kind: dag
  operations:
    - name: talk
      component:
        run:
          kind: job
          container:
            command: [sh, -c, "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"]
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


@pytest.fixture
def small(cli: Cli) -> dict[str, str]:
    """A finished run of the small DAG: {"dag": uuid, "a": uuid, "b": uuid}."""
    code, doc = cli.run_json("run", "-f", str(cli.write("dag.yaml", SMALL_DAG)), "--json")
    assert code == 0
    return {"dag": doc["uuid"], **{op["name"]: op["uuid"] for op in doc["ops"]}}


def test_ls_lists_top_level_runs_and_with_all_their_ops(cli: Cli, small: dict[str, str]) -> None:
    code, runs = cli.run_json("ls", "--json")
    assert code == 0
    assert [(r["uuid"], r["name"], r["status"]) for r in runs] == [(small["dag"], "small", "succeeded")]
    assert runs[0]["duration"] is not None
    code, everything = cli.run_json("ls", "--all", "--json")
    assert [r["name"] for r in everything] == ["small", "a", "b"]
    assert {r["dag_uuid"] for r in everything[1:]} == {small["dag"]}
    table = cli.run("ls").stdout
    assert small["dag"][:12] in table
    assert "succeeded" in table


RETRIED_DAG = """
version: 1.1
kind: component
name: retried
termination: {{maxRetries: 1}}
run:
  kind: dag
  operations:
    - name: prepare
      component:
        run: {{kind: job, container: {{command: [sh, -c, "echo preparing"]}}}}
    - name: train
      dependencies: [prepare]
      component:
        run:
          kind: job
          container:
            command:
              - sh
              - -c
              - 'if [ -e "{marker}" ]; then echo second try; else touch "{marker}"; echo first try; exit 1; fi'
"""


def test_a_retried_dag_shows_the_ops_of_its_last_attempt_and_keeps_every_event(cli: Cli) -> None:
    """Issue 11 item 4: a DAG's ``maxRetries`` runs its ops anew, as new runs with the same names."""
    path = cli.write("retried.yaml", RETRIED_DAG.format(marker=cli.tmp / "marker"))
    code, doc = cli.run_json("run", "-f", str(path), "--json")
    assert code == 0
    with cli.store() as store:
        current = store.children(doc["uuid"])
        assert len(store.children(doc["uuid"], all_attempts=True)) == 4
    assert (doc["status"], doc["attempt"]) == ("succeeded", 2)
    assert [(op["name"], op["uuid"], op["status"]) for op in doc["ops"]] == [
        (r.name, r.uuid, "succeeded") for r in current
    ]
    code, everything = cli.run_json("ls", "--all", "--json")
    assert [(r["name"], r["uuid"]) for r in everything] == [("retried", doc["uuid"])] + [
        (r.name, r.uuid) for r in current
    ]
    assert everything[0]["attempt"] == 2
    assert cli.run("ls", "--all").stdout.count("train") == 1
    assert cli.run("logs", "retried").stdout.splitlines() == ["prepare | preparing", "train | second try"]
    code, events = cli.run_json("events", "retried", "--json")
    kinds = [(e["op"], e["kind"]) for e in events]
    assert kinds.count(("train", "run_status_created")) == 2
    assert kinds.count(("retried", "run_status_retrying")) == 1


def test_ls_with_no_runs_says_so(cli: Cli) -> None:
    result = cli.run("ls")
    assert result.returncode == 0
    assert "no runs" in result.stdout


def test_logs_by_name_prefix_or_uuid(cli: Cli, small: dict[str, str]) -> None:
    by_dag_name = cli.run("logs", "small")
    assert by_dag_name.returncode == 0, by_dag_name.stderr
    assert by_dag_name.stdout.splitlines() == ["a | hello from a", "a | second line"]
    by_prefix = cli.run("logs", small["a"][:8])
    assert by_prefix.stdout.splitlines() == ["hello from a", "second line"]
    assert cli.run("logs", small["a"]).stdout == by_prefix.stdout


def test_a_name_means_the_latest_run_of_that_name(cli: Cli, small: dict[str, str]) -> None:
    code, again = cli.run_json("run", "-f", str(cli.tmp / "dag.yaml"), "--json")
    assert code == 0
    code, events = cli.run_json("events", "small", "--json")
    assert {e["dag"] or e["run"] for e in events} == {again["uuid"]}


def test_unknown_run_is_an_error(cli: Cli, small: dict[str, str]) -> None:
    for command in ("logs", "events", "stop"):
        result = cli.run(command, "no-such-run")
        assert result.returncode == 1
        assert "no-such-run" in result.stderr


def test_events_of_a_dag_with_its_ops_in_seq_order(cli: Cli, small: dict[str, str]) -> None:
    code, events = cli.run_json("events", small["dag"][:10], "--json")
    assert code == 0
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    with cli.store() as store:
        assert seqs == [e.seq for e in store.events(dag_uuid=small["dag"])]
    ops = {e["op"] for e in events}
    assert ops == {"small", "a", "b"}
    a_kinds = [e["kind"] for e in events if e["op"] == "a"]
    assert a_kinds[0] == "run_status_created"
    assert a_kinds[-2:] == ["run_status_succeeded", "run_status_done"]
    assert all(e["at"].endswith("Z") for e in events)
    code, op_events = cli.run_json("events", small["b"], "--json")
    assert {e["op"] for e in op_events} == {"b"}
    text = cli.run("events", "small").stdout
    assert "run_status_running" not in text  # the table shows the short kind
    assert "running" in text


def test_stop_from_another_process_stops_a_running_dag(cli: Cli) -> None:
    proc = cli.start("run", "-f", str(cli.write("dag.yaml", SLEEPY_DAG)))
    cli.wait_for(lambda s: (op := cli.op(s, "sleepy", "sleeper")) is not None and op.status == Status.RUNNING,
                 "the sleeper running")  # fmt: skip
    result = cli.run("stop", "sleepy", "--grace", "1.5")
    assert result.returncode == 0, result.stderr
    assert "by the engine running it" in result.stdout
    proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 1  # the DAG did not succeed
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.STOPPED
        sleeper = cli.op(store, "sleepy", "sleeper")
        assert sleeper is not None
        # The grace asked for reached the engine running it, and from it the op's shim.
        assert (cli.home / "artifacts" / sleeper.uuid / ".executor" / "stop").read_text() == "1.5\n"
        assert {r.name: r.status for r in store.children(dag.uuid)} == {
            "sleeper": Status.STOPPED,
            "after": Status.STOPPED,
        }


def test_stop_without_a_live_engine_stops_the_processes_directly(cli: Cli) -> None:
    proc = cli.start("run", "-f", str(cli.write("dag.yaml", SLEEPY_DAG)))
    cli.wait_for(lambda s: (op := cli.op(s, "sleepy", "sleeper")) is not None and op.status == Status.RUNNING,
                 "the sleeper running")  # fmt: skip
    proc.kill()  # the engine dies; the op's process (in a session of its own) lives on
    proc.communicate(timeout=DEADLOCK_GUARD)
    with cli.store() as store:
        sleeper = cli.op(store, "sleepy", "sleeper")
        assert sleeper is not None and sleeper.handle is not None
    result = cli.run("stop", "sleepy", "--grace", "2")
    assert result.returncode == 0, result.stderr
    assert "directly" in result.stdout
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.STOPPED
        assert store.get_run(sleeper.uuid).status == Status.STOPPED
    pid = int(sleeper.handle["shim_pid"])
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_stop_of_a_final_run_changes_nothing(cli: Cli, small: dict[str, str]) -> None:
    result = cli.run("stop", small["dag"])
    assert result.returncode == 0
    assert "nothing to stop" in result.stdout


def test_logs_follow_prints_until_the_run_is_final(cli: Cli) -> None:
    proc = cli.start("run", "-f", str(cli.write("dag.yaml", SLOW_PRINTER)))
    cli.wait_for(lambda s: cli.op(s, "printer", "talk") is not None, "the op created")
    followed = cli.run("logs", "-f", "talk")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [f"line {i}" for i in range(1, 6)]
    proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 0
    with cli.store() as store:
        assert store.get_run(cli.op(store, "printer", "talk").uuid).status == Status.SUCCEEDED  # type: ignore[union-attr]
    dag_followed = cli.run("logs", "-f", "printer")
    assert dag_followed.stdout.splitlines() == [f"talk | line {i}" for i in range(1, 6)]


# -- attach: a DAG whose `polynb run` was killed ------------------------------------------------------------

GATED_DAG = """
version: 1.1
kind: component
name: gated
run:
  kind: dag
  operations:
    - name: gate
      component:
        run:
          kind: job
          container: {command: [sh, -c, "while [ ! -e GATE ]; do sleep 0.05; done; echo gate opened"]}
    - name: after
      dependencies: [gate]
      component:
        run: {kind: job, container: {command: [echo, after ran]}}
"""


def _gate_running(cli: Cli) -> tuple[Path, Path]:
    """Start `polynb run` of the gated DAG and wait until its gate op runs; return (file, gate file)."""
    gate = cli.tmp / "gate-open"
    path = cli.write("dag.yaml", GATED_DAG.replace("GATE", str(gate)))
    cli.start("run", "-f", str(path))
    cli.wait_for(lambda s: (op := cli.op(s, "gated", "gate")) is not None and op.status == Status.RUNNING,
                 "the gate op running")  # fmt: skip
    return path, gate


def test_attach_goes_on_with_a_dag_whose_run_was_killed(cli: Cli) -> None:
    _gate_running(cli)
    proc = cli.started[-1]
    proc.kill()  # SIGKILL: no clean-up at all; the gate op (its own session) lives on
    proc.communicate(timeout=DEADLOCK_GUARD)
    listed = cli.run("ls")
    assert "no engine runs it" in listed.stdout
    assert "polynb attach" in listed.stdout
    _, runs = cli.run_json("ls", "--json")
    assert [(r["name"], r["orphaned"]) for r in runs] == [("gated", True)]

    (cli.tmp / "gate-open").touch()
    attached = cli.run("attach", "gated", "--json")
    assert attached.returncode == 0, attached.stderr
    doc = json.loads(attached.stdout)
    assert doc["status"] == "succeeded"
    assert {op["name"]: op["status"] for op in doc["ops"]} == {"gate": "succeeded", "after": "succeeded"}
    assert "attached to gated" in attached.stderr
    with cli.store() as store:
        gate = cli.op(store, "gated", "gate")
        assert gate is not None
        submitted = [c for c in store.status_history(gate.uuid) if c.status == Status.QUEUED]
        assert len(submitted) == 1  # re-attached to, never submitted again
    assert cli.run("logs", "gated").stdout.splitlines() == ["gate | gate opened", "after | after ran"]
    again = cli.run("attach", "gated")
    assert again.returncode == 0
    assert "already succeeded: nothing to attach to" in again.stdout
    assert "no engine runs it" not in cli.run("ls").stdout


def test_attach_leaves_a_run_with_a_live_engine_to_it(cli: Cli) -> None:
    _path, gate = _gate_running(cli)
    result = cli.run("attach", "gated")
    assert result.returncode == 1
    assert f"is run by the engine in process {cli.started[-1].pid}" in result.stderr
    assert "polynb logs -f" in result.stderr
    gate.touch()
    cli.started[-1].communicate(timeout=DEADLOCK_GUARD)
    assert cli.started[-1].returncode == 0


def test_attach_to_an_unknown_run_is_an_error(cli: Cli) -> None:
    result = cli.run("attach", "nothing-here")
    assert result.returncode == 1
    assert "nothing-here" in result.stderr


def test_a_new_run_says_it_goes_on_with_runs_whose_engine_is_gone(cli: Cli) -> None:
    _path, gate = _gate_running(cli)
    cli.started[-1].kill()
    cli.started[-1].communicate(timeout=DEADLOCK_GUARD)
    other = cli.run("run", "-f", str(cli.write("small.yaml", SMALL_DAG)))
    assert other.returncode == 0, other.stderr
    assert "also going on with 1 run whose engine is gone (gated)" in other.stdout
    gate.touch()
    attached = cli.run("attach", "gated")  # released by that run at its end: still attachable
    assert attached.returncode == 0, attached.stderr
    with cli.store() as store:
        assert {r.name: r.status for r in store.list_runs(top_level_only=True)} == {
            "small": Status.SUCCEEDED,
            "gated": Status.SUCCEEDED,
        }


def test_a_name_spelled_in_hex_wins_over_the_uuids_it_prefixes(tmp_path: Path) -> None:
    with Store(tmp_path / "polynb.db") as store:
        dag, _, op_b, _, _ = store.create_runs(
            [
                NewRun(name="dag", kind="dag", uuid="b" * 32),
                NewRun(name="a", kind="job", uuid="ba" + "0" * 30, dag_uuid="b" * 32),
                NewRun(name="b", kind="job", uuid="c" * 32, dag_uuid="b" * 32),
                NewRun(name="x", kind="job", uuid="e1" + "0" * 30, dag_uuid="b" * 32),
                NewRun(name="y", kind="job", uuid="e2" + "0" * 30, dag_uuid="b" * 32),
            ]
        )
        assert resolve_run(store, "b").uuid == op_b.uuid  # two uuids start with "b"; one run is named "b"
        assert resolve_run(store, "bb").uuid == dag.uuid
        with pytest.raises(AmbiguousRunError):
            resolve_run(store, "e")  # no run is named "e": only more digits can tell e1… from e2…


# -- stop without an engine: the hooks still run ------------------------------------------------------------

STOP_HOOKED_DAG = """
version: 1.1
kind: component
name: hooked
hooks: [{hubRef: note, trigger: stopped}]
run:
  kind: dag
  operations:
    - name: sleeper
      hooks: [{hubRef: note, trigger: stopped}, {hubRef: note, trigger: succeeded}]
      component:
        run: {kind: job, container: {command: [sleep, "300"]}}
    - name: after
      dependencies: [sleeper]
      hooks: [{hubRef: note, trigger: stopped}]
      component:
        run: {kind: job, container: {command: ["true"]}}
"""

NOTE = """
version: 1.1
kind: component
name: note
inputs: [{name: name, type: str, isOptional: true}, {name: status, type: str, isOptional: true}]
run: {kind: job, container: {command: [sh, -c, "echo {{ name }} {{ status }} >> NOTES"]}}
"""


def _orphaned_hooked_dag(cli: Cli) -> Path:
    """Run STOP_HOOKED_DAG, kill its `polynb run` once the sleeper runs; return the file the hooks append to."""
    notes = cli.tmp / "notes.txt"
    (cli.hub / "note.yaml").write_text(NOTE.replace("NOTES", str(notes)))
    proc = cli.start("run", "-f", str(cli.write("dag.yaml", STOP_HOOKED_DAG)))
    cli.wait_for(lambda s: (op := cli.op(s, "hooked", "sleeper")) is not None and op.status == Status.RUNNING,
                 "the sleeper running")  # fmt: skip
    proc.kill()
    proc.communicate(timeout=DEADLOCK_GUARD)
    return notes


def test_a_direct_stop_runs_the_stopped_hooks_of_the_ops_and_of_the_dag(cli: Cli) -> None:
    """Issue 11.2: with no engine running the DAG, `polynb stop` recorded `stopped` and ran no hook."""
    notes = _orphaned_hooked_dag(cli)
    result = cli.run("stop", "hooked", "--grace", "2")
    assert result.returncode == 0, result.stderr
    assert "directly" in result.stdout
    assert "3 hooks ran" in result.stdout
    assert sorted(notes.read_text().splitlines()) == ["after stopped", "hooked stopped", "sleeper stopped"]
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.STOPPED
        runs = store.children(dag.uuid, include_hooks=True)
        assert {r.name: r.status for r in runs if r.hook_of is None} == {
            "sleeper": Status.STOPPED,
            "after": Status.STOPPED,
        }
        hooks = [r for r in runs if r.hook_of is not None]
        assert len(hooks) == 3
        assert all(h.status == Status.SUCCEEDED and h.hook_trigger == "stopped" for h in hooks)
    done = cli.run("attach", "hooked")
    assert "nothing to attach to" in done.stdout
    assert done.returncode == 1  # stopped: the exit status says how it ended, as once attached
    assert "no engine runs it" not in cli.run("ls").stdout


def test_a_direct_stop_of_one_op_leaves_its_hooks_to_the_next_engine_and_says_so(cli: Cli) -> None:
    notes = _orphaned_hooked_dag(cli)
    result = cli.run("stop", "sleeper", "--grace", "2")
    assert result.returncode == 0, result.stderr
    assert "polynb attach" in result.stdout
    assert not notes.exists()  # the DAG has no engine: nothing decides on the op's end and hooks yet
    attached = cli.run("attach", "hooked")
    assert attached.returncode == 1, attached.stdout  # the DAG did not succeed
    # `after` could not run (upstream_failed), so the DAG ends stopped: its own stopped hook runs too.
    assert sorted(notes.read_text().splitlines()) == ["hooked stopped", "sleeper stopped"]
    with cli.store() as store:
        sleeper = cli.op(store, "hooked", "sleeper")
        assert sleeper is not None and sleeper.status == Status.STOPPED
        (hook,) = store.hooks_of(sleeper.uuid)
        assert (hook.hook_trigger, hook.status) == ("stopped", Status.SUCCEEDED)


NOISY_DAG = """
version: 1.1
kind: component
name: noisy
run:
  kind: dag
  operations:
    - name: main
      hooks:
        - {hubRef: notify, trigger: failed}
        - {hubRef: notify, trigger: done}
        - {hubRef: notify, trigger: failed, params: {status: {value: again}}}
      component:
        run:
          kind: job
          container: {command: [sh, -c, "printf 'first line\\\\nsecond\\\\tline\\\\033[31m red\\\\n' >&2; exit 3"]}
"""

NOTIFY = """
version: 1.1
kind: component
name: notify
inputs: [{name: status, type: str, isOptional: true}]
run: {kind: job, container: {command: [echo, "main was {{ status }}"]}}
"""


def test_multi_line_messages_and_hooks_of_one_component_keep_every_table_one_row_a_run(cli: Cli) -> None:
    """A failed op's message carries its log tail (lines, tabs, colour codes); three hooks share a component."""
    (cli.hub / "notify.yaml").write_text(NOTIFY)
    run = cli.run("run", "-f", str(cli.write("dag.yaml", NOISY_DAG)))
    assert run.returncode == 1, run.stderr
    progress = run.stdout.splitlines()
    status_lines = progress[: progress.index(next(line for line in progress if line.startswith("noisy failed in")))]
    assert all(re.match(r"^\d\d:\d\d:\d\d\.\d{3}  \S", line) for line in status_lines), run.stdout
    failed = next(line for line in status_lines if " main " in line and "failed" in line)
    assert "first line ⏎ second line red" in failed
    assert "\x1b" not in run.stdout

    events = cli.run("events", "noisy").stdout.splitlines()
    assert all(re.match(r"^(seq|\d+) ", line) for line in events), "\n".join(events)
    assert any("first line ⏎ second line red" in line for line in events)

    listing = cli.run("ls", "--all").stdout
    hooks = [line.split()[2] for line in listing.splitlines() if "↳" in line]
    assert sorted(hooks) == ["main-notify-on-done", "main-notify-on-failed-1", "main-notify-on-failed-2"], listing

    live = cli.run("run", "-f", str(cli.tmp / "dag.yaml"), "--live").stdout
    rows = [line for line in live.splitlines() if "│" in line]
    assert [row.split("│")[0].strip() for row in rows] == [
        "main",
        "↳ notify-on-failed-1",
        "↳ notify-on-done",
        "↳ notify-on-failed-2",
    ], live  # one row a run, the multi-line reason included


def test_options_that_would_drop_what_was_asked_are_usage_errors(cli: Cli) -> None:
    file = str(cli.write("dag.yaml", SMALL_DAG))
    twice = cli.run("run", "-f", file, "-f", file)
    assert twice.returncode == 2 and "-f is given once" in twice.stderr  # the first file was silently dropped
    for command in ("ls", "events"):
        none = cli.run(command, "--limit", "0")
        assert none.returncode == 2 and "expected 1 or more" in none.stderr  # `ls` said "no runs yet"
    with cli.store() as store:
        assert store.list_runs() == []
