"""Stopping runs: SIGTERM to the whole group, SIGKILL after the grace period, shutdown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support.execkit import MakeExecutor, alive, container, make_op, read_pid, wait_dead
from support.recorder import UpdateRecorder

from polynb.compiler.types import TerminationSpec
from polynb.executors.local.executor import LocalExecutor
from polynb.executors.local.layout import INTERNAL_DIR, STOP_FILE

# `$$$$` in a command is the shell's `$$` (its pid): Kubernetes' expansion reduces `$$` to `$` on every executor.


def test_stop_terminates_the_run_and_reports_stopped(executor: LocalExecutor, workdir: Path) -> None:
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "echo $$$$ > main.pid; exec sleep 1000"))
    executor.submit(op, recorder)
    recorder.until("running")
    pid = read_pid(workdir / "main.pid")
    executor.stop(op.uuid, grace=30)
    final = recorder.final()
    assert (final.status, final.reason) == ("stopped", "Stopped")
    assert not alive(pid)


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(executor: LocalExecutor, workdir: Path) -> None:
    script = 'trap "echo got TERM" TERM; echo $$$$ > main.pid; while true; do sleep 0.05; done'
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", script))
    executor.submit(op, recorder)
    recorder.until("running")
    pid = read_pid(workdir / "main.pid")
    executor.stop(op.uuid, grace=0.5)
    assert recorder.final().status == "stopped"
    assert not alive(pid)
    assert "got TERM" in (Path(op.placement.run_artifacts_path) / "logs" / "main.log").read_text()


def test_a_stop_that_names_no_grace_gives_the_executors_own(make_executor: MakeExecutor, workdir: Path) -> None:
    """The engine asks without one unless the user gave one (``polynb stop --grace``): the executor's ``stop_grace``
    (``%config PolynbMagics.stop_grace``) applies, not a fixed 10 s."""
    executor = make_executor(stop_grace=0.5)
    script = 'trap "echo got TERM" TERM; echo $$$$ > main.pid; while true; do sleep 0.05; done'
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", script))
    executor.submit(op, recorder)
    recorder.until("running")
    pid = read_pid(workdir / "main.pid")  # its TERM trap is set: `running` comes as the shell starts
    executor.stop(op.uuid)
    assert (executor.run_dir(op.uuid) / INTERNAL_DIR / STOP_FILE).read_text() == "0.5\n"  # what the shim waits
    assert recorder.final().status == "stopped"
    assert not alive(pid)


def test_a_run_past_its_timeout_is_stopped_by_its_own_shim(executor: LocalExecutor, workdir: Path) -> None:
    """The engine's timer stops a run at ``termination.timeout``; with no engine (a service ``polynb run`` left, a
    kernel that died) the shim does it itself a little later, as activeDeadlineSeconds does for a pod."""
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "echo $$$$ > main.pid; exec sleep 1000"), kind="service")
    op = dataclasses.replace(op, termination=TerminationSpec(timeout=0.5))
    executor.submit(op, recorder)
    recorder.until("running")
    pid = read_pid(workdir / "main.pid")
    final = recorder.final()  # nothing asked it to stop
    assert (final.status, final.reason) == ("failed", "Timeout")
    assert "termination.timeout of 0.5 s" in final.message
    assert not alive(pid)


def test_the_whole_process_group_dies_grandchildren_too(executor: LocalExecutor, workdir: Path) -> None:
    # The grandchild ignores SIGTERM: only the group's SIGKILL ends it.
    script = "(trap '' TERM; exec sleep 1000) & echo $! > grandchild.pid; wait"
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", script), sidecars=[container("sleep", "1000", name="side")])
    executor.submit(op, recorder)
    recorder.until("running")
    grandchild = read_pid(workdir / "grandchild.pid")
    executor.stop(op.uuid, grace=0.5)
    assert recorder.final().status == "stopped"
    wait_dead(grandchild)  # it is not our child: init reaps it after the kill


def test_a_grandchild_left_behind_by_a_finished_main_is_killed(executor: LocalExecutor, workdir: Path) -> None:
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "sleep 1000 & echo $! > grandchild.pid"))
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    wait_dead(read_pid(workdir / "grandchild.pid"))


def test_stop_during_init_stops_the_init_container(executor: LocalExecutor, workdir: Path) -> None:
    from polynb.compiler.types import InitStep

    init = [InitStep(kind="container", container=container("sh", "-c", "echo $$$$ > init.pid; exec sleep 1000"))]
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", "touch main-ran"), init=init)
    executor.submit(op, recorder)
    pid = read_pid(workdir / "init.pid")
    executor.stop(op.uuid, grace=5)
    assert recorder.final().status == "stopped"
    assert not alive(pid)
    assert not (workdir / "main-ran").exists()


def test_stop_of_a_finished_or_unknown_run_does_nothing(executor: LocalExecutor) -> None:
    recorder = UpdateRecorder()
    op = make_op(executor, container("true"))
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    executor.stop(op.uuid)
    executor.stop("0" * 32)
    assert recorder.drain()[-1].status == "succeeded"


def test_shutdown_stops_every_run_and_leaves_nothing_running(make_executor: MakeExecutor, workdir: Path) -> None:
    executor = make_executor(stop_grace=0.5)
    recorders, pids = [], []
    for i in range(3):
        recorder = UpdateRecorder()
        main = container("sh", "-c", f"trap '' TERM; echo $$$$ > main{i}.pid; exec sleep 1000")
        executor.submit(make_op(executor, main, sidecars=[container("sleep", "1000", name="s")]), recorder)
        recorder.until("running")
        recorders.append(recorder)
        pids.append(read_pid(workdir / f"main{i}.pid"))
    executor.shutdown()
    assert [r.drain()[-1].status for r in recorders] == ["stopped"] * 3  # delivered before shutdown returns
    assert not any(alive(pid) for pid in pids)
