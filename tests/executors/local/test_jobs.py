"""Local jobs: exit codes, environment, argv, working folder, logs and outputs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest
from support.execkit import PY, container, make_op
from support.recorder import UpdateRecorder

from polynb.compiler.types import ContainerSpec, InitStep
from polynb.executors.base import Executor
from polynb.executors.local.executor import BASE_DIR_LABEL, PACKAGE_ROOT, LocalExecutor
from polynb.executors.local.launch import SPAWN_MODE_ENV


def run(executor: LocalExecutor, main: ContainerSpec, **kw: object) -> UpdateRecorder:
    recorder = UpdateRecorder()
    executor.submit(make_op(executor, main, **kw), recorder)  # type: ignore[arg-type]
    recorder.final()
    return recorder


def test_the_local_executor_follows_the_protocol(executor: LocalExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.name == "local"


def test_exit_code_zero_succeeds_after_starting_and_running(executor: LocalExecutor) -> None:
    recorder = run(executor, container("true"))
    assert recorder.statuses == ["starting", "running", "succeeded"]
    final = recorder.seen[-1]
    assert (final.reason, final.outputs) == ("ExitCode", {})
    assert all(u.at > 0 for u in recorder.seen)


def test_a_failing_job_reports_its_exit_code_and_the_tail_of_its_log(executor: LocalExecutor) -> None:
    script = "import sys\nfor i in range(100): print('line', i)\nsys.exit(3)"
    final = run(executor, container(PY, "-c", script)).seen[-1]
    assert (final.status, final.reason) == ("failed", "ExitCode")
    assert final.message.startswith("exit code 3\n")
    assert "line 99" in final.message
    assert "line 50" not in final.message  # a tail, not the whole log


def test_a_missing_command_fails_with_a_clear_message(executor: LocalExecutor) -> None:
    final = run(executor, container("no-such-command-polynb")).seen[-1]
    assert (final.status, final.reason) == ("failed", "SpawnFailed")
    assert "no-such-command-polynb" in final.message


def test_environment_has_polyaxon_variables_the_container_env_and_the_inherited_one(
    executor: LocalExecutor, workdir: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_TEST_INHERITED", "yes")
    names = ["POLYAXON_RUN_UUID", "POLYAXON_RUN_OUTPUTS_PATH", "POLYAXON_RUN_ARTIFACTS_PATH", "POLYNB_HOME"]
    names += ["POLYNB_TEST_INHERITED", "MY_VAR", "PYTHONUNBUFFERED"]
    script = f"import json, os; print(json.dumps({{n: os.environ.get(n) for n in {names!r}}}))"
    recorder = UpdateRecorder()
    op = make_op(executor, container(PY, "-c", script, env={"MY_VAR": "x y $HOME"}))
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    env = json.loads((Path(op.placement.run_artifacts_path) / "logs" / "main.log").read_text())
    assert env == {
        "POLYAXON_RUN_UUID": op.uuid,
        "POLYAXON_RUN_OUTPUTS_PATH": op.placement.run_outputs_path,
        "POLYAXON_RUN_ARTIFACTS_PATH": op.placement.run_artifacts_path,
        "POLYNB_HOME": str(home),
        "POLYNB_TEST_INHERITED": "yes",
        "MY_VAR": "x y $HOME",
        "PYTHONUNBUFFERED": "1",
    }
    assert op.placement.run_artifacts_path == str(home / "artifacts" / op.uuid)


def test_arguments_are_never_interpreted_by_a_shell(executor: LocalExecutor, workdir: Path) -> None:
    final = run(executor, container("echo", "$(touch pwned)", "; touch pwned2", "`touch pwned3`")).seen[-1]
    assert final.status == "succeeded"
    assert not list(workdir.iterdir())


def test_command_and_args_get_kubernetes_expansion_against_the_declared_env(
    executor: LocalExecutor, workdir: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the kubelet does: `$(NAME)` of a variable declared for the container (its env, polynb's run variables),
    # `$$` -> `$`, anything else as written; the engine's own environment is not declared, so not a reference.
    monkeypatch.setenv("POLYNB_TEST_INHERITED", "yes")
    script = "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ['B'], os.environ['PASS']]))"
    words = ["$(LR)", "--lr=$(LR)", "$$(LR)", "$(UNDEFINED)", "$(B)", "$(SPACED)", "$(POLYAXON_RUN_UUID)"]
    words += ["$(POLYNB_TEST_INHERITED)", "$(POLYNB_HOME)", "$(HOME)", "pid:$$", "$HOME"]
    env = {"LR": "0.1", "B": "$(LR)/$(LATER)", "LATER": "x", "PASS": "p$$w", "SPACED": "a b; touch pwned"}
    init = [InitStep(kind="container", container=container("sh", "-c", "echo $(WHO) > init.txt", env={"WHO": "i"}))]
    op = make_op(executor, container(PY, "-c", script, *words, env=env), init=init)
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    argv, b, password = json.loads((Path(op.placement.run_artifacts_path) / "logs" / "main.log").read_text())
    assert argv == [
        "0.1",
        "--lr=0.1",
        "$(LR)",
        "$(UNDEFINED)",
        "0.1/$(LATER)",  # an env value sees the entries before it only
        "a b; touch pwned",  # one argument, never a shell's
        op.uuid,
        "$(POLYNB_TEST_INHERITED)",
        "$(POLYNB_HOME)",
        "$(HOME)",
        "pid:$",
        "$HOME",
    ]
    assert (b, password) == ("0.1/$(LATER)", "p$w")
    assert (workdir / "init.txt").read_text() == "i\n"
    assert not (workdir / "pwned").exists()


def test_sh_c_works_when_the_user_writes_it(executor: LocalExecutor, workdir: Path) -> None:
    assert run(executor, container("sh", "-c", "echo made > made.txt && test -f made.txt")).statuses[-1] == "succeeded"
    assert (workdir / "made.txt").read_text() == "made\n"


def test_working_dir_defaults_to_the_base_folder_and_relative_ones_start_there(
    executor: LocalExecutor, workdir: Path, tmp_path: Path
) -> None:
    (workdir / "sub").mkdir()
    (workdir / "train.py").write_text("import os; open('cwd.txt', 'w').write(os.getcwd())")
    assert run(executor, container(PY, "train.py")).statuses[-1] == "succeeded"  # `python train.py` works
    assert (workdir / "cwd.txt").read_text() == str(workdir)
    assert run(executor, container("sh", "-c", "pwd > cwd.txt", working_dir="sub")).statuses[-1] == "succeeded"
    assert (workdir / "sub" / "cwd.txt").read_text().strip() == str(workdir / "sub")
    other = tmp_path / "other"
    other.mkdir()
    labels = {BASE_DIR_LABEL: str(other)}
    assert run(executor, container("sh", "-c", "pwd > cwd.txt"), labels=labels).statuses[-1] == "succeeded"
    assert (other / "cwd.txt").read_text().strip() == str(other)


def test_a_missing_working_dir_fails_the_run(executor: LocalExecutor) -> None:
    final = run(executor, container("true", working_dir="nowhere")).seen[-1]
    assert (final.status, final.reason) == ("failed", "SpawnFailed")
    assert "nowhere" in final.message


def test_outputs_json_written_by_the_op_come_with_the_final_update(executor: LocalExecutor) -> None:
    script = 'echo \'{"accuracy": 0.9, "tags": ["a"]}\' > "$POLYAXON_RUN_OUTPUTS_PATH/outputs.json"'
    final = run(executor, container("sh", "-c", script)).seen[-1]
    assert final.status == "succeeded"
    assert final.outputs == {"accuracy": 0.9, "tags": ["a"]}


def test_tracking_log_outputs_from_the_job(executor: LocalExecutor) -> None:
    script = (
        "from polynb.tracking import log_outputs\nlog_outputs(loss=0.5, epochs=3)\nlog_outputs(loss=0.25, model='m')\n"
    )
    final = run(executor, container(PY, "-c", script)).seen[-1]
    assert final.status == "succeeded", final.message
    assert final.outputs == {"loss": 0.25, "epochs": 3, "model": "m"}


def test_invalid_outputs_json_keeps_the_status_and_says_why(executor: LocalExecutor) -> None:
    final = run(executor, container("sh", "-c", 'echo "{oops" > "$POLYAXON_RUN_OUTPUTS_PATH/outputs.json"')).seen[-1]
    assert final.status == "succeeded"
    assert final.outputs is None
    assert "outputs.json is not valid JSON" in final.message


def test_logs_go_to_one_file_per_container_stdout_and_stderr_interleaved(executor: LocalExecutor) -> None:
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "echo out1; echo err1 >&2; echo out2"))
    executor.submit(op, recorder)
    recorder.final()
    log = Path(op.placement.run_artifacts_path) / "logs" / "main.log"
    assert log.read_text() == "out1\nerr1\nout2\n"
    assert list(executor.logs(op.uuid)) == ["out1", "err1", "out2"]


def test_an_op_has_its_stdin_and_log_open_and_no_file_the_engine_was_given(executor: LocalExecutor) -> None:
    # An fd the engine's own parent left it (say, the pipe a CI step reads the engine's output from): an op that
    # held it would keep that step waiting as long as the op runs, and an op may outlive its engine by design.
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    script = "import os\nfor fd in range(3, 4096):\n    try: os.fstat(fd)\n    except OSError: continue\n    print(fd)"
    recorder = UpdateRecorder()
    op = make_op(executor, container(PY, "-c", script))
    try:
        executor.submit(op, recorder)
        assert recorder.final().status == "succeeded"
    finally:
        os.close(read_end)
        os.close(write_end)
    assert list(executor.logs(op.uuid)) == []  # nothing open above stderr


IGNORING_ENGINE = """
import signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # as an engine started by a parent that ignores it inherits it
sys.path.insert(0, {tests!r})
from support.execkit import container, make_op
from support.recorder import UpdateRecorder
from polynb.executors.local.executor import LocalExecutor

executor = LocalExecutor(base_dir={workdir!r})
recorder = UpdateRecorder()
op = make_op(executor, container("sh", "-c", 'sleep 0.05 & wait $!; echo "waited $?"'))
executor.submit(op, recorder)
print(recorder.final().status, *executor.logs(op.uuid), flush=True)
executor.shutdown()
"""


def test_an_engine_that_ignores_sigchld_still_runs_ops_that_wait_for_their_children(
    workdir: Path, spawn_mode: str
) -> None:
    # An ignored SIGCHLD survives exec: children are reaped by the kernel and `wait` finds none. A shim and its
    # ops get the default whatever the engine has, as the ops of a shell do.
    script = IGNORING_ENGINE.format(tests=str(Path(__file__).resolve().parents[2]), workdir=str(workdir))
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, SPAWN_MODE_ENV: spawn_mode}
    engine = subprocess.run([PY, "-c", script], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert engine.stdout.split() == ["succeeded", "waited", "0"]
    assert "Traceback" not in engine.stderr  # (the executor's threads log what they cannot handle there)


def test_logs_follow_tails_until_the_run_is_final(executor: LocalExecutor, workdir: Path) -> None:
    script = "echo first; while [ ! -f go ]; do sleep 0.02; done; echo second; printf last"
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", script))
    executor.submit(op, recorder)
    lines: list[str] = []
    got_first = threading.Event()

    def follow() -> None:
        for line in executor.logs(op.uuid, follow=True):
            lines.append(line)
            got_first.set()

    reader = threading.Thread(target=follow)
    reader.start()
    assert got_first.wait(60)
    assert lines == ["first"]  # the run is still waiting for `go`
    (workdir / "go").touch()
    reader.join(60)
    assert not reader.is_alive()
    assert lines == ["first", "second", "last"]
    assert recorder.final().status == "succeeded"


def test_logs_of_an_unknown_run_are_empty(executor: LocalExecutor) -> None:
    assert list(executor.logs("0" * 32, follow=True)) == []


def test_images_are_ignored_and_said_once(executor: LocalExecutor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="polynb.executors.local.executor")
    for _ in range(2):
        assert run(executor, container("true", image="python:3.11")).statuses[-1] == "succeeded"
    assert sum("images are ignored" in r.getMessage() for r in caplog.records) == 1


def test_a_retry_of_the_same_run_reports_the_new_attempt_only(executor: LocalExecutor, workdir: Path) -> None:
    op = make_op(executor, container("sh", "-c", "test -f ok"))
    first = UpdateRecorder()
    executor.submit(op, first)
    assert first.final().status == "failed"
    (workdir / "ok").touch()
    second = UpdateRecorder()
    executor.submit(op, second)
    assert second.final().status == "succeeded"
    assert second.statuses == ["starting", "running", "succeeded"]


def test_many_quick_jobs_at_once(executor: LocalExecutor) -> None:
    recorders = [UpdateRecorder() for _ in range(30)]
    for recorder in recorders:
        executor.submit(make_op(executor, container("true")), recorder)
    assert all(r.final().status == "succeeded" for r in recorders)
