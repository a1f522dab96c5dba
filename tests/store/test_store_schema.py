"""The store file: WAL mode, schema version, refusing files it does not understand, reopening."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from polynb.lifecycle import Status
from polynb.store import SCHEMA_VERSION, NewRun, SchemaVersionError, Store, StoreError


def pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def test_a_new_store_is_in_wal_mode_with_the_current_schema_version(db: Path) -> None:
    Store(db).close()
    # Read with a plain connection: WAL is a property of the file, not of the store's connections.
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "user_version") == SCHEMA_VERSION


def test_the_store_writes_through_the_wal(store: Store, db: Path) -> None:
    store.create_run(NewRun(name="a", kind="job"))
    assert db.with_name(db.name + "-wal").exists()


def test_a_new_store_and_its_wal_are_readable_by_their_owner_only(store: Store, db: Path) -> None:
    # Runs' specs hold the env of the connections they name: credentials must not be world-readable.
    store.create_run(NewRun(name="a", kind="job"))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_newer_schema_is_refused_with_a_clear_error(db: Path) -> None:
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade polynb"):
        Store(db)


def test_an_sqlite_file_of_something_else_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(SchemaVersionError, match="not a polynb store"):
        Store(db)


def test_a_file_that_is_not_sqlite_is_refused(db: Path) -> None:
    db.write_bytes(b"this is not a database, just some text that is long enough" * 100)
    with pytest.raises(StoreError, match="cannot open the polynb store"):
        Store(db)


def test_everything_survives_a_reopen(db: Path) -> None:
    with Store(db) as first:
        run = first.create_run(NewRun(name="a", kind="job", inputs={"lr": 0.1}))
        first.set_status(run.uuid, Status.RUNNING, message="hi")
        first.set_outputs(run.uuid, {"loss": 1.0})
        before = (first.get_run(run.uuid), first.status_history(run.uuid), first.events())
    with Store(db) as second:
        assert (second.get_run(run.uuid), second.status_history(run.uuid), second.events()) == before


def test_a_closed_store_refuses_use(db: Path) -> None:
    store = Store(db)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()


def checkpoint_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "polynb-store-checkpoint"}


def test_checkpoints_run_on_a_thread_started_by_writes_and_stopped_by_close(db: Path) -> None:
    others = checkpoint_threads()  # stores other tests may have left open
    store = Store(db)
    store.list_runs()
    assert checkpoint_threads() == others  # a reader (polynb ls) starts no thread
    store.create_run(NewRun(name="a", kind="job"))
    assert len(checkpoint_threads() - others) == 1
    store.close()
    assert not checkpoint_threads() - others
