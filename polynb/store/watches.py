"""What ``polynb watch`` handled: one row per event of a watched connection, in its own table.

The table is the watch's cursor. An event id (a commit sha, a file's path, an image tag) is recorded once
per watch and source (``UNIQUE``), so an event seen again, by this watch or after a restart, is dropped; the
newest row of a source is where a git source resumes (``git rev-list <last>..<head>``), so commits made while
no watch ran are handled on the next start. A row goes ``baseline`` (there before the watch first looked:
not run), or ``pending`` → ``submitted`` (with its run), or ``failed`` (the pipeline could not be built for
it, with the message).

A row is marked ``submitted`` in the transaction that creates its run (``Engine.submit(created=...)``), so a
watch killed at any moment leaves both or neither: a restarted watch submits each event exactly once. The
table is created on first use
(``CREATE TABLE IF NOT EXISTS``): a store without watches is unchanged and its schema version stays.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from polynb.store.store import Store

_DDL = """
CREATE TABLE IF NOT EXISTS watch_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    watch        TEXT NOT NULL,
    source       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    at           REAL NOT NULL,
    status       TEXT NOT NULL,
    run_uuid     TEXT,
    message      TEXT,
    submitted_at REAL,
    UNIQUE (watch, source, event_id)
)
"""

BASELINE, PENDING, SUBMITTED, FAILED = "baseline", "pending", "submitted", "failed"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    seq: int
    watch: str
    source: str
    event_id: str
    kind: str
    payload: dict[str, Any]
    at: datetime
    status: str
    run_uuid: str | None = None
    message: str | None = None
    submitted_at: datetime | None = None


def _row(row: Any) -> WatchEvent:
    return WatchEvent(
        seq=row["seq"],
        watch=row["watch"],
        source=row["source"],
        event_id=row["event_id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        at=datetime.fromtimestamp(row["at"], UTC),
        status=row["status"],
        run_uuid=row["run_uuid"],
        message=row["message"],
        submitted_at=datetime.fromtimestamp(row["submitted_at"], UTC) if row["submitted_at"] else None,
    )


class WatchLog:
    """The ``watch_events`` table of one store."""

    def __init__(self, store: Store) -> None:
        self._pool = store._pool  # the store package's own connection pool (one connection per thread)
        with self._pool.write(one_statement=True) as conn:
            conn.execute(_DDL)

    def last_id(self, watch: str, source: str) -> str | None:
        row = (
            self._pool.get()
            .execute(
                "SELECT event_id FROM watch_events WHERE watch = ? AND source = ? ORDER BY seq DESC LIMIT 1",
                (watch, source),
            )
            .fetchone()
        )
        return str(row[0]) if row else None

    def has_looked(self, watch: str, source: str) -> bool:
        """Has this watch ever recorded anything of ``source`` (its baseline at least)?"""
        return self.last_id(watch, source) is not None

    def record(
        self, watch: str, source: str, events: list[tuple[str, str, dict[str, Any]]], *, status: str = PENDING
    ) -> list[WatchEvent]:
        """Record ``(event_id, kind, payload)`` events not recorded yet; return those that are new."""
        now = time.time()
        new: list[WatchEvent] = []
        with self._pool.write() as conn:
            for event_id, kind, payload in events:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO watch_events (watch, source, event_id, kind, payload, at, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (watch, source, event_id, kind, json.dumps(payload, sort_keys=True), now, status),
                )
                if cursor.rowcount:
                    row = conn.execute("SELECT * FROM watch_events WHERE seq = ?", (cursor.lastrowid,)).fetchone()
                    new.append(_row(row))
        return new

    def mark(self, seq: int, status: str, *, run_uuid: str | None = None, message: str | None = None) -> None:
        with self._pool.write(one_statement=True) as conn:
            conn.execute(
                "UPDATE watch_events SET status = ?, run_uuid = ?, message = ?, submitted_at = ? WHERE seq = ?",
                (status, run_uuid, message, time.time() if status == SUBMITTED else None, seq),
            )

    def events(self, watch: str | None = None, *, status: str | None = None) -> list[WatchEvent]:
        clauses, params = ["1 = 1"], []
        if watch is not None:
            clauses.append("watch = ?")
            params.append(watch)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        sql = f"SELECT * FROM watch_events WHERE {' AND '.join(clauses)} ORDER BY seq"  # noqa: S608 -- fixed clauses
        return [_row(r) for r in self._pool.get().execute(sql, params)]
