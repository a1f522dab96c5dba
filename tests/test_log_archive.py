"""The log archive in the artifacts store: reading order of both executors' file names, the store found from the
configuration file, and a store that cannot be written leaving the logs where they are with a warning naming it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from polynb.config_file import parse_config
from polynb.log_archive import LogArchive, archive_of, ordered_logs

UUID = "0123456789abcdef0123456789abcdef"


def test_logs_are_read_in_each_executors_order_without_sidecars() -> None:
    local = ["main.log", "init-10-git.log", "sidecar-x.log", "init-2-file.log"]
    assert ordered_logs(local) == ["init-2-file.log", "init-10-git.log", "main.log"]
    kubernetes = ["01-main.log", "00-init-0-file.log"]
    assert ordered_logs(kubernetes) == ["00-init-0-file.log", "01-main.log"]


def test_the_store_comes_from_the_configuration_file(tmp_path: Path) -> None:
    text = (
        "connections:\n  - {name: runs, kind: host_path, schema: {hostPath: shared}}\n"
        "  - {name: lake, kind: s3, schema: {bucket: 's3://lake/team/'}}\n"
        "  - {name: claim, kind: volume_claim, schema: {claimName: c}}\n"
    )
    folder = archive_of(parse_config(text + "artifactsStore: runs\n", str(tmp_path / "c.yaml")))
    assert folder is not None and folder.folder == tmp_path / "shared"
    bucket = archive_of(parse_config(text + "artifactsStore: lake\n", str(tmp_path / "c.yaml")))
    assert bucket is not None and str(bucket) == "artifacts store lake (s3://lake/team)"
    assert archive_of(parse_config(text + "artifactsStore: claim\n", str(tmp_path / "c.yaml"))) is None
    assert archive_of(parse_config(text, str(tmp_path / "c.yaml"))) is None


def test_a_store_that_cannot_be_written_keeps_the_logs_and_names_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "home" / UUID / "logs"
    logs.mkdir(parents=True)
    (logs / "main.log").write_text("hello\n")
    (tmp_path / "a-file").write_text("")
    store = LogArchive("runs", "host_path", str(tmp_path / "a-file"), folder=tmp_path / "a-file")
    waits: list[float] = []
    with caplog.at_level(logging.WARNING):
        assert store.archive(UUID, logs, sleep=waits.append) is False
    assert waits == [0.5, 1.0]
    assert f"run {UUID}: logs not archived to the artifacts store runs" in caplog.text
    assert f"they stay in {logs}" in caplog.text
    assert (logs / "main.log").read_text() == "hello\n"
    good = LogArchive("runs", "host_path", str(tmp_path / "store"), folder=tmp_path / "store")
    assert good.archive(UUID, logs) is True
    assert good.read(UUID) == ["hello"]
    assert good.find(UUID[:6]) == [UUID] and good.find("ff") == []
