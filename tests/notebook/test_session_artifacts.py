"""A kernel session puts its local runs under the configuration file's ``host_path`` artifacts store, or syncs them
to its bucket store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.s3kit import MotoServer

import polynb
from polynb.notebook.session import KernelSession

GUARD = 120.0  # deadlock guard, never a timing assertion
JOB = (
    "version: 1.1\nkind: component\nname: one\n"
    "run: {kind: job, container: {command: [sh, -c, 'echo hi; echo x > $POLYAXON_RUN_OUTPUTS_PATH/x']}}\n"
)


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_path: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"connections:\n  - {{name: shared, kind: host_path, schema: {{hostPath: {host_path}}}}}\n"
        "artifactsStore: shared\n"
    )
    monkeypatch.setenv("POLYNB_CONFIG", str(path))
    return path


def test_runs_of_the_kernel_go_to_the_host_path_store(
    session: KernelSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "runs")
    handle = polynb.run(JOB)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert (tmp_path / "runs" / handle.uuid / "outputs" / "x").read_text() == "x\n"
    assert session.logs(handle.uuid)[0] == ["hi"]


def test_an_unusable_store_refuses_the_first_run(
    session: KernelSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("")
    config = _config(tmp_path, monkeypatch, str(tmp_path / "a-file"))
    with pytest.raises(RuntimeError, match=f"{config}:2:56: connections.0..schema.hostPath: .* is not a folder"):
        polynb.run(JOB)
    assert session.store.list_runs() == []


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    server.fs().mkdir("kernel-runs")
    yield server
    server.stop()


def _bucket_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer, bucket: str) -> Path:
    path = tmp_path / "config.yaml"
    env = ", ".join(f"{{name: {e['name']}, value: {e['value']!r}}}" for e in moto.env())
    path.write_text(
        f"connections:\n  - {{name: store, kind: s3, schema: {{bucket: {bucket}}}, env: [{env}]}}\n"
        "artifactsStore: store\nartifactsSyncInterval: 0.5\n"
    )
    monkeypatch.setenv("POLYNB_CONFIG", str(path))
    return path


def test_runs_of_the_kernel_are_synced_to_a_bucket_store(
    session: KernelSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    _bucket_config(tmp_path, monkeypatch, moto, "s3://kernel-runs/nb")
    handle = polynb.run(JOB)
    assert handle.wait(timeout=GUARD) == "succeeded"
    assert moto.fs().cat_file(f"kernel-runs/nb/{handle.uuid}/outputs/x") == b"x\n"
    assert moto.fs().cat_file(f"kernel-runs/nb/{handle.uuid}/logs/main.log") == b"hi\n"


def test_a_bucket_store_that_does_not_answer_refuses_the_first_run(
    session: KernelSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    config = _bucket_config(tmp_path, monkeypatch, moto, "s3://no-such-bucket/nb")
    with pytest.raises(RuntimeError, match=f"{config}:2:46: connections.0..schema.bucket: connection store .*no such"):
        polynb.run(JOB)
    assert session.store.list_runs() == []


def test_the_logs_button_reads_the_bucket_store_once_the_local_copy_is_gone(
    session: KernelSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    import shutil

    _bucket_config(tmp_path, monkeypatch, moto, "s3://kernel-runs/logs")
    handle = polynb.run(JOB)
    assert handle.wait(timeout=GUARD) == "succeeded"
    shutil.rmtree(session.store.artifacts_root_of(handle.uuid) / handle.uuid)
    assert session.logs(handle.uuid)[0] == ["hi"]
