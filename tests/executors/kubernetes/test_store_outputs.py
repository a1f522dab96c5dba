"""Outputs left in a bucket store by a pod (a pointer in its termination message), read back and checked against
the pointer: a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.s3kit import MotoServer, free_port

from polynb.executors.kubernetes.settings import BucketStore
from polynb.executors.kubernetes.store_outputs import OutputsUnreadableError, pointer, read_outputs, unreadable_message
from polynb.runtime.tracking import outputs_pointer

UUID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    server.fs().mkdir("runs")
    yield server
    server.stop()


def test_a_pointer_is_read_from_the_store_and_checked(moto: MotoServer) -> None:
    store = BucketStore.of(moto.connection("lake", "s3://runs/polynb"))
    data = json.dumps({"blob": "x" * 10000}).encode()
    moto.fs().pipe(f"runs/polynb/{UUID}/outputs/outputs.json", data)
    where = pointer(outputs_pointer(data))
    assert where is not None and pointer({"loss": 0.1}) is None
    assert read_outputs(store, UUID, where) == {"blob": "x" * 10000}

    # A copy that is not the file the pod wrote (its last sync failed, or it was changed) is refused.
    stale = {**where, "sha256": hashlib.sha256(b"other").hexdigest()}
    with pytest.raises(OutputsUnreadableError, match="is not the file the run wrote"):
        read_outputs(store, UUID, stale)
    with pytest.raises(OutputsUnreadableError, match="not a file of the run's folder"):
        read_outputs(store, UUID, {**where, "file": "../other/outputs.json"})
    other = "f" * 32
    with pytest.raises(OutputsUnreadableError, match=f"s3://runs/polynb/{other}/outputs/outputs.json"):
        read_outputs(store, other, where)


def test_a_store_that_does_not_answer_is_asked_again_then_named(moto: MotoServer) -> None:
    entry = moto.connection("lake", "s3://runs/polynb")
    entry["env"] = [e for e in entry["env"] if e["name"] != "AWS_ENDPOINT_URL"]
    entry["env"].append({"name": "AWS_ENDPOINT_URL", "value": f"http://127.0.0.1:{free_port()}"})  # nobody there
    waits: list[float] = []
    with pytest.raises(OutputsUnreadableError, match="s3://runs/polynb/" + UUID):
        read_outputs(BucketStore.of(entry), UUID, pointer(outputs_pointer(b"{}")) or {}, sleep=waits.append)
    assert waits == [0.5, 1.0]


def test_a_machine_without_the_buckets_credentials_is_told_what_to_give(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws either
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    entry = {"name": "lake", "kind": "s3", "schema": {"bucket": "s3://runs/polynb"}, "secret": {"name": "aws"},
             "env": [{"name": "AWS_ENDPOINT_URL", "value": moto.url}]}  # fmt: skip
    store = BucketStore.of(entry)
    data = b'{"a": 1}'
    waits: list[float] = []
    with pytest.raises(OutputsUnreadableError) as raised:
        read_outputs(store, UUID, pointer(outputs_pointer(data)) or {}, sleep=waits.append)
    assert waits == []  # refused credentials are not asked again
    message = unreadable_message(store, str(raised.value))
    assert "credentials" in message and "AWS_ACCESS_KEY_ID" in message and "'lake'" in message
