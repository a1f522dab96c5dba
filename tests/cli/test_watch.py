"""``polynb watch -f FILE`` in its own process: a git connection from ``$POLYNB_HOME/config.yaml``, one run
per new commit, ``--max-runs``, and ``polynb events`` / ``polynb ls`` seeing the runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, Cli

from polynb.lifecycle import Status

WATCHED = """
version: 1.1
kind: component
name: retrain
events: [{ref: connections.repo, kinds: [connection_git_commit]}]
inputs: [{name: sha, type: str}, {name: message, type: str}]
run:
  kind: job
  container:
    command: [PY, -c, CODE, "{{ sha }}", "{{ message }}"]
""".replace("PY", json.dumps(sys.executable)).replace(
    "CODE",
    json.dumps("import sys; from polynb.tracking import log_outputs; log_outputs(sha=sys.argv[1], msg=sys.argv[2])"),
)


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def test_watch_runs_the_pipeline_once_per_new_commit(cli: Cli) -> None:
    repo = cli.tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "before the watch")
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.yaml").write_text(
        f"connections:\n  - {{name: repo, kind: git, schema: {{url: {json.dumps(str(repo))}, revision: main}}}}\n"
    )
    proc = cli.start("watch", "-f", str(cli.write("retrain.yaml", WATCHED)), "--max-runs", "1")
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not (cli.home / "polynb.db").exists() or not _baseline_taken(cli):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    git(repo, "commit", "-q", "--allow-empty", "-m", "new data")
    sha = git(repo, "rev-parse", "HEAD").strip()
    out, err = proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 0, err
    assert "watching repo (connection_git_commit) for retrain; at most 1 runs" in out
    assert f"repo  connection_git_commit  {sha}  submitted -> run" in out
    assert "retrain: 1 run submitted" in out
    with cli.store() as store:
        (run,) = store.list_runs(top_level_only=True)
        assert run.status == Status.SUCCEEDED
        assert run.outputs == {"sha": sha, "msg": "new data"}
    code, rows = cli.run_json("events", "--watch", "retrain", "--json")
    assert code == 0
    assert [(r["status"], r["id"] == sha, r["run"] == run.uuid) for r in rows][-1] == ("submitted", True, True)
    assert rows[0]["status"] == "baseline"


def _baseline_taken(cli: Cli) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(cli.home / "polynb.db") as conn:
            return bool(conn.execute("SELECT count(*) FROM watch_events").fetchone()[0])
    except sqlite3.OperationalError:
        return False  # the table is not there yet


INGEST = """
version: 1.1
kind: component
name: ingest
events: [{ref: connections.data, kinds: [connection_dataset_version]}]
inputs: [{name: path, type: str}, {name: size, type: int}]
run:
  kind: job
  container:
    command: [PY, -c, CODE, "{{ path }}", "{{ size }}"]
""".replace("PY", json.dumps(sys.executable)).replace(
    "CODE",
    json.dumps("import sys; from polynb.tracking import log_outputs; log_outputs(path=sys.argv[1], size=sys.argv[2])"),
)


def test_watch_runs_once_per_new_object_of_an_s3_bucket_and_none_twice_after_a_restart(cli: Cli) -> None:
    from support.s3kit import MotoServer

    server = MotoServer().start()
    try:
        fs = server.fs()
        fs.mkdir("data")
        fs.pipe("data/incoming/old.csv", b"there before")
        env = ", ".join(f"{{name: {e['name']}, value: {json.dumps(e['value'])}}}" for e in server.env())
        cli.home.mkdir(parents=True, exist_ok=True)
        (cli.home / "config.yaml").write_text(
            "connections:\n"
            f"  - {{name: data, kind: s3, schema: {{bucket: 's3://data/incoming'}}, env: [{env}], poll: 0.1}}\n"
        )
        pipeline = str(cli.write("ingest.yaml", INGEST))
        proc = cli.start("watch", "-f", pipeline, "--max-runs", "1")
        deadline = time.monotonic() + DEADLOCK_GUARD
        while not (cli.home / "polynb.db").exists() or not _baseline_taken(cli):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        fs.pipe("data/incoming/a.csv", b"aaa")
        out, err = proc.communicate(timeout=DEADLOCK_GUARD)
        assert proc.returncode == 0, err
        assert "watching data (connection_dataset_version) for ingest; at most 1 runs" in out
        fs.pipe("data/incoming/b.csv", b"bb")  # while no watch runs
        proc = cli.start("watch", "-f", pipeline, "--max-runs", "2")  # a new engine, the same cursor
        out, err = proc.communicate(timeout=DEADLOCK_GUARD)
        assert proc.returncode == 0, err
        assert [line.split()[3].split("@")[0] for line in out.splitlines() if "submitted -> run" in line] == [
            "incoming/b.csv"
        ]
        assert "ingest: 2 runs submitted" in out  # counted across restarts, as --max-runs is
    finally:
        server.stop()
    with cli.store() as store:
        runs = sorted(store.list_runs(top_level_only=True), key=lambda r: r.created_at)
        assert [(r.status, r.outputs) for r in runs] == [
            (Status.SUCCEEDED, {"path": "s3://data/incoming/a.csv", "size": "3"}),
            (Status.SUCCEEDED, {"path": "s3://data/incoming/b.csv", "size": "2"}),
        ]
