"""The fork server: who starts the shims, what they inherit, and what happens when the server fails.

The executor's behaviour in both modes is covered by the other modules of this folder (``spawn_mode``
runs each of their tests twice); these tests are about the server itself.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import resource
import signal
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.execkit import PY, MakeExecutor, alive, container, make_op, wait_dead, wait_until
from support.recorder import UpdateRecorder

from polynb.executors.local import launch
from polynb.executors.local.executor import PACKAGE_ROOT, LocalExecutor
from polynb.executors.local.launch import INLINE_SPEC_MAX, SPAWN_MODE_ENV
from polynb.executors.local.shim import proc_start_time

TESTS = Path(__file__).resolve().parents[2]
WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.02; done"


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def waiting_op(executor: LocalExecutor) -> tuple[int, UpdateRecorder, Path]:
    """Submit an op that runs until `go` exists: (its shim's pid, its updates, its status file)."""
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", WAIT_FOR_GO))
    record = executor.submit(op, recorder)
    recorder.until("running")
    return int(str(record["shim_pid"])), recorder, Path(op.placement.run_artifacts_path) / "status.jsonl"


def run_true(executor: LocalExecutor) -> int:
    """Run `true` to its end; the pid of its shim."""
    recorder = UpdateRecorder()
    record = executor.submit(make_op(executor, container("true")), recorder)
    assert recorder.final().status == "succeeded"
    return int(str(record["shim_pid"]))


def shim_parent(executor: LocalExecutor, workdir: Path) -> int:
    """The parent of a run's shim, read while the run runs: a shim that has ended may be reaped already."""
    shim, recorder, _ = waiting_op(executor)
    parent = parent_of(shim)
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"
    (workdir / "go").unlink()
    return parent


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


FORK_ONLY = pytest.mark.parametrize("spawn_mode", ["fork"], indirect=True)


def test_shims_are_forked_by_one_server_or_spawned_as_our_children(
    make_executor: MakeExecutor, workdir: Path, spawn_mode: str
) -> None:
    executor = make_executor()
    first, _, _ = waiting_op(executor)
    second, _, _ = waiting_op(executor)
    if spawn_mode == "spawn":
        assert parent_of(first) == parent_of(second) == os.getpid()
    else:
        server = parent_of(first)
        assert parent_of(second) == server != os.getpid()
        assert parent_of(server) == os.getpid()  # started by the executor: ours to reap
        assert b"import serve;" in Path(f"/proc/{server}/cmdline").read_bytes()
    (workdir / "go").touch()


@FORK_ONLY
def test_shutdown_leaves_no_server_and_the_runs_carry_on(make_executor: MakeExecutor, workdir: Path) -> None:
    executor = make_executor()
    shim, _, status = waiting_op(executor)
    server = parent_of(shim)
    executor.shutdown(stop_running=False)
    assert not Path(f"/proc/{server}").exists()  # exited and reaped: not even a zombie is left
    assert alive(shim)
    (workdir / "go").touch()
    wait_until(lambda: '"status":"succeeded"' in status.read_text(), "the orphaned shim to finish its run")


ENGINE = """
import sys, time
sys.path.insert(0, {tests!r})
from support.execkit import container, make_op
from support.recorder import UpdateRecorder
from polynb.executors.local.executor import LocalExecutor

executor = LocalExecutor(base_dir={workdir!r})
recorder = UpdateRecorder()
op = make_op(executor, container("sh", "-c", {script!r}))
record = executor.submit(op, recorder)
recorder.until("running")
print(record["shim_pid"], op.placement.run_artifacts_path, flush=True)
time.sleep(3600)
"""


@FORK_ONLY
@pytest.mark.usefixtures("spawn_mode")
def test_the_server_of_a_killed_engine_exits_and_its_runs_carry_on(workdir: Path) -> None:
    script = textwrap.dedent(ENGINE).format(tests=str(TESTS), workdir=str(workdir), script=WAIT_FOR_GO)
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    engine = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert engine.stdout is not None
        shim_pid, run_dir = engine.stdout.readline().split()
        shim = int(shim_pid)
        server = parent_of(shim)
        assert parent_of(server) == engine.pid
        spare = spare_of(server, {shim})
    finally:
        engine.kill()  # SIGKILL: no shutdown, the server only sees its socket's peer go away
        engine.wait()
        if engine.stdout is not None:
            engine.stdout.close()
    wait_dead(server)
    wait_dead(spare)  # nor does the shim it forked ahead outlive it
    assert alive(shim)
    (workdir / "go").touch()
    status = Path(run_dir) / "status.jsonl"
    wait_until(lambda: '"status":"succeeded"' in status.read_text(), "the orphaned shim to finish its run")


@FORK_ONLY
def test_a_server_that_cannot_start_falls_back_to_spawning_and_says_why_once(
    make_executor: MakeExecutor, workdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An interpreter that runs shims but not the fork server.
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    serving = '*"import serve;"*'  # the fork server's launcher
    python.write_text(f'#!/bin/sh\ncase "$*" in {serving}) echo "no server" >&2; exit 3;; esac\nexec {PY} "$@"\n')
    python.chmod(0o755)
    executor = make_executor(python=str(python))
    caplog.set_level(logging.WARNING, logger="polynb.executors.local.executor")
    shim, recorder, _ = waiting_op(executor)
    assert parent_of(shim) == os.getpid()
    run_true(executor)
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"
    (message,) = warnings(caplog)
    assert "fork server could not start (exit code 3)" in message
    assert "each shim is spawned" in message


@FORK_ONLY
def test_a_server_killed_under_a_live_engine_leaves_its_runs_going_and_spawning_takes_over(
    make_executor: MakeExecutor, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executor = make_executor()
    caplog.set_level(logging.WARNING, logger="polynb.executors.local.executor")
    shim, recorder, _ = waiting_op(executor)
    server = parent_of(shim)
    os.kill(server, signal.SIGKILL)
    wait_dead(server)
    second, _, _ = waiting_op(executor)
    assert parent_of(second) == os.getpid()  # spawned now
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"  # the forked run went on without its server
    run_true(executor)
    (message,) = warnings(caplog)
    assert "fork server" in message and "SIGKILL" in message


@FORK_ONLY
def test_a_server_killed_with_a_request_in_flight_starts_nothing_and_the_run_is_spawned(
    make_executor: MakeExecutor, workdir: Path
) -> None:
    executor = make_executor()
    shim, _, _ = waiting_op(executor)
    server = parent_of(shim)
    os.kill(server, signal.SIGSTOP)  # it will not read the next request
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "echo ran >> ran.txt"))
    submitting = threading.Thread(target=executor.submit, args=(op, recorder))
    submitting.start()
    lock = Path(op.placement.run_artifacts_path) / ".executor" / "lock"
    wait_until(lock.exists, "the submit to reach the server")
    os.kill(server, signal.SIGKILL)  # whether the request was sent yet or not, no shim was forked
    submitting.join()
    assert recorder.final().status == "succeeded"
    assert (workdir / "ran.txt").read_text() == "ran\n"  # once
    (workdir / "go").touch()


def test_a_forked_shim_gets_its_spec_with_the_request_and_a_spawned_one_or_a_large_one_from_a_file(
    make_executor: MakeExecutor, spawn_mode: str
) -> None:
    executor = make_executor()
    small = make_op(executor, container("sh", "-c", 'echo "${#BIG}"', env={"BIG": "x"}))
    large = make_op(executor, container("sh", "-c", 'echo "${#BIG}"', env={"BIG": "x" * (INLINE_SPEC_MAX + 1)}))
    for op, length in ((small, "1"), (large, str(INLINE_SPEC_MAX + 1))):
        recorder = UpdateRecorder()
        executor.submit(op, recorder)
        assert recorder.final().status == "succeeded"
        assert list(executor.logs(op.uuid)) == [length]
    spec_files = [(Path(op.placement.run_artifacts_path) / ".executor" / "spec.bin").exists() for op in (small, large)]
    assert spec_files == ([False, True] if spawn_mode == "fork" else [True, True])


@FORK_ONLY
def test_a_spec_too_large_to_send_with_the_engines_environment_goes_by_file(
    make_executor: MakeExecutor, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = make_executor()
    run_true(executor)  # the server has the environment as it is now
    # 170 kB of environment, sent with the next request: fits the socket's 208 KiB alone, not with the spec.
    for name in ("POLYNB_TEST_A", "POLYNB_TEST_B"):
        monkeypatch.setenv(name, "y" * 85_000)  # (one variable: at most 128 KiB to exec)
    spec_size = 25_000  # in the spec twice (the container's env and op.json): under INLINE_SPEC_MAX
    script = f'{WAIT_FOR_GO}; echo "${{#BIG}} ${{#POLYNB_TEST_B}}"'
    op = make_op(executor, container("sh", "-c", script, env={"BIG": "x" * spec_size}))
    recorder = UpdateRecorder()
    record = executor.submit(op, recorder)
    recorder.until("running")
    assert parent_of(int(str(record["shim_pid"]))) != os.getpid()  # forked all the same (asked while it lives)
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"
    assert list(executor.logs(op.uuid)) == [f"{spec_size} 85000"]
    assert (Path(op.placement.run_artifacts_path) / ".executor" / "spec.bin").exists()
    (workdir / "go").unlink()
    shim, recorder, _ = waiting_op(executor)
    assert parent_of(shim) != os.getpid()  # and the server is still used
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"


def test_the_run_record_names_its_shim_by_pid_and_start_time(make_executor: MakeExecutor, workdir: Path) -> None:
    # Forked: both come with the server's reply (with a pidfd it opened before it could reap the shim).
    executor = make_executor()
    recorder = UpdateRecorder()
    record = executor.submit(make_op(executor, container("sh", "-c", WAIT_FOR_GO)), recorder)
    recorder.until("running")
    assert record["shim_start_time"] == proc_start_time(int(str(record["shim_pid"])))
    executor.stop(str(record["run_uuid"]), grace=5)  # signalled through that pidfd when forked
    assert recorder.final().status == "stopped"


def test_a_shim_log_holds_what_the_shim_wrote_and_a_forked_shim_makes_one_only_then(
    make_executor: MakeExecutor, spawn_mode: str
) -> None:
    executor = make_executor()
    quiet = make_op(executor, container("true"))
    broken = make_op(executor, container("true", env={"BAD": "a\0b"}))  # posix_spawn refuses it: a shim bug's way
    finals = []
    for op in (quiet, broken):
        recorder = UpdateRecorder()
        executor.submit(op, recorder)
        finals.append(recorder.final())
    assert [(f.status, f.reason) for f in finals] == [("succeeded", "ExitCode"), ("failed", "ExecutorError")]
    logs = [Path(op.placement.run_artifacts_path) / ".executor" / "shim.log" for op in (quiet, broken)]
    assert logs[0].exists() == (spawn_mode == "spawn")  # a spawned shim's stderr is opened before it starts
    assert "Traceback" in logs[1].read_text() and "ValueError" in logs[1].read_text()


def test_a_shim_that_cannot_start_fails_its_submit_and_the_next_runs_start_as_before(
    make_executor: MakeExecutor, workdir: Path, spawn_mode: str
) -> None:
    executor = make_executor()
    op = make_op(executor, container("true"))
    (Path(op.placement.run_artifacts_path) / ".executor" / "shim.log").mkdir(parents=True)  # not a file
    with pytest.raises(IsADirectoryError):
        executor.submit(op, UpdateRecorder())
    shim, recorder, _ = waiting_op(executor)
    assert (parent_of(shim) == os.getpid()) == (spawn_mode == "spawn")  # the server is still used
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"


def test_a_killed_shim_is_process_lost_and_says_how_it_ended(make_executor: MakeExecutor) -> None:
    # Forked or spawned, the verdict says how the shim died (the fork server, its parent, tells).
    executor = make_executor()
    shim, recorder, _ = waiting_op(executor)
    os.kill(shim, signal.SIGKILL)
    final = recorder.final()
    assert (final.status, final.reason) == ("failed", "ProcessLost")
    assert f"pid {shim}" in final.message
    assert "killed by signal 9 (SIGKILL)" in final.message


def test_environment_changes_reach_the_ops_started_after_them(
    make_executor: MakeExecutor, monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    # A notebook sets or removes variables between runs; the fork server started with the first run.
    monkeypatch.setenv("POLYNB_TEST_GONE", "still here")
    executor = make_executor()
    run_true(executor)
    monkeypatch.setenv("POLYNB_TEST_NEW", "set later")
    monkeypatch.delenv("POLYNB_TEST_GONE")
    recorder = UpdateRecorder()
    script = 'echo "new=$POLYNB_TEST_NEW gone=${POLYNB_TEST_GONE-unset}"'
    op = make_op(executor, container("sh", "-c", script))
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    assert list(executor.logs(op.uuid)) == ["new=set later gone=unset"]


@pytest.fixture
def restore_umask_and_limits() -> Iterator[None]:
    """This process's umask and open-files limit, put back after the test that changes them."""
    mask = os.umask(0o022)
    os.umask(mask)
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield
    os.umask(mask)
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def umask_and_limit(executor: LocalExecutor) -> tuple[str, str, str]:
    """What an op started now sees: its umask, its open-files limit, the mode of a file it creates."""
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "umask; ulimit -n; touch made; stat -c %a made; rm made"))
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    mask, limit, mode = executor.logs(op.uuid)
    return mask, limit, mode


@pytest.mark.usefixtures("restore_umask_and_limits")
def test_a_umask_and_limits_set_between_runs_reach_the_ops_started_after_them(make_executor: MakeExecutor) -> None:
    # A notebook sets them between two runs (os.umask, resource.setrlimit); the fork server and its spare were
    # made before, and a shim spawned now would have inherited them.
    os.umask(0o022)
    executor = make_executor()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert umask_and_limit(executor) == ("0022", str(soft), "644")
    os.umask(0o027)
    lower = min(soft, 4096) - 17
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    assert umask_and_limit(executor) == ("0027", str(lower), "640")
    os.umask(0o022)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert umask_and_limit(executor) == ("0022", str(soft), "644")  # and back again


@FORK_ONLY
def test_a_server_that_cannot_take_the_engines_limits_hands_over_to_spawning_and_says_why_once(
    make_executor: MakeExecutor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, workdir: Path
) -> None:
    # A limit the server may not set (say, a hard limit above its own, raised by a privileged engine since the
    # server started): the run is spawned, with the engine's own limits, as every run after it.
    executor = make_executor()
    caplog.set_level(logging.WARNING, logger="polynb.executors.local.executor")
    assert shim_parent(executor, workdir) != os.getpid()
    no_such_resource = (1000, 1, 1)  # "invalid resource specified", as an EPERM would be
    real = launch.process_settings
    monkeypatch.setattr(launch, "process_settings", lambda umask: (umask, (*real(umask)[1], no_such_resource)))
    assert shim_parent(executor, workdir) == os.getpid()
    assert shim_parent(executor, workdir) == os.getpid()
    (message,) = warnings(caplog)
    assert "the fork server cannot take the engine's resource limits" in message
    assert "each shim is spawned" in message


def open_fds() -> dict[str, str]:
    """This process's open fds and what each is (``pipe:[...]``, ``anon_inode:[pidfd]``, a path, ...)."""
    fds: dict[str, str] = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd, closed already
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return fds


def test_no_file_descriptor_is_left_open_after_shutdown(make_executor: MakeExecutor, workdir: Path) -> None:
    gc.collect()  # files an earlier test left to the collector are closed now, not during this test
    before = open_fds()
    executor = make_executor()
    for _ in range(3):
        run_true(executor)
    shim, recorder, _ = waiting_op(executor)
    executor.stop(recorder.events[0].run_uuid, grace=5)
    assert recorder.final().status == "stopped"
    wait_dead(shim)
    executor.shutdown()
    after = open_fds()
    assert {fd: what for fd, what in after.items() if before.get(fd) != what} == {}


def test_the_fork_server_imports_nothing_the_shim_does_not() -> None:
    # Every shim is a copy of the server: what it imports, each shim carries (but for `spare_folders`, which every
    # shim loads at its end, once its run's final status is written).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import polynb.executors.local.shim;"
        "before = set(sys.modules); import polynb.executors.local.forkserver;"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([PY, "-I", "-S", "-c", probe, PACKAGE_ROOT], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["_socket", "polynb.executors.local.forkserver", "polynb.executors.local.spare_folders"]


def test_an_unknown_spawn_mode_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPAWN_MODE_ENV, "vfork")
    with pytest.raises(ValueError, match=r"POLYNB_LOCAL_SPAWN='vfork': expected 'fork' or 'spawn'"):
        LocalExecutor()


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            with contextlib.suppress(OSError, ValueError):  # gone meanwhile
                if parent_of(int(entry)) == pid and alive(int(entry)):
                    found.add(int(entry))
    return found


def spare_of(server: int, shims: set[int]) -> int:
    """The child the idle server forked ahead of the next request (re-checked: it forks it after its reply)."""
    spares: list[int] = []

    def forked() -> bool:
        spares[:] = sorted(children_of(server) - shims)
        return len(spares) == 1

    wait_until(forked, "the server to fork a spare shim")
    return spares[0]


def files_of(pid: int) -> list[str]:
    files = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            files.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return files


@FORK_ONLY
def test_the_next_shim_is_forked_while_the_server_is_idle_and_holds_nothing_of_a_run_until_then(
    make_executor: MakeExecutor, workdir: Path, tmp_path: Path
) -> None:
    executor = make_executor()
    shim, _, _ = waiting_op(executor)
    server = parent_of(shim)
    spare = spare_of(server, {shim})
    # What the server has (its stderr) and a socket of its own: no run's pipe or lock.
    server_files = files_of(server)
    assert [f for f in files_of(spare) if f not in server_files and f != "/dev/null" and "socket:" not in f] == []
    assert not [f for f in files_of(spare) if f.startswith(str(tmp_path))]
    assert os.getsid(spare) == spare  # in a session of its own already
    nxt, recorder, _ = waiting_op(executor)
    assert nxt == spare  # the next run's shim is that child
    assert spare_of(server, {shim, nxt}) not in (shim, nxt)  # and a new one waits for the run after
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"


def standard_fds(pid: int) -> list[str]:
    """What a process has on fds 0-3."""
    return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in range(4)]


def test_every_shim_starts_with_nothing_on_0_and_2_the_engines_pipe_on_1_and_the_runs_lock_on_3(
    make_executor: MakeExecutor, workdir: Path, spawn_mode: str
) -> None:
    # Whichever way it started: spawned, forked by a spare, or forked on request (no spare left). On 2, a byte a
    # shim's C code writes (a fatal error's report) must not reach the engine's pipe, whose bytes are wake-ups.
    executor = make_executor()
    shims = [waiting_op(executor)]
    if spawn_mode == "fork":
        server = parent_of(shims[0][0])
        spare = spare_of(server, {shims[0][0]})
        shims.append(waiting_op(executor))
        assert shims[-1][0] == spare
        spare = spare_of(server, {pid for pid, _, _ in shims})
        os.kill(spare, signal.SIGKILL)
        wait_dead(spare)
        shims.append(waiting_op(executor))
        assert shims[-1][0] != spare
    for pid, _, status in shims:
        internal = status.parent / ".executor"
        stdin, stdout, stderr, lock = standard_fds(pid)
        assert stdin == "/dev/null"
        assert stdout.startswith("pipe:")
        # A forked shim makes its log when it first writes there; a spawned one is started on it.
        assert stderr == ("/dev/null" if spawn_mode == "fork" else str(internal / "shim.log"))
        assert lock == str(internal / "lock")
    (workdir / "go").touch()
    for _, recorder, _ in shims:
        assert recorder.final().status == "succeeded"


@FORK_ONLY
def test_a_spare_that_died_waiting_is_replaced_by_a_fork_on_request(make_executor: MakeExecutor, workdir: Path) -> None:
    executor = make_executor()
    shim, _, _ = waiting_op(executor)
    server = parent_of(shim)
    spare = spare_of(server, {shim})
    os.kill(spare, signal.SIGKILL)
    wait_dead(spare)
    second, recorder, _ = waiting_op(executor)
    assert second != spare
    assert parent_of(second) == server
    assert spare_of(server, {shim, second}) != spare  # forked ahead again
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"


@FORK_ONLY
def test_the_spare_ends_with_the_server_when_the_executor_shuts_down(
    make_executor: MakeExecutor, workdir: Path
) -> None:
    executor = make_executor()
    shim, _, _ = waiting_op(executor)
    server = parent_of(shim)
    spare = spare_of(server, {shim})
    executor.shutdown(stop_running=False)
    wait_dead(spare)
    assert alive(shim)  # the runs carry on
    (workdir / "go").touch()
    wait_dead(shim)
