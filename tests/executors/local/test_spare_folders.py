"""Run folders made ahead: a run in one is the same as a run in a folder made on the spot, for every user of it."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.execkit import MakeExecutor, container, make_op, wait_dead
from support.recorder import UpdateRecorder

from polynb.compiler.types import CompiledOp, InitStep
from polynb.executors.local import spare_folders
from polynb.executors.local.executor import LocalExecutor
from polynb.executors.local.layout import SPARE_FOLDERS_DIR
from polynb.executors.local.spare_folders import make_spare, replenish, spare_prefix, take_spare
from polynb.store.paths import default_artifacts_root

KEEP = spare_folders.KEEP


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """Tests here set the umask: it is put back after each."""
    mask = os.umask(0o022)
    yield
    os.umask(mask)


def spares() -> Path:
    return default_artifacts_root() / SPARE_FOLDERS_DIR


def ready(prefix: str = "") -> list[str]:
    """The complete spares of the default root whose names start with ``prefix``."""
    names = [p.name for p in spares().iterdir()] if spares().is_dir() else []
    return [n for n in names if n.startswith(prefix) and not n.startswith(".")]


def tree(run_dir: Path) -> dict[str, str]:
    """Every entry of a run folder with its mode: what a user sees."""
    entries = {".": stat.filemode(run_dir.stat().st_mode)}
    for path in sorted(run_dir.rglob("*")):
        entries[str(path.relative_to(run_dir))] = stat.filemode(path.stat().st_mode)
    return entries


def run(executor: LocalExecutor, *argv: str) -> tuple[Path, list[str]]:
    """Run an op to its end, and wait for its shim's end (after it topped up the spares)."""
    recorder = UpdateRecorder()
    op = make_op(executor, container(*(argv or ("true",))))
    record = executor.submit(op, recorder)
    final = recorder.final()
    assert final.status == "succeeded", final
    wait_dead(int(str(record["shim_pid"])))
    return Path(op.placement.run_artifacts_path), list(executor.logs(op.uuid))


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_a_run_in_a_spare_folder_has_the_entries_and_modes_of_one_made_on_the_spot(
    make_executor: MakeExecutor, mask: int
) -> None:
    os.umask(mask)
    executor = make_executor()
    script = 'cd "$POLYAXON_RUN_ARTIFACTS_PATH"; ls -A; ls -A outputs; echo made > outputs/tensorboard/x'
    first, first_logs = run(executor, "sh", "-c", script)  # no spare yet: made on the spot; its shim makes spares
    before = set(ready(spare_prefix(mask)))
    assert len(before) == KEEP
    second, logs = run(executor, "sh", "-c", script)
    assert len(before - set(ready())) == 1  # it took one (and its shim made the next)
    assert len(ready()) == KEEP
    assert tree(second) == tree(first)
    assert logs == first_logs == [".executor", "logs", "outputs", "status.jsonl", "tensorboard"]
    assert (second / "outputs" / "tensorboard" / "x").read_text() == "made\n"


def test_a_spare_made_under_another_umask_is_not_taken(make_executor: MakeExecutor) -> None:
    executor = make_executor()
    run(executor)
    made = set(ready(spare_prefix(0o022)))
    os.umask(0o077)  # a notebook's, between two runs
    run_dir, _ = run(executor)
    assert set(ready(spare_prefix(0o022))) == made  # left where they were
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "logs").stat().st_mode) == 0o700
    assert len(ready(spare_prefix(0o077))) == KEEP  # and the next runs have spares of the new mask


def test_a_second_attempt_keeps_its_folder(make_executor: MakeExecutor) -> None:
    executor = make_executor()
    run(executor)
    made = set(ready())
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", 'cd "$POLYAXON_RUN_OUTPUTS_PATH"; cat kept; echo again >> kept'))
    run_dir = Path(op.placement.run_artifacts_path)
    (run_dir / "outputs").mkdir(parents=True)  # what an earlier attempt left
    (run_dir / "outputs" / "kept").write_text("first\n")
    record = executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    wait_dead(int(str(record["shim_pid"])))
    assert list(executor.logs(op.uuid)) == ["first"]
    assert (run_dir / "outputs" / "kept").read_text() == "first\nagain\n"
    assert set(ready()) == made  # none taken, none made


def test_spares_left_by_an_engine_are_taken_by_the_next_and_not_multiplied(make_executor: MakeExecutor) -> None:
    first = make_executor()
    run(first)
    left = set(ready())
    assert len(left) == KEEP
    first.shutdown()
    second = make_executor()
    run(second)  # its first run takes one of them
    assert len(left - set(ready())) == 1
    assert len(ready()) == KEEP


def test_ops_ending_together_keep_the_spares_to_their_number(make_executor: MakeExecutor) -> None:
    executor = make_executor()
    run(executor)
    recorders, pids = [], []
    for _ in range(12):
        recorder = UpdateRecorder()
        record = executor.submit(make_op(executor, container("sleep", "0.3")), recorder)
        recorders.append(recorder)
        pids.append(int(str(record["shim_pid"])))
    for recorder, pid in zip(recorders, pids, strict=True):
        assert recorder.final().status == "succeeded"
        wait_dead(pid)
    assert len(ready()) == KEEP
    assert sorted(p.name for p in spares().iterdir() if p.name.startswith(".")) == [spare_folders.TOP_UP_LOCK]


def test_two_engines_taking_from_the_same_spares_never_share_one(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    folder = root / SPARE_FOLDERS_DIR
    folder.mkdir(parents=True)
    prefix = spare_prefix(0o022)
    for _ in range(40):
        make_spare(str(folder), prefix)
    taken: list[list[Path]] = [[], []]
    go = threading.Barrier(2)

    def take(index: int) -> None:
        go.wait()
        for n in range(40):
            run_dir = root / f"run-{index}-{n}"
            if take_spare(str(run_dir), prefix):
                taken[index].append(run_dir)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken[0]) + len(taken[1]) == 40  # each spare went to exactly one run
    assert not list(folder.iterdir())
    for run_dir in taken[0] + taken[1]:
        assert sorted(p.name for p in run_dir.iterdir()) == [".executor", "logs", "outputs", "status.jsonl"]


def test_a_run_folder_made_from_an_old_spare_is_dated_when_taken(tmp_path: Path) -> None:
    # `ls -t` over the artifacts root finds the newest run first, however long its spare waited.
    root = tmp_path / "artifacts"
    folder = root / SPARE_FOLDERS_DIR
    folder.mkdir(parents=True)
    name = make_spare(str(folder), spare_prefix(0o022))
    long_ago = time.time() - 7 * 86400
    os.utime(folder / name, (long_ago, long_ago))
    before = time.time()
    assert take_spare(str(root / "run-1"), spare_prefix(0o022))
    assert (root / "run-1").stat().st_mtime >= before - 1


def test_half_made_spares_are_never_taken_and_old_ones_are_swept(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    folder = root / SPARE_FOLDERS_DIR
    prefix = spare_prefix(0o022)
    # Processes that died while making two: one just now (maybe still being made), one long ago.
    fresh, old = folder / f".{prefix}fresh", folder / f".{prefix}old"
    for half in (fresh, old):
        (half / "logs").mkdir(parents=True)
    long_ago = time.time() - spare_folders.STALE_AFTER - 60
    os.utime(old, (long_ago, long_ago))
    assert not take_spare(str(root / "run-1"), prefix)
    assert not (root / "run-1").exists()
    replenish(str(folder), prefix)
    assert fresh.is_dir() and not old.exists()
    assert len([p for p in folder.iterdir() if p.name.startswith(prefix)]) == KEEP
    assert take_spare(str(root / "run-1"), prefix)
    assert sorted(p.name for p in (root / "run-1").iterdir()) == [".executor", "logs", "outputs", "status.jsonl"]


def test_no_spares_where_they_cannot_be_made(make_executor: MakeExecutor) -> None:
    # A root where no folder of ours may be made (a file where the spares would go): runs run as before.
    default_artifacts_root().mkdir(parents=True)
    spares().write_text("not a folder\n")
    executor = make_executor()
    for _ in range(3):
        _, logs = run(executor, "sh", "-c", 'ls -A "$POLYAXON_RUN_ARTIFACTS_PATH"')
        assert logs == [".executor", "logs", "outputs", "status.jsonl"]
    assert spares().read_text() == "not a folder\n"


def submit_after_a_run(executor: LocalExecutor, init_script: str) -> tuple[CompiledOp, UpdateRecorder, int]:
    """Submit an op whose init entry runs ``init_script`` and whose main container echoes ``main``, after a run
    whose shim made the spares (so its folder is a spare): the op, its updates, its shim's pid."""
    run(executor)
    init = [InitStep(kind="container", container=container("sh", "-c", init_script, name="i"))]
    op = make_op(executor, container("echo", "main"), init=init)
    recorder = UpdateRecorder()
    record = executor.submit(op, recorder)
    return op, recorder, int(str(record["shim_pid"]))


def test_logs_followed_in_a_spare_folder_keep_every_init_line(make_executor: MakeExecutor) -> None:
    # `main.log` existing tells a follower that the init entries' logs are complete: in a spare folder it must
    # appear when the main container starts, not before.
    executor = make_executor()
    op, recorder, shim_pid = submit_after_a_run(executor, "sleep 0.3; echo late init line")
    assert (Path(op.placement.run_artifacts_path) / ".executor" / "main.log.spare").exists()  # a spare's
    assert list(executor.logs(op.uuid, follow=True)) == ["late init line", "main"]
    assert recorder.final().status == "succeeded"
    wait_dead(shim_pid)
    assert not (Path(op.placement.run_artifacts_path) / ".executor" / "main.log.spare").exists()  # renamed


def test_a_run_that_never_starts_its_main_container_has_no_main_log(make_executor: MakeExecutor) -> None:
    executor = make_executor()
    op, recorder, _ = submit_after_a_run(executor, "echo init fails; exit 3")
    assert recorder.final().status == "failed"
    run_dir = Path(op.placement.run_artifacts_path)
    assert not (run_dir / "logs" / "main.log").exists()
    assert list(executor.logs(op.uuid)) == ["init fails"]
    assert '"uuid"' in (run_dir / ".executor" / "op.json").read_text()  # written at the end of such a run too
