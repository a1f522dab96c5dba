"""The store's SQLite schema, its version (``PRAGMA user_version``) and how connections are opened."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from polynb.store.errors import SchemaVersionError, StoreError

SCHEMA_VERSION = 1

# Times are REAL Unix timestamps (cheap to write and compare; converted to datetimes on the way out).
# JSON columns are TEXT. The invariant every write keeps: a run's `status` is the status of its latest
# status_history row, every history row has its `run_status_<status>` event (history.seq), and a run
# has `finished_at` set exactly when its status is final.
_DDL = """
CREATE TABLE runs (
    uuid         TEXT PRIMARY KEY CHECK (length(uuid) = 32),
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    message      TEXT,
    dag_uuid     TEXT REFERENCES runs (uuid) DEFERRABLE INITIALLY DEFERRED,
    hook_of      TEXT REFERENCES runs (uuid) DEFERRABLE INITIALLY DEFERRED,
    hook_trigger TEXT,
    spec         TEXT NOT NULL DEFAULT '{}',
    inputs       TEXT NOT NULL DEFAULT '{}',
    outputs      TEXT NOT NULL DEFAULT '{}',
    meta         TEXT NOT NULL DEFAULT '{}',
    executor     TEXT,
    handle       TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    url          TEXT,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    wait_time    REAL,
    duration     REAL
);
CREATE INDEX runs_dag ON runs (dag_uuid);
CREATE INDEX runs_hook_of ON runs (hook_of) WHERE hook_of IS NOT NULL;
CREATE INDEX runs_name ON runs (name);
CREATE INDEX runs_unfinished ON runs (finished_at) WHERE finished_at IS NULL;

CREATE TABLE status_history (
    id        INTEGER PRIMARY KEY,
    run_uuid  TEXT NOT NULL REFERENCES runs (uuid),
    seq       INTEGER NOT NULL UNIQUE REFERENCES events (seq),
    status    TEXT NOT NULL,
    previous  TEXT,
    reason    TEXT,
    message   TEXT,
    at        REAL NOT NULL
);
CREATE INDEX status_history_run ON status_history (run_uuid, seq);

-- AUTOINCREMENT: a seq is never reused, even after the newest rows are deleted, so a reader polling
-- `seq > last_seen` can never miss or repeat an event.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    run_uuid  TEXT NOT NULL REFERENCES runs (uuid),
    dag_uuid  TEXT,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_run ON events (run_uuid, seq);
CREATE INDEX events_dag ON events (dag_uuid, seq) WHERE dag_uuid IS NOT NULL;
"""

_TABLES = frozenset({"runs", "status_history", "events", "sqlite_sequence"})

BUSY_TIMEOUT_S = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """Open one connection with the store's settings. One connection serves one thread.

    ``isolation_level=None`` turns off the sqlite3 module's implicit transactions: the store issues
    BEGIN/COMMIT itself so each write is exactly one transaction.
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # Durability: in WAL mode a commit appends to the -wal file with write(2) before returning, so a
    # committed transaction survives a crash or SIGKILL of this process (the data is in the OS page cache).
    # synchronous=NORMAL skips the fsync on each commit: only a power loss or OS crash can lose the last
    # commits, and even then WAL rolls the file back to a transaction boundary, never to a torn state.
    # That is the trade we want: status changes are the scheduler's hot path.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints run on a background thread instead of inside a commit (see checkpoint.py).
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_database(path: Path) -> sqlite3.Connection:
    """Open the store at ``path``: switch it to WAL, create the schema if missing, check its version."""
    _create_private(path)
    try:
        conn = connect(path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode!r}); is it on a network filesystem?")
        _ensure_schema(conn, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the polynb store: {exc}") from exc
    return conn


def _create_private(path: Path) -> None:
    """Create a new store file readable by its owner only: runs' specs hold the env of the connections they
    name (credentials). SQLite gives the ``-wal`` and ``-shm`` files the database file's permissions."""
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    _check_version(version, path)
    # Two processes may open a fresh file at once: take the write lock, then look again.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - _TABLES:
                raise SchemaVersionError(f"{path} is an SQLite file but not a polynb store")
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            _check_version(version, path)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _check_version(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has store schema version {version}, but this polynb knows only up to version "
            f"{SCHEMA_VERSION}; upgrade polynb, or point POLYNB_HOME elsewhere"
        )
    if version not in (0, SCHEMA_VERSION):
        # No released schema before version 1 exists; a migration goes here when version 2 does.
        raise SchemaVersionError(f"{path} has unknown store schema version {version}")
