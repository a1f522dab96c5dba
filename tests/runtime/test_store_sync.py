"""``python -m polynb.runtime.store_sync``: a real subprocess against a real S3 server (moto) and a plain folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.s3kit import DEADLOCK_GUARD, KEYS, MotoServer

from polynb.runtime.store_sync import Sync, side_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer().start()
    yield moto
    moto.stop()


@pytest.fixture
def bucket(server: MotoServer, request: pytest.FixtureRequest) -> str:
    name = "sync-" + str(abs(hash(request.node.name)) % 10**8)
    server.fs().mkdir(name)
    return name


def s3_env(server: MotoServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **KEYS, "AWS_ENDPOINT_URL": server.url, "PYTHONPATH": str(ROOT), **extra}


def sync_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "polynb.runtime.store_sync", *args]


def run_sync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env or {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(sync_cmd(*args), env=env, capture_output=True, text=True, timeout=DEADLOCK_GUARD)


def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not (value := check()):
        assert time.monotonic() < deadline, f"deadlock guard: {what}"
        time.sleep(0.05)
    return value


def write(path: Path, text: str) -> Path:
    """Write ``path`` whole at once (beside, under a name the sync skips, then renamed): a pass never sees it
    half-written, so the number of uploads a test counts does not depend on the machine's speed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f"{path.name}.store-sync-staged")
    staged.write_text(text)
    os.replace(staged, path)
    return path


def objects(server: MotoServer, root: str) -> dict[str, bytes]:
    return server.objects(root)


def test_up_once_to_a_folder_copies_new_files_and_then_only_changed_ones(tmp_path: Path) -> None:
    source, target = tmp_path / "run", tmp_path / "store" / "uuid1"
    write(source / "outputs" / "model.txt", "weights")
    write(source / "logs" / "main.log", "line 1\n")
    write(source / ".executor" / "spec.bin", "internal")

    first = run_sync("up", "--source", str(source), "--target", str(target), "--exclude", ".executor")
    assert first.returncode == 0, first.stderr
    assert (target / "outputs" / "model.txt").read_text() == "weights"
    assert (target / "logs" / "main.log").read_text() == "line 1\n"
    assert not (target / ".executor").exists()
    assert "up 2 files" in first.stdout

    again = run_sync("up", "--source", str(source), "--target", str(target), "--exclude", ".executor")
    assert "up 0 files" in again.stdout, "a new process skips what the store already holds unchanged"

    with (source / "logs" / "main.log").open("a") as f:
        f.write("line 2\n")
    third = run_sync("up", "--source", str(source), "--target", str(target))
    assert "up 2 files" in third.stdout  # the grown log and the no longer excluded spec
    assert (target / "logs" / "main.log").read_text() == "line 1\nline 2\n"
    assert not [p for p in target.rglob("*") if ".store-sync-" in p.name], "no temp file is left behind"


def test_a_pass_sends_only_what_changed_since_the_last_one(tmp_path: Path, server: MotoServer, bucket: str) -> None:
    write(tmp_path / "a.txt", "a")
    write(tmp_path / "sub" / "b.txt", "b")
    store = side_of(f"s3://{bucket}/runs/r1", s3_env(server))
    sync = Sync("up", tmp_path, store)
    assert sync.run_pass() == 2
    assert sync.run_pass() == 0
    write(tmp_path / "sub" / "b.txt", "b, longer")
    write(tmp_path / "c.txt", "c")
    assert sync.run_pass() == 2
    assert objects(server, f"{bucket}/runs/r1") == {"a.txt": b"a", "sub/b.txt": b"b, longer", "c.txt": b"c"}
    assert sync.totals.files == 4


def test_up_every_syncs_while_running_and_once_more_on_sigterm(tmp_path: Path, server: MotoServer, bucket: str) -> None:
    source = tmp_path / "run"
    write(source / "outputs" / "tensorboard" / "events.out.1", "e1")
    root = f"{bucket}/store/uuid2"
    connection = {"name": "store", "kind": "s3", "schema": {"bucket": f"s3://{bucket}/store"}}
    env = s3_env(server, POLYNB_STORE_CONNECTION=json.dumps(connection))
    proc = subprocess.Popen(sync_cmd("up", "--source", str(source), "--target", f"s3://{root}", "--every", "0.2"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        until(lambda: "outputs/tensorboard/events.out.1" in objects(server, root), "the first file never arrived")
        write(source / "outputs" / "tensorboard" / "events.out.2", "e2")
        until(lambda: "outputs/tensorboard/events.out.2" in objects(server, root), "a new file was not synced")
        write(source / "logs" / "main.log", "the last line\n")  # written just before the stop
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=DEADLOCK_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert objects(server, root) == {
        "outputs/tensorboard/events.out.1": b"e1",
        "outputs/tensorboard/events.out.2": b"e2",
        "logs/main.log": b"the last line\n",
    }
    assert "up 3 files" in out, "each file went up once, however many passes ran"


def test_down_fetches_the_store_into_a_folder(tmp_path: Path, server: MotoServer, bucket: str) -> None:
    fs = server.fs()
    fs.pipe_file(f"{bucket}/store/u3/outputs/tensorboard/events.out", b"events")
    fs.pipe_file(f"{bucket}/store/u3/logs/main.log", b"log")
    target = tmp_path / "tb"
    done = run_sync("down", "--source", f"s3://{bucket}/store/u3", "--target", str(target), env=s3_env(server))
    assert done.returncode == 0, done.stderr
    assert (target / "outputs" / "tensorboard" / "events.out").read_bytes() == b"events"
    assert (target / "logs" / "main.log").read_bytes() == b"log"
    again = run_sync("down", "--source", f"s3://{bucket}/store/u3", "--target", str(target), env=s3_env(server))
    assert "down 0 files" in again.stdout


def test_an_unreachable_store_exits_1_with_one_line_naming_the_connection(tmp_path: Path, server: MotoServer) -> None:
    write(tmp_path / "a.txt", "a")
    connection = {"name": "team-store", "kind": "s3", "schema": {"bucket": "s3://no-such-bucket"}}
    env = s3_env(server, POLYNB_STORE_CONNECTION=json.dumps(connection))
    done = run_sync("up", "--source", str(tmp_path), "--target", "s3://no-such-bucket/x", "--retries", "2", env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "artifacts store team-store" in lines[0]
    assert "no such bucket" in lines[0]
    assert str(tmp_path) in lines[0], "the line says where the local copy is kept"


def test_a_store_that_stops_answering_is_a_warning_alert_and_the_loop_goes_on(tmp_path: Path) -> None:
    moto = MotoServer().start()
    outputs = tmp_path / "run" / "outputs"
    write(outputs / "a.txt", "a")
    connection = {"name": "store", "kind": "s3", "schema": {"bucket": "s3://gone"}}
    env = s3_env(moto, POLYNB_STORE_CONNECTION=json.dumps(connection), POLYAXON_RUN_OUTPUTS_PATH=str(outputs))
    moto.fs().mkdir("gone")
    cmd = sync_cmd("up", "--source", str(tmp_path / "run"), "--target", "s3://gone/u", "--every", "0.1",
                   "--retries", "1", "--alert")  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: "outputs/a.txt" in objects(moto, "gone/u"), "the first pass never ran")
        moto.stop()
        write(outputs / "b.txt", "b")
        events = outputs / "events.jsonl"
        until(lambda: events.exists() and events.read_text().strip(), "no warning was recorded")
        assert proc.poll() is None, "a failing store does not end the loop"
        moto.start()  # empty again: the same bucket, made anew
        moto.fs().mkdir("gone")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLOCK_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        moto.stop()
    assert proc.returncode == 0, err
    alerts = [json.loads(line) for line in events.read_text().splitlines()]
    assert alerts[0]["kind"] == "alert_warning"
    assert alerts[0]["payload"]["connection"] == "store"
    assert alerts[0]["payload"]["path"] == str(tmp_path / "run")
    assert len(alerts) == 1, "one warning per outage, not one per tick"
    assert "retrying at the next tick" in err


def test_down_from_a_folder_store_and_bad_arguments(tmp_path: Path) -> None:
    store = tmp_path / "store" / "u4"
    write(store / "outputs" / "tensorboard" / "events.out", "events")
    target = tmp_path / "tb"
    done = run_sync("down", "--source", str(store), "--target", str(target))
    assert done.returncode == 0, done.stderr
    assert (target / "outputs" / "tensorboard" / "events.out").read_text() == "events"
    bad = run_sync("up", "--source", str(target), "--target", "ftp://host/x")
    assert (bad.returncode, bad.stderr.count("\n")) == (1, 1)
    assert "not a store URL" in bad.stderr
    assert run_sync("up", "--source", str(target), "--target", str(store), "--every", "0").returncode == 2
