"""``polynb run``: a real engine in a subprocess, POLYNB_HOME in tmp_path."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, FAILING_DAG, SERVICE_DAG, SLEEPY_DAG, SMALL_DAG, Cli

from polynb.lifecycle import FINAL, Status

LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3})  (\S+)\s+(\S+)(?:\s+(.*))?$")

TYPED_DAG = """
version: 1.1
kind: component
name: typed
inputs:
  - {name: lr, type: float}
  - {name: epochs, type: int, value: 3, isOptional: true}
run:
  kind: dag
  operations:
    - name: train
      params: {lr: {ref: dag, value: inputs.lr}}
      component:
        inputs: [{name: lr, type: float}]
        run: {kind: job, container: {command: [echo, "{{ lr }}"]}}
"""

HOOKED_DAG = """
version: 1.1
kind: component
name: hooked
run:
  kind: dag
  operations:
    - name: main
      hooks: [{hubRef: notify, trigger: succeeded}]
      component:
        run: {kind: job, container: {command: ["true"]}}
"""

NOTIFY = """
version: 1.1
kind: component
name: notify
inputs: [{name: status, type: str, isOptional: true}]
run: {kind: job, container: {command: [echo, "main was {{ status }}"]}}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def test_a_small_dag_succeeds_with_the_json_document(cli: Cli) -> None:
    path = cli.write("dag.yaml", SMALL_DAG)
    code, doc = cli.run_json("run", "-f", str(path), "--json")
    assert code == 0
    assert set(doc) == {"uuid", "status", "attempt", "ops"}
    assert doc["status"] == "succeeded"
    assert [op["name"] for op in doc["ops"]] == ["a", "b"]
    for op in doc["ops"]:
        assert set(op) == {"name", "uuid", "status", "reason", "events", "hooks", "url"}
        assert op["status"] == "succeeded"
        assert op["hooks"] == []
        assert op["url"] is None
        kinds = [e["kind"] for e in op["events"]]
        assert kinds[0] == "run_status_created"
        assert "run_status_running" in kinds
        assert kinds[-2:] == ["run_status_succeeded", "run_status_done"]
        seqs = [e["seq"] for e in op["events"]]
        assert seqs == sorted(seqs)
        assert all(set(e) == {"kind", "seq", "at"} for e in op["events"])
    with cli.store() as store:
        assert store.get_run(doc["uuid"]).status == Status.SUCCEEDED
        assert {r.uuid for r in store.children(doc["uuid"])} == {op["uuid"] for op in doc["ops"]}


def test_a_failing_dag_exits_1(cli: Cli) -> None:
    path = cli.write("dag.yaml", FAILING_DAG)
    code, doc = cli.run_json("run", "-f", str(path), "--json")
    assert code == 1
    assert doc["status"] == "failed"
    statuses = {op["name"]: op["status"] for op in doc["ops"]}
    assert statuses == {"bad": "failed", "after": "upstream_failed"}


def test_hooks_are_listed_under_their_op(cli: Cli) -> None:
    (cli.hub / "notify.yaml").write_text(NOTIFY)
    path = cli.write("dag.yaml", HOOKED_DAG)
    code, doc = cli.run_json("run", "-f", str(path), "--json")
    assert code == 0
    (hook,) = doc["ops"][0]["hooks"]
    assert hook["hubRef"] == "notify"
    assert hook["trigger"] == "succeeded"
    assert hook["status"] == "succeeded"  # the run waits for the hooks it started


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        (TYPED_DAG, ["-P", "lr=fast"], "lr"),  # wrong type
        (TYPED_DAG, ["-P", "lr=0.1", "-P", "momentum=0.9"], "momentum"),  # unknown param
        (TYPED_DAG, [], "lr"),  # missing required input
        (TYPED_DAG, ["-P", "lr"], "NAME=VALUE"),  # malformed -P
        (SMALL_DAG.replace("dependencies: [a]", "dependencies: [nope]"), [], "nope"),  # bad reference
        (SMALL_DAG.replace("kind: job", "kind: jobb", 1), [], "dag.yaml:"),  # schema error, positioned
    ],
    ids=["wrong-type", "unknown-param", "missing-required", "malformed-P", "unknown-dependency", "schema"],
)
def test_bad_input_is_rejected_before_anything_starts(cli: Cli, text: str, args: list[str], expected: str) -> None:
    path = cli.write("dag.yaml", text)
    result = cli.run("run", "-f", str(path), *args)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "not run" in result.stderr
    assert cli.runs() == []
    assert not (cli.home / "artifacts").exists()


def test_every_problem_is_reported_at_once(cli: Cli) -> None:
    path = cli.write("dag.yaml", TYPED_DAG)
    result = cli.run("run", "-f", str(path), "-P", "lr=fast", "-P", "epochs=many", "-P", "oops")
    assert result.returncode == 1
    assert "`lr`" in result.stderr
    assert "`epochs`" in result.stderr
    assert "-P oops" in result.stderr


def test_without_a_terminal_each_status_change_is_one_line(cli: Cli) -> None:
    path = cli.write("dag.yaml", SMALL_DAG)
    result = cli.run("run", "-f", str(path))
    assert result.returncode == 0, result.stderr
    printed: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        if match:
            printed.setdefault(match.group(2), []).append(match.group(3))
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        recorded = {run.name: [c.status.value for c in store.status_history(run.uuid)]
                    for run in [dag, *store.children(dag.uuid)]}  # fmt: skip
    assert printed == recorded
    assert f"run {dag.uuid}" in result.stdout


CHAIN = """
version: 1.1
kind: component
name: chain
run:
  kind: dag
  operations:
    - {name: a, component: {run: {kind: job, container: {command: [sleep, "0.3"]}}}}
    - {name: b, dependencies: [a], component: {run: {kind: job, container: {command: [sleep, "0.3"]}}}}
    - {name: c, dependencies: [b], component: {run: {kind: job, container: {command: ["true"]}}}}
"""


@pytest.mark.parametrize("served", [True, False])
def test_a_reader_that_goes_away_leaves_the_run_to_go_on_to_its_end(cli: Cli, served: bool) -> None:
    """`polynb run -f x | head -1`: no traceback, the DAG is not abandoned to no engine; the exit status is its."""
    cli.extra_env["POLYNB_COMMAND_SERVER"] = "1" if served else "0"
    proc = cli.start("run", "-f", str(cli.write("chain.yaml", CHAIN)))
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # as `head -1` exits
    _, err = proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.SUCCEEDED
        assert {r.name: r.status for r in store.children(dag.uuid)} == dict.fromkeys("abc", Status.SUCCEEDED)


def test_ctrl_c_stops_the_dag_and_exits_130(cli: Cli) -> None:
    path = cli.write("dag.yaml", SLEEPY_DAG)
    proc = cli.start("run", "-f", str(path))
    cli.wait_for(lambda s: (op := cli.op(s, "sleepy", "sleeper")) is not None and op.status == Status.RUNNING,
                 "the sleeper running")  # fmt: skip
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 130
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.STOPPED
        ops = {r.name: r for r in store.children(dag.uuid)}
        assert ops["sleeper"].status == Status.STOPPED
        assert ops["after"].status == Status.STOPPED
        assert [c.status for c in store.status_history(dag.uuid)][-2:] == [Status.STOPPING, Status.STOPPED]
    assert re.search(r"sleeper\s+stopped", out)


def test_services_keep_running_after_the_command_unless_asked(cli: Cli) -> None:
    path = cli.write("dag.yaml", SERVICE_DAG)
    result = cli.run("run", "-f", str(path))
    assert result.returncode == 0, result.stderr
    with cli.store() as store:
        web = cli.op(store, "with-service", "web")
        assert web is not None
        assert web.status == Status.RUNNING
        assert web.url is not None
    assert "keeps running" in result.stdout
    assert f"polynb stop {web.uuid[:12]}" in result.stdout
    stopped = cli.run("stop", web.uuid)
    assert stopped.returncode == 0, stopped.stderr
    with cli.store() as store:
        assert store.get_run(web.uuid).status == Status.STOPPED


def test_stop_services_stops_them_once_the_other_ops_are_done(cli: Cli) -> None:
    path = cli.write("dag.yaml", SERVICE_DAG)
    code, doc = cli.run_json("run", "-f", str(path), "--json", "--stop-services")
    assert code == 0
    assert doc["status"] == "succeeded"
    web = next(op for op in doc["ops"] if op["name"] == "web")
    assert web["status"] == "stopped"
    assert web["url"].startswith("http://127.0.0.1:")
    assert all(r.status in FINAL for r in cli.runs())


def test_no_wait_returns_the_uuid_and_the_run_goes_on_in_the_background(cli: Cli) -> None:
    path = cli.write("dag.yaml", SMALL_DAG)
    result = cli.run("run", "-f", str(path), "--no-wait")
    assert result.returncode == 0, result.stderr
    uuid = result.stdout.strip()
    assert f"polynb stop {uuid[:12]}" in result.stderr
    cli.wait_for(lambda s: s.get_run(uuid).is_final, "the background run final")
    with cli.store() as store:
        assert store.get_run(uuid).status == Status.SUCCEEDED
        assert {r.status for r in store.children(uuid)} == {Status.SUCCEEDED}


def test_no_wait_still_rejects_bad_input_first(cli: Cli) -> None:
    result = cli.run("run", "-f", str(cli.write("dag.yaml", TYPED_DAG)), "--no-wait")
    assert result.returncode == 1
    assert "lr" in result.stderr
    assert cli.runs() == []


SINGLE_JOB = """
version: 1.1
kind: component
name: hello
inputs: [{name: who, type: str, value: world, isOptional: true}]
run: {kind: job, container: {command: [echo, "hello {{ who }}"]}}
"""


def test_params_of_a_single_op_file_reach_its_command(cli: Cli) -> None:
    path = cli.write("job.yaml", SINGLE_JOB)
    code, doc = cli.run_json("run", "-f", str(path), "-P", "who=you", "--json")
    assert code == 0
    assert cli.run("logs", doc["uuid"]).stdout.strip() == "hello you"


JSON_ARGUMENT = """
version: 1.1
kind: component
name: as-json
inputs: [{name: d, type: dict}]
run: {kind: job, container: {command: [echo, "{{ d | tojson }}", "{{ d.a | string | e }}", "{{ d.keys() }}"]}}
"""


def test_a_template_that_is_a_whole_argument_runs_whatever_jinja_returns(cli: Cli) -> None:
    """``tojson`` and ``e`` return Markup, ``keys()`` a view (a list: one argument per key): plain text to the op."""
    path = cli.write("job.yaml", JSON_ARGUMENT)
    code, doc = cli.run_json("run", "-f", str(path), "-P", 'd={"a": 1}', "--json")
    assert (code, doc["status"]) == (0, "succeeded"), doc
    assert cli.run("logs", doc["uuid"]).stdout.strip() == '{"a": 1} 1 a'


OPTIONAL_INPUTS = Path(__file__).parents[1] / "spec" / "argv" / "optional_inputs.yaml"


@pytest.mark.parametrize(
    ("params", "argv"),
    [
        # What Polyaxon 2.18 puts in the container (tests/spec/test_polyaxon_argv.py compares with it): an item that
        # is one template rendering None is left out; inside a longer item None stays text.
        ([], ["--n=None", "3", "xNone", "default", "end"]),
        (["-P", "n=5", "-P", "s=None"], ["5", "--n=5", "3", "x5", "--n=5", "5", "end"]),
    ],
)
def test_an_optional_input_given_no_value_reaches_the_op_as_polyaxon_gives_it(
    cli: Cli, params: list[str], argv: list[str]
) -> None:
    code, doc = cli.run_json("run", "-f", str(OPTIONAL_INPUTS), *params, "--json")
    assert (code, doc["status"]) == (0, "succeeded"), doc
    assert cli.run("logs", doc["uuid"]).stdout.strip() == "".join(f"{arg}|" for arg in argv)


WHOLE_SECTIONS = """
version: 1.1
kind: component
name: whole-sections
inputs:
  - {name: t, type: dict, isOptional: true}
  - {name: c, type: dict, isOptional: true}
  - {name: p, type: dict, isOptional: true}
termination: "{{ t }}"
cache: "{{ c }}"
plugins: "{{ p }}"
run: {kind: job, container: {command: [sleep, "2"]}}
"""


def test_sections_written_as_one_template_are_rendered_and_applied_as_in_polyaxon(cli: Cli) -> None:
    """``termination``, ``cache`` and ``plugins`` written whole as one template, as Polyaxon 2.18 renders them when
    the op compiles (polynb refused the file)."""
    path = cli.write("job.yaml", WHOLE_SECTIONS)
    code, doc = cli.run_json("run", "-f", str(path), "-P", 't={"timeout": 1}', "--json")
    assert (code, doc["status"], doc["ops"][0]["reason"]) == (1, "failed", "Timeout"), doc
    cached = ["-P", 'c={"ttl": 3600}', "-P", 'p={"collectLogs": true}']
    first = cli.run_json("run", "-f", str(path), *cached, "--json")[1]
    second = cli.run_json("run", "-f", str(path), *cached, "--json")[1]
    assert (first["status"], first["ops"][0]["reason"]) != ("succeeded", "Cached"), first
    assert (second["status"], second["ops"][0]["reason"]) == ("succeeded", "Cached"), second
    code, doc = cli.run_json("run", "-f", str(path), "-P", 'p={"docker": true}', "--json")
    assert (code, doc["status"], doc["ops"][0]["reason"]) == (1, "failed", "CompilationFailed"), doc


ENV_FROM_DAG = """
version: 1.1
kind: component
name: env-from
run:
  kind: dag
  operations:
    - name: cached
      cache: {ttl: 100}
      component:
        run: {kind: job, container: {command: ["true"]}}
    - name: secrets
      component:
        run: {kind: job, container: {command: ["true"], envFrom: [{secretRef: {name: creds}}]}}
"""


def test_check_and_run_say_the_same_of_what_only_kubernetes_runs(cli: Cli) -> None:
    """``envFrom`` used to pass ``check`` silently, then fail the op at compile time under ``run``; it runs on
    Kubernetes, and for the local executor both ``check`` and ``run`` refuse it in the same words."""
    path = cli.write("dag.yaml", ENV_FROM_DAG)
    checked = cli.run("check", "-f", str(path))
    assert checked.returncode == 1, checked.stdout
    refused = (f"{path}:14:66: run.operations[1].component.run.container.envFrom: Kubernetes only: `envFrom` reads "
               "secrets and config maps of the cluster; the local executor refuses the op")  # fmt: skip
    assert checked.stderr.splitlines() == []  # the op's `cache` is applied: nothing to say of it
    assert checked.stdout.splitlines()[0] == refused
    assert cli.run("check", "-f", str(path), "--executor", "kubernetes").returncode == 0
    run = cli.run("run", "-f", str(path))
    assert run.returncode == 1
    assert run.stderr.splitlines() == [refused, f"polynb: {path}: not run (1 problem)"], run.stderr
    assert cli.runs() == []


def test_run_reports_the_same_positioned_errors_as_check(cli: Cli) -> None:
    path = cli.write("dag.yaml", TYPED_DAG)
    checked = cli.run("check", "-f", str(path))
    run = cli.run("run", "-f", str(path))
    assert run.returncode == checked.returncode == 1
    expected = checked.stdout.splitlines()[:-1]
    assert expected == [f"{path}:6:5: inputs[0]: input `lr` is required: give it a `value`, mark it `isOptional`,"
                        " or pass `-P lr=...`"]  # fmt: skip
    assert run.stderr.splitlines()[:-1] == expected
    assert cli.runs() == []


def test_run_of_a_directory_or_a_missing_file_says_which(cli: Cli) -> None:
    folder = cli.run("run", "-f", str(cli.tmp))
    assert folder.returncode == 1
    assert "is a directory; expected a Polyaxonfile" in folder.stderr
    missing = cli.run("run", "-f", "nope.yaml")
    assert missing.returncode == 1
    assert "nope.yaml:0:0: (root): cannot read the file: No such file or directory" in missing.stderr
    assert cli.runs() == []
