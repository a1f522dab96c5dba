"""The command server: a served ``polynb`` command is the command, whatever process runs it.

Each test has a server of its own (its folder in ``tmp_path``), started the way a user's first command starts
one. A command counts as served when the process that ran it is not the client: the engine's pid recorded on
the run is a child of the server, whose command line names ``polynb.cli.command_server``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, Cli

from polynb.cli import served
from polynb.lifecycle import Status
from polynb.store import Store

SLEEPY = """\
version: 1.1
kind: component
name: sleepy
run:
  kind: dag
  operations:
    - name: sleeper
      component: {run: {kind: job, container: {command: ["sleep", "60"]}}}
"""

ECHO_ENV = """\
version: 1.1
kind: component
name: echo
run: {kind: job, container: {command: ["sh", "-c", "echo \\"$GREETING\\"; umask"]}}
"""

BROKEN = """\
version: 1.1
kind: component
name: broken
run:
  kind: job
  container: {command: ["true"]}
  retries: 3
"""


class ServedCli(Cli):
    """``polynb`` as from a shell, with the command server on and its folder in ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.server_dir = tmp_path / "servers"
        self.extra_env = {served.SWITCH: "1", served.FOLDER: str(self.server_dir), served.IDLE: "120"}

    def sockets(self) -> list[Path]:
        return sorted(self.server_dir.glob("cmd-*.sock")) if self.server_dir.exists() else []

    def server_pids(self) -> list[int]:
        pids = []
        for lock in self.server_dir.glob("cmd-*.lock") if self.server_dir.exists() else []:
            text = lock.read_text().strip()
            if text.isdigit():
                pids.append(int(text))
        return pids

    def warm_up(self) -> None:
        """Run a first command (in-process: it starts the server) and wait until the server listens."""
        first = self.run("ls")
        assert first.returncode == 0, first.stderr
        wait_until(lambda: bool(self.sockets()), "the command server listening")

    def stop_servers(self) -> None:
        for pid in self.server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def wait_until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def engine_pid(store: Store) -> int:
    (dag,) = store.list_runs(top_level_only=True)
    return int(dag.meta["engine"]["pid"])


def is_server_child(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"polynb.cli.command_server" in cmdline


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[ServedCli]:
    cli = ServedCli(tmp_path)
    yield cli
    cli.cleanup()
    cli.stop_servers()


PROBE = """
import json, sys
import polynb.cli as cli
quick_exit = cli.exit_now
record = sys.argv.pop(1)
def exit_now(status):  # what this process imported, recorded just before it ends
    with open(record, "w") as out:
        json.dump(sorted(sys.modules), out)
    quick_exit(status)
cli.exit_now = exit_now
cli.main()
"""


def probed(cli: Cli, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``polynb ARGS`` from a shell; its result and the modules its own process imported."""
    record = cli.tmp / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(record), *args], cwd=cli.tmp, env=cli.env(), capture_output=True,
        text=True, timeout=DEADLOCK_GUARD,
    )  # fmt: skip
    return done, set(json.loads(record.read_text()))


def test_a_served_command_prints_and_exits_as_the_command_run_in_process(cli: ServedCli) -> None:
    cli.warm_up()
    path = cli.write("broken.yaml", BROKEN)
    served_result, served_modules = probed(cli, "check", "-f", str(path))
    cli.extra_env[served.SWITCH] = "0"
    local_result, local_modules = probed(cli, "check", "-f", str(path))
    assert "pydantic" in local_modules
    assert "pydantic" not in served_modules  # the spec was validated by the server's child, not here
    assert served_result.returncode == local_result.returncode == 1
    assert "broken.yaml:7:3: run.retries: unexpected key 'retries'" in served_result.stdout
    assert (served_result.stdout, served_result.stderr) == (local_result.stdout, local_result.stderr)


def test_a_served_run_is_run_by_a_child_of_the_server_with_the_clients_folder_and_environment(
    cli: ServedCli, tmp_path: Path
) -> None:
    cli.warm_up()
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "echo.yaml").write_text(ECHO_ENV)
    env = {**cli.env(), "GREETING": "hello from the client"}
    script = "import os, sys; os.umask(0o027); from polynb.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", script, "run", "-f", "echo.yaml", "--json"],  # a path relative to the client's folder
        cwd=work, env=env, capture_output=True, text=True, timeout=DEADLOCK_GUARD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "succeeded"
    with cli.store() as store:
        (run,) = store.list_runs(top_level_only=True)
        logs = "".join(cli_logs(cli, run.uuid))
    assert "hello from the client" in logs
    assert "0027" in logs  # the client's umask, not the server's


def cli_logs(cli: Cli, uuid: str) -> list[str]:
    result = cli.run("logs", uuid)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(keepends=True)


def start_sleeper(cli: ServedCli) -> tuple[subprocess.Popen[str], int]:
    """``polynb run`` of a DAG whose op sleeps, once the op runs: the client and the pid of the engine's process."""
    path = cli.write("sleepy.yaml", SLEEPY)
    proc = cli.start("run", "-f", str(path))
    cli.wait_for(lambda s: (op := cli.op(s, "sleepy", "sleeper")) is not None and op.status == Status.RUNNING,
                 "the sleeper running")  # fmt: skip
    with cli.store() as store:
        return proc, engine_pid(store)


def test_ctrl_c_reaches_the_served_command_which_stops_the_dag_and_exits_130(cli: ServedCli) -> None:
    cli.warm_up()
    proc, pid = start_sleeper(cli)
    assert pid != proc.pid
    assert is_server_child(pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 130
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert dag.status == Status.STOPPED
    assert "stopped" in out


def test_a_killed_client_takes_its_command_with_it(cli: ServedCli) -> None:
    cli.warm_up()
    proc, pid = start_sleeper(cli)
    assert is_server_child(pid)
    proc.kill()
    proc.wait(timeout=DEADLOCK_GUARD)
    wait_until(lambda: not alive(pid), "the served command to die with its client")
    # As after `kill -9` of an in-process `polynb run`: the next engine adopts the run and ends it.
    stopped = cli.run("stop", "--grace", "1", "sleepy")
    assert stopped.returncode == 0, stopped.stderr


def test_a_command_killed_by_a_signal_ends_its_client_by_the_same_signal(cli: ServedCli) -> None:
    cli.warm_up()
    proc, pid = start_sleeper(cli)
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == -signal.SIGKILL


def test_a_module_in_the_working_folder_that_shadows_an_imported_one_runs_the_command_in_process(
    cli: ServedCli, tmp_path: Path
) -> None:
    cli.warm_up()
    work = tmp_path / "shadowing"
    work.mkdir()
    # In-process, `python -m polynb.cli` imports this `sqlite3` (its folder is first on the import path); a served
    # command would use the server's. So it is not served: the marker shows the command ran here.
    (work / "sqlite3.py").write_text(
        textwrap.dedent("""\
            import sys
            print("the folder's sqlite3", file=sys.stderr)
            del sys.path[0], sys.modules["sqlite3"]
            import sqlite3  # the real one, which the import statement that loaded this file then returns
        """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "polynb.cli", "ls"], cwd=work, env=cli.env(), capture_output=True, text=True,
        timeout=DEADLOCK_GUARD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the folder's sqlite3" in done.stderr


def test_switched_off_no_server_starts(cli: ServedCli) -> None:
    cli.extra_env[served.SWITCH] = "0"
    for _ in range(2):
        assert cli.run("ls").returncode == 0
    time.sleep(0.5)  # a server would have bound its socket by now; none may appear
    assert cli.sockets() == []


def test_an_idle_server_exits_and_leaves_nothing_behind(cli: ServedCli) -> None:
    cli.extra_env[served.IDLE] = "1"
    cli.warm_up()
    assert cli.run("ls").returncode == 0
    wait_until(lambda: not cli.sockets(), "the idle server to exit")
    wait_until(lambda: not any(cli.server_dir.iterdir()), "its lock and log removed")


def test_the_signature_changes_with_a_source_file_and_a_python_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    source = package / "sub" / "mod.py"
    source.write_text("x = 1\n")
    (package / "__pycache__").mkdir()
    first = served.signature(str(package))
    (package / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"ignored")
    assert served.signature(str(package)) == first  # bytecode is not source
    source.write_text("x = 2\n")
    os.utime(source, ns=(1, 1))
    second = served.signature(str(package))
    assert second != first
    monkeypatch.setenv("UNRELATED", "1")
    assert served.signature(str(package)) == second
    monkeypatch.setenv("PYTHONWARNINGS", "error")
    assert served.signature(str(package)) != second


def test_a_folder_another_user_could_write_to_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    assert not served.private_dir(str(folder))
    own = tmp_path / "own"
    assert served.private_dir(str(own))
    assert own.stat().st_mode & 0o777 == 0o700


def test_server_stop_lets_the_commands_it_runs_finish_and_report_their_status(cli: ServedCli) -> None:
    cli.warm_up()
    (pid,) = cli.server_pids()
    status = cli.run("server", "status")
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in status.stdout
    assert "this installation" in status.stdout
    proc, engine = start_sleeper(cli)
    assert is_server_child(engine)
    stopped = cli.run("server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped 1 command server" in stopped.stdout
    wait_until(lambda: not cli.sockets(), "the server to stop listening")
    assert alive(pid)  # still the parent of the run's command
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 130  # the exit status still reached its client
    wait_until(lambda: not alive(pid), "the server to exit once its last command ended")


LIMITS = """\
version: 1.1
kind: component
name: limits
run: {kind: job, container: {command: ["sh", "-c", "echo files=$(ulimit -n) nice=$(nice)"]}}
"""


def test_a_served_command_runs_under_its_clients_limits_and_niceness(cli: ServedCli) -> None:
    import resource

    cli.warm_up()
    path = cli.write("limits.yaml", LIMITS)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 500) - 7

    def lower() -> None:  # as `ulimit -n` and `nice -n 3` in the shell that starts polynb
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
        os.nice(3)

    record = cli.tmp / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(record), "run", "-f", str(path), "--json"], cwd=cli.tmp, env=cli.env(),
        capture_output=True, text=True, timeout=DEADLOCK_GUARD, preexec_fn=lower,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pydantic" not in json.loads(record.read_text())  # served
    (run,) = cli.runs()
    logs = "".join(cli_logs(cli, run.uuid))
    assert f"files={lowered}" in logs
    assert f"nice={os.getpriority(os.PRIO_PROCESS, 0) + 3}" in logs
