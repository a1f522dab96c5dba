"""A local run synced to a bucket artifacts store (a real moto S3 server): the sync lives beside the run's shim, so
the files reach the bucket whether the engine lives or not; a killed shim's final sync is redone by the engine;
a store that fails mid-run costs neither the run's status nor its local copy, and says so as a warning."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.execkit import MakeExecutor, container, make_op, wait_until
from support.recorder import UpdateRecorder
from support.s3kit import MotoServer

from polynb.executors.local.executor import LocalExecutor
from polynb.store.remote import StoreAccess, StoreRecord

# Writes a first event file, waits for `go`, writes a second one and a log line, exits 0.
SCRIPT = """mkdir -p "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard"
echo one > "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard/events.1"
while [ ! -f go ]; do sleep 0.02; done
echo two > "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard/events.2"
echo finished"""


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer().start()
    yield moto
    moto.stop()


@pytest.fixture
def bucket(server: MotoServer, request: pytest.FixtureRequest) -> str:
    name = f"runs-{abs(hash(request.node.nodeid)) % 10**8}"
    server.fs().mkdir(name)
    return name


def store_of(server: MotoServer, bucket: str) -> StoreAccess:
    url = f"s3://{bucket}/polynb"
    return StoreAccess(StoreRecord("runs-bucket", "s3", url, every=0.2), server.connection("runs-bucket", url))


def stored(server: MotoServer, bucket: str, uuid: str) -> dict[str, bytes]:
    fs, root = server.fs(), f"{bucket}/polynb/{uuid}"
    found: dict[str, bytes] = {}
    for path in fs.find(root):
        try:
            found[path[len(root) + 1 :]] = fs.cat_file(path)
        except FileNotFoundError:  # listed, then not found when read (seen once on moto while the sync put it)
            continue
    return found


def make(make_executor: MakeExecutor, server: MotoServer, bucket: str) -> LocalExecutor:
    access = store_of(server, bucket)
    return make_executor(artifacts_store_of=lambda _uuid: access)


def test_files_reach_the_bucket_while_the_run_runs_and_after_its_engine_died(
    make_executor: MakeExecutor, workdir: Path, server: MotoServer, bucket: str
) -> None:
    first = make(make_executor, server, bucket)
    recorder = UpdateRecorder()
    op = make_op(first, container("sh", "-c", SCRIPT))
    record = first.submit(op, recorder)
    wait_until(lambda: "outputs/tensorboard/events.1" in stored(server, bucket, op.uuid), "the first file synced")
    first.shutdown(stop_running=False)  # the engine dies; the shim and its sync carry on
    (workdir / "go").touch()
    run_dir = Path(op.placement.run_artifacts_path)
    synced = run_dir / ".executor" / "store-synced"
    wait_until(lambda: synced.exists() and synced.read_text() == "done\n", "the final sync, with no engine")
    files = stored(server, bucket, op.uuid)
    assert files["outputs/tensorboard/events.2"] == b"two\n"
    assert files["logs/main.log"] == b"finished\n"
    second = make(make_executor, server, bucket)
    again = UpdateRecorder()
    assert second.reattach(op, record, again)
    assert again.final().status == "succeeded"


def test_a_killed_shim_has_its_final_sync_done_by_the_engine(
    make_executor: MakeExecutor, workdir: Path, server: MotoServer, bucket: str
) -> None:
    executor = make(make_executor, server, bucket)
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", SCRIPT))
    record = executor.submit(op, recorder)
    recorder.until("running")
    run_dir = Path(op.placement.run_artifacts_path)
    wait_until(lambda: (run_dir / "outputs" / "tensorboard" / "events.1").exists(), "the first file written")
    (run_dir / "outputs" / "late.txt").write_text("written just before the kill")
    os.kill(int(record["shim_pid"]), signal.SIGKILL)
    final = recorder.final()
    assert (final.status, final.reason) == ("failed", "ProcessLost")
    synced = run_dir / ".executor" / "store-synced"
    wait_until(lambda: synced.exists() and synced.read_text() == "done\n", "the engine's final sync")
    files = stored(server, bucket, op.uuid)
    assert files["outputs/late.txt"] == b"written just before the kill"
    assert files["outputs/tensorboard/events.1"] == b"one\n"


def test_a_store_failing_mid_run_is_a_warning_and_the_run_and_its_files_are_kept(
    make_executor: MakeExecutor, workdir: Path, server: MotoServer, bucket: str
) -> None:
    executor = make(make_executor, server, bucket)
    recorder = UpdateRecorder()
    op = make_op(executor, container("sh", "-c", SCRIPT))
    executor.submit(op, recorder)
    wait_until(lambda: "outputs/tensorboard/events.1" in stored(server, bucket, op.uuid), "the first file synced")
    server.fs().rm(bucket, recursive=True)  # the store goes away under the run
    (workdir / "go").touch()
    final = recorder.final()
    assert final.status == "succeeded", "the store's failure is not the run's"
    run_dir = Path(op.placement.run_artifacts_path)
    assert (run_dir / "outputs" / "tensorboard" / "events.2").read_text() == "two\n"
    assert (run_dir / ".executor" / "store-synced").read_text() == "failed 1\n", "tried: no engine redoes it"
    events = [json.loads(line) for line in (run_dir / "outputs" / "events.jsonl").read_text().splitlines()]
    warnings = [e["payload"] for e in events if e["kind"] == "alert_warning"]
    assert warnings, events
    assert warnings[-1]["connection"] == "runs-bucket"
    assert warnings[-1]["path"] == str(run_dir)
    assert "no such bucket" in warnings[-1]["message"]
    assert f"the local copy is kept at {run_dir}" in warnings[-1]["message"]
