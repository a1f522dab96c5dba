"""A kernel session puts its local runs under the configuration file's ``host_path`` artifacts store."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_the_logs_button_reads_the_bucket_store_once_the_local_copy_is_gone(
    session: KernelSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from support.s3kit import MotoServer

    server = MotoServer().start()
    try:
        server.fs().mkdir("runs")
        env = ", ".join(f"{{name: {e['name']}, value: '{e['value']}'}}" for e in server.env())
        path = tmp_path / "config.yaml"
        path.write_text(f"connections:\n  - {{name: lake, kind: s3, schema: {{bucket: 's3://runs'}}, env: [{env}]}}\n"
                        "artifactsStore: lake\n")  # fmt: skip
        monkeypatch.setenv("POLYNB_CONFIG", str(path))
        handle = polynb.run(JOB)
        assert handle.wait(timeout=GUARD) == "succeeded"
        shutil.rmtree(session.store.artifacts_root_of(handle.uuid) / handle.uuid)
        assert session.logs(handle.uuid)[0] == ["hi"]
    finally:
        server.stop()
