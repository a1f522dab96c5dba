"""``python -m polynb.runtime.bucket_fetch``: a file or a folder of a bucket on a real S3 server written locally, as
an init entry runs it (a subprocess, credentials in its environment only), and a one-line reason when nothing is
there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.s3kit import MotoServer

from polynb.runtime import store_sync


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    fs = server.fs()
    fs.mkdir("lake")
    fs.pipe_file("lake/team/data/a.csv", b"a,1\n")
    fs.pipe_file("lake/team/data/sub/b.csv", b"b,2\n")
    fs.pipe_file("lake/team/notes.txt", b"hi\n")
    yield server
    server.stop()


def _fetch(moto: MotoServer, *pairs: tuple[str, Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **{e["name"]: e["value"] for e in moto.env()}}
    env[store_sync.CONNECTION_ENV] = json.dumps({"name": "lake", "kind": "s3", "schema": {"bucket": "s3://lake"}})
    argv = [sys.executable, "-m", "polynb.runtime.bucket_fetch"]
    for source, target in pairs:
        argv += ["--source", source, "--target", str(target)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_files_and_folders_are_fetched(moto: MotoServer, tmp_path: Path) -> None:
    done = _fetch(moto, ("s3://lake/team/data", tmp_path / "data"), ("s3://lake/team/notes.txt", tmp_path / "n.txt"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "a.csv").read_text() == "a,1\n"
    assert (tmp_path / "data" / "sub" / "b.csv").read_text() == "b,2\n"
    assert (tmp_path / "n.txt").read_text() == "hi\n"
    assert "fetched s3://lake/team/data -> " in done.stdout
    assert not list(tmp_path.rglob("*.partial"))


def test_nothing_at_the_source_is_one_line_naming_it(moto: MotoServer, tmp_path: Path) -> None:
    done = _fetch(moto, ("s3://lake/team/missing", tmp_path / "m"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["bucket_fetch: s3://lake/team/missing: no such object or folder"]
