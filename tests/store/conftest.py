"""Fixtures for the store tests: a store in tmp_path, worker processes, and the store's invariants."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polynb.lifecycle import FINAL
from polynb.store import Store

WORKER = Path(__file__).with_name("worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]

StartWorker = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "polynb.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as opened:
        yield opened


@pytest.fixture
def start_worker() -> Iterator[StartWorker]:
    """Start ``worker.py`` in a new Python process; every worker is killed at teardown if still alive."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str | Path) -> subprocess.Popen[str]:
        # The worker imports polynb from this checkout whether or not it is installed in the venv.
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": pythonpath},
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def assert_consistent(path: Path) -> None:
    """The invariants every committed write keeps, checked on the raw tables (not through the Store):

    * the file passes SQLite's integrity check and foreign keys hold;
    * event seqs are 1..N with no gap;
    * every status-history row has its ``run_status_<status>`` event (same seq, same run), and every
      ``run_status_*`` event other than ``done`` has its history row;
    * a final status row is followed by ``run_status_done`` at the next seq, and only final ones are;
    * a run's status is its latest history row's, and ``finished_at`` is set exactly when it is final.
    """
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        seqs = [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        events = {seq: (run, kind) for seq, run, kind in conn.execute("SELECT seq, run_uuid, kind FROM events")}
        history = conn.execute("SELECT seq, run_uuid, status FROM status_history ORDER BY seq").fetchall()
        history_seqs = set()
        for seq, run, status in history:
            history_seqs.add(seq)
            assert events[seq] == (run, f"run_status_{status}")
            if status in FINAL:
                assert events[seq + 1] == (run, "run_status_done")
        done_seqs = {seq for seq, (_, kind) in events.items() if kind == "run_status_done"}
        assert done_seqs == {seq + 1 for seq, _run, status in history if status in FINAL}
        status_seqs = {seq for seq, (_, kind) in events.items() if kind.startswith("run_status_")}
        assert status_seqs - done_seqs == history_seqs
        latest = dict(
            conn.execute(
                "SELECT run_uuid, status FROM status_history h WHERE seq = "
                "(SELECT max(seq) FROM status_history WHERE run_uuid = h.run_uuid)"
            ).fetchall()
        )
        runs = conn.execute("SELECT uuid, status, finished_at FROM runs").fetchall()
        assert {uuid: status for uuid, status, _ in runs} == latest
        for _uuid, status, finished_at in runs:
            assert (finished_at is not None) == (status in FINAL)
    finally:
        conn.close()


@pytest.fixture
def consistent() -> Callable[[Path], None]:
    return assert_consistent
