"""Crash safety: runs outlive the engine, and a new engine re-attaches without losing an event.

Engine death is simulated with ``shutdown(stop_running=False)``: the executor closes its pipes and its
thread and forgets the runs, as a SIGKILLed engine would, while the shims carry on.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path

import pytest
from support.execkit import PY, MakeExecutor, alive, container, make_op, read_pid, wait_dead, wait_until
from support.recorder import UpdateRecorder

from polynb.compiler.types import CompiledOp
from polynb.executors.local.executor import _read_shim_file
from polynb.executors.local.shim import status_line

# Notes its pid, waits for `go`, reports an output, exits 0.
SCRIPT = f"""echo $$$$ > main.pid
while [ ! -f go ]; do sleep 0.02; done
{PY} -c 'from polynb.tracking import log_outputs; log_outputs(done=True)'"""


def long_op(make_executor: MakeExecutor, workdir: Path) -> tuple[CompiledOp, dict[str, object], UpdateRecorder]:
    """Submit a run that waits for `go` on a first executor, see it running, then let that engine die."""
    first = make_executor()
    recorder = UpdateRecorder()
    op = make_op(first, container("sh", "-c", SCRIPT))
    record = first.submit(op, recorder)
    recorder.until("running")
    first.shutdown(stop_running=False)
    return op, record, recorder


def final_line_written(op: CompiledOp) -> bool:
    status = Path(op.placement.run_artifacts_path) / "status.jsonl"
    return '"status":"succeeded"' in status.read_text()


def test_reattach_to_a_live_run_replays_and_follows_it_to_the_end(make_executor: MakeExecutor, workdir: Path) -> None:
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    assert alive(main_pid)  # the run outlived its engine
    second = make_executor()
    recorder = UpdateRecorder()
    assert second.reattach(op, record, recorder)
    assert recorder.next().status == "starting"  # replayed from the status file
    assert recorder.next().status == "running"
    (workdir / "go").touch()
    final = recorder.final()
    assert final.status == "succeeded", final.message
    assert final.outputs == {"done": True}
    assert recorder.statuses == ["starting", "running", "succeeded"]


def test_a_run_that_ended_while_no_engine_watched_still_delivers_its_end(
    make_executor: MakeExecutor, workdir: Path
) -> None:
    op, record, _ = long_op(make_executor, workdir)
    (workdir / "go").touch()
    wait_until(lambda: final_line_written(op), "the shim to finish the run alone")
    second = make_executor()
    recorder = UpdateRecorder()
    assert second.reattach(op, record, recorder)
    final = recorder.final()
    assert (final.status, final.outputs) == ("succeeded", {"done": True})
    assert recorder.statuses == ["starting", "running", "succeeded"]


def test_reattach_works_from_the_run_folder_alone(make_executor: MakeExecutor, workdir: Path) -> None:
    # The engine died before the store kept the handle record: the run folder knows the shim.
    op, _, _ = long_op(make_executor, workdir)
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, {}, recorder)
    recorder.until("running")
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"


def test_a_dead_shim_without_a_final_status_is_process_lost(make_executor: MakeExecutor, workdir: Path) -> None:
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    shim_pid = int(str(record["shim_pid"]))
    os.kill(shim_pid, signal.SIGKILL)
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, record, recorder)
    final = recorder.final()
    assert (final.status, final.reason) == ("failed", "ProcessLost")
    assert str(shim_pid) in final.message
    wait_dead(main_pid)  # its orphaned container is killed, not left running
    # The verdict is written down: the next engine sees the same end.
    again = UpdateRecorder()
    assert make_executor().reattach(op, record, again)
    assert (again.final().reason, again.statuses) == ("ProcessLost", ["starting", "running", "failed"])


def test_stop_after_reattach(make_executor: MakeExecutor, workdir: Path) -> None:
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    second = make_executor()
    recorder = UpdateRecorder()
    assert second.reattach(op, record, recorder)
    recorder.until("running")
    second.stop(op.uuid, grace=5)
    assert recorder.final().status == "stopped"
    assert not alive(main_pid)


def test_reattach_to_a_run_that_never_started_here_returns_false(make_executor: MakeExecutor) -> None:
    executor = make_executor()
    op = make_op(executor, container("true"))
    assert not executor.reattach(op, {}, UpdateRecorder())


def test_a_reused_pid_is_not_mistaken_for_the_shim(make_executor: MakeExecutor, workdir: Path) -> None:
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    os.kill(int(str(record["shim_pid"])), signal.SIGKILL)
    # Claim the shim had another start time: as if its pid now belonged to another process.
    forged = {**record, "shim_start_time": 1}
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, forged, recorder)
    assert recorder.final().reason == "ProcessLost"
    wait_dead(main_pid)


def test_a_run_whose_shim_is_alive_is_never_started_again(make_executor: MakeExecutor, workdir: Path) -> None:
    # The shim holds the run's lock from before it starts: another engine's submit cannot start a second one.
    op, _, _ = long_op(make_executor, workdir)
    with pytest.raises(RuntimeError, match="already running"):
        make_executor().submit(op, UpdateRecorder())
    (workdir / "go").touch()
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, {}, recorder)
    assert recorder.final().status == "succeeded"


def test_a_live_shim_not_known_by_pid_yet_is_followed_and_stopped(make_executor: MakeExecutor, workdir: Path) -> None:
    """Issue 11.1: an engine that died before the shim wrote its identity left a live run the next engine
    took for lost. Made here by hiding the identity (the lock file's lines) of a paused shim until after the
    re-attach; the file stays, and so does the shim's lock on it."""
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    shim_pid = int(str(record["shim_pid"]))
    lock_file = Path(op.placement.run_artifacts_path) / ".executor" / "lock"
    os.kill(shim_pid, signal.SIGSTOP)
    try:
        hidden = lock_file.read_bytes()
        os.truncate(lock_file, 0)
        second = make_executor()
        recorder = UpdateRecorder()
        assert second.reattach(op, {}, recorder)
        second.stop(op.uuid, grace=5)  # cannot be signalled yet: sent once the shim is found
        fd = os.open(lock_file, os.O_WRONLY)
        try:
            os.pwrite(fd, hidden, 0)
        finally:
            os.close(fd)
    finally:
        os.kill(shim_pid, signal.SIGCONT)
    final = recorder.final()
    assert (final.status, final.message) == ("stopped", "stopped on request")  # by the shim, not killed
    wait_dead(main_pid)
    wait_dead(shim_pid)
    lines = [json.loads(line) for line in (Path(op.placement.run_artifacts_path) / "status.jsonl").open()]
    assert [(line["seq"], line["status"]) for line in lines] == [(1, "starting"), (2, "running"), (3, "stopped")]


def as_earlier_layout(internal: Path) -> None:
    """Rewrite a live run's folder as a shim of an earlier polynb left it: its identity in ``.executor/shim``,
    only its containers in the lock file (which the shim holds, and adds nothing to afterwards here)."""
    identity, containers = (internal / "lock").read_text().split("\n", 1)
    pid, start, tag, offset = identity.split()
    assert tag == "shim"
    (internal / "shim").write_text(f"{pid} {start} {offset}\n")
    fd = os.open(internal / "lock", os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, containers.encode())
    finally:
        os.close(fd)


def test_the_shim_is_known_from_the_lock_file_alone(make_executor: MakeExecutor, workdir: Path) -> None:
    # No file of its own: the shim's identity is the first line of the lock it holds, its containers follow.
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    internal = Path(op.placement.run_artifacts_path) / ".executor"
    assert not (internal / "shim").exists()
    identity, main_line = (internal / "lock").read_text().splitlines()
    assert identity == f"{record['shim_pid']} {record['shim_start_time']} shim 0"
    assert main_line.split()[::2] == [str(main_pid), "main"]
    recorder = UpdateRecorder()
    second = make_executor()
    assert second.reattach(op, {}, recorder)  # from the run folder alone
    recorder.until("running")
    second.stop(op.uuid, grace=5)  # signalled through the pidfd of the shim the lock file names
    assert recorder.final().message == "stopped on request"
    wait_dead(main_pid)


def test_a_run_of_an_earlier_layout_is_re_attached_and_followed(make_executor: MakeExecutor, workdir: Path) -> None:
    op, _, _ = long_op(make_executor, workdir)
    as_earlier_layout(Path(op.placement.run_artifacts_path) / ".executor")
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, {}, recorder)
    recorder.until("running")
    (workdir / "go").touch()
    assert recorder.final().status == "succeeded"
    assert recorder.statuses == ["starting", "running", "succeeded"]


def test_a_lost_shim_of_an_earlier_layout_is_found_and_its_orphans_killed(
    make_executor: MakeExecutor, workdir: Path
) -> None:
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    shim_pid = int(str(record["shim_pid"]))
    as_earlier_layout(Path(op.placement.run_artifacts_path) / ".executor")
    os.kill(shim_pid, signal.SIGKILL)
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, {}, recorder)
    final = recorder.final()
    assert (final.status, final.reason) == ("failed", "ProcessLost")
    assert str(shim_pid) in final.message  # known from the old shim file
    wait_dead(main_pid)


def test_only_one_engine_writes_the_end_of_a_lost_run(make_executor: MakeExecutor, workdir: Path) -> None:
    """Issue 11.1: a run folder never gets two lines with the same seq. Here another engine is writing the
    verdict on a dead shim (it holds the run's lock) when this one finds the shim gone: it must take that
    verdict, not append one of its own."""
    op, record, _ = long_op(make_executor, workdir)
    run_dir = Path(op.placement.run_artifacts_path)
    main_pid = read_pid(workdir / "main.pid")
    os.kill(int(str(record["shim_pid"])), signal.SIGKILL)
    wait_dead(int(str(record["shim_pid"])))
    try:
        lock = os.open(run_dir / ".executor" / "lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other engine, about to write
            recorder = UpdateRecorder()
            assert make_executor().reattach(op, record, recorder)
            assert recorder.next().status == "starting"
            assert recorder.next().status == "running"
            with open(run_dir / "status.jsonl", "ab") as f:
                f.write(status_line(3, 1.0, "failed", "ProcessLost", "written by the other engine", None))
        finally:
            os.close(lock)
        final = recorder.final()
        assert (final.status, final.message) == ("failed", "written by the other engine")
        seqs = [json.loads(line)["seq"] for line in (run_dir / "status.jsonl").open()]
        assert seqs == [1, 2, 3]
    finally:
        # Its shim was killed, and the other engine of this story is the test: let the container end.
        (workdir / "go").touch()
        wait_dead(main_pid)


def test_the_orphans_of_a_lost_shim_of_an_earlier_polynb_are_killed(make_executor: MakeExecutor, workdir: Path) -> None:
    # Earlier shims listed their containers in `.executor/procs`; now they go into the lock file they hold.
    op, record, _ = long_op(make_executor, workdir)
    main_pid = read_pid(workdir / "main.pid")
    internal = Path(op.placement.run_artifacts_path) / ".executor"
    assert str(main_pid) in (internal / "lock").read_text()
    (internal / "procs").write_text((internal / "lock").read_text())
    os.truncate(internal / "lock", 0)
    os.kill(int(str(record["shim_pid"])), signal.SIGKILL)
    recorder = UpdateRecorder()
    assert make_executor().reattach(op, record, recorder)
    assert recorder.final().reason == "ProcessLost"
    wait_dead(main_pid)


def test_an_identity_being_written_is_not_taken_for_the_shim(tmp_path: Path) -> None:
    # The shim writes its identity in place (no rename): a line without its newline may be cut anywhere.
    (tmp_path / ".executor").mkdir()
    lock_file = tmp_path / ".executor" / "lock"
    lock_file.write_text("4242 99 shim 12")  # of "4242 99 shim 123\n"
    assert _read_shim_file(tmp_path) is None
    lock_file.write_text("4242 99 shim 123\n4300 100 main\n")
    assert _read_shim_file(tmp_path) == (4242, 99, 123)


def test_an_earlier_versions_shim_file_is_read_and_its_lock_lines_are_never_the_identity(tmp_path: Path) -> None:
    (tmp_path / ".executor").mkdir()
    (tmp_path / ".executor" / "lock").write_text("4300 100 123\n")  # a container named "123", of an earlier shim
    shim_file = tmp_path / ".executor" / "shim"
    shim_file.write_text("4242 99 12")
    assert _read_shim_file(tmp_path) is None
    shim_file.write_text("4242 99 123\n")
    assert _read_shim_file(tmp_path) == (4242, 99, 123)
