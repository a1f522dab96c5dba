"""What the store hands out and takes in: frozen snapshots, never live rows.

Timestamps are timezone-aware UTC datetimes; durations are seconds. JSON columns come back as plain dicts
(a snapshot: mutating one changes nothing in the store).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from polynb.lifecycle import FINAL, Status


def new_uuid() -> str:
    """A fresh run uuid: 32 lowercase hex digits, no dashes."""
    return uuid4().hex


def new_uuids(count: int) -> list[str]:
    """``count`` fresh run uuids, as ``new_uuid`` makes them (version 4), from one read of the OS's random
    source: a DAG of 1,000 ops made one each, a system call that lets the other threads take the GIL."""
    random = os.urandom(16 * count)
    return [UUID(bytes=random[i : i + 16], version=4).hex for i in range(0, 16 * count, 16)]


def to_ts(at: datetime | None) -> float:
    """A datetime (now if None) as a Unix timestamp; naive datetimes are taken as UTC."""
    if at is None:
        return datetime.now(UTC).timestamp()
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def from_ts(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps(value, separators=...)`` makes an encoder per call: a dozen calls per op on the engine thread."""


def dumps(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    return _ENCODER.encode(value if type(value) is dict else dict(value))


def loads(text: str | None) -> dict[str, Any]:
    # Most of these columns are empty objects, and runs are read on every status change.
    return {} if not text or text == "{}" else dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create (status ``created``). ``spec`` is the compiled op (or the DAG spec for a DAG run),
    ``inputs`` its bound params, ``meta`` whatever the engine needs to resume it after a restart."""

    name: str
    kind: str
    uuid: str = field(default_factory=new_uuid)
    dag_uuid: str | None = None
    hook_of: str | None = None
    hook_trigger: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict, hash=False)
    inputs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)
    executor: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored. ``dag_uuid`` is the parent pipeline run (None at top level); ``hook_of`` is the
    main run a hook run belongs to, ``hook_trigger`` the trigger that selected it. ``attempt`` counts the
    times the run was claimed for submission (1 on the first try; retries are ``attempt - 1``)."""

    uuid: str
    name: str
    kind: str
    status: Status
    reason: str | None
    message: str | None
    dag_uuid: str | None
    hook_of: str | None
    hook_trigger: str | None
    spec: dict[str, Any] = field(hash=False, repr=False)
    inputs: dict[str, Any] = field(hash=False)
    outputs: dict[str, Any] = field(hash=False)
    meta: dict[str, Any] = field(hash=False, repr=False)
    executor: str | None
    handle: dict[str, Any] | None = field(hash=False)
    attempt: int
    url: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wait_time: float | None
    duration: float | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def dag_attempt(self) -> int:
        """Which attempt of a DAG this is: a DAG run's current one (``attempt``, 1 at least), or the one an op
        run was made for (``meta["dag_attempt"]``, 1 if absent). A DAG's ``termination.maxRetries`` runs all
        its ops anew, as new runs with the same names: its ops are those whose ``dag_attempt`` is its own
        (``Store.children``); the earlier attempts' runs stay, final, for the history. An op running a nested DAG
        is both: the attempt of its DAG it was made for (its ``meta``) is what this gives; its own attempts (its
        ``maxRetries``) are its ``attempt``."""
        if self.kind == "dag" and DAG_ATTEMPT_KEY not in self.meta:
            return max(self.attempt, 1)
        return int(self.meta.get(DAG_ATTEMPT_KEY, 1))


DAG_ATTEMPT_KEY = "dag_attempt"
"""The key of an op run's ``meta`` that holds the attempt of its DAG it was made for."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One row of a run's status history; ``seq`` is the sequence of its ``run_status_<status>`` event."""

    run_uuid: str
    seq: int
    status: Status
    previous: Status | None
    reason: str | None
    message: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the append-only event log. ``seq`` is global and strictly increasing."""

    seq: int
    at: datetime
    run_uuid: str
    dag_uuid: str | None
    kind: str
    payload: dict[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of a status change request. True when applied; ``run`` is the run after the request;
    ``events`` are the events it appended (empty when refused or when the status was already current)."""

    applied: bool
    previous: Status
    run: RunRecord
    events: tuple[EventRecord, ...] = ()

    def __bool__(self) -> bool:
        return self.applied

    @property
    def status(self) -> Status:
        """The run's status after the request."""
        return self.run.status

    @property
    def attempt(self) -> int:
        return self.run.attempt


@dataclass(frozen=True, slots=True)
class Move:
    """The result of :meth:`Store.move`: a :class:`Transition` without the run's record (what the engine's
    hot path needs). ``status`` and ``attempt`` are the run's after the request."""

    applied: bool
    previous: Status
    status: Status
    attempt: int
    events: tuple[EventRecord, ...] = ()

    def __bool__(self) -> bool:
        return self.applied


@dataclass(frozen=True, slots=True)
class Step:
    """One status of several a run took at once (:meth:`Store.advance`): what ``move`` would be given."""

    status: Status
    reason: str | None = None
    message: str | None = None
    at: datetime | None = None
    """When it happened (None: when it is written)."""


RUN_COLUMNS = (
    "uuid, name, kind, status, reason, message, dag_uuid, hook_of, hook_trigger, spec, inputs, outputs, "
    "meta, executor, handle, attempt, url, created_at, updated_at, started_at, finished_at, wait_time, "
    "duration"
)


def run_from_row(row: sqlite3.Row) -> RunRecord:
    """A row of ``RUN_COLUMNS`` as a record. Read by position: a Row looks each name up column by column."""
    (
        uuid, name, kind, status, reason, message, dag_uuid, hook_of, hook_trigger, spec, inputs, outputs, meta,
        executor, handle, attempt, url, created_at, updated_at, started_at, finished_at, wait_time, duration,
    ) = row  # fmt: skip
    return RunRecord(
        uuid=uuid,
        name=name,
        kind=kind,
        status=Status(status),
        reason=reason,
        message=message,
        dag_uuid=dag_uuid,
        hook_of=hook_of,
        hook_trigger=hook_trigger,
        spec=loads(spec),
        inputs=loads(inputs),
        outputs=loads(outputs),
        meta=loads(meta),
        executor=executor,
        handle=None if handle is None else loads(handle),
        attempt=attempt,
        url=url,
        created_at=datetime.fromtimestamp(created_at, UTC),
        updated_at=datetime.fromtimestamp(updated_at, UTC),
        started_at=from_ts(started_at),
        finished_at=from_ts(finished_at),
        wait_time=wait_time,
        duration=duration,
    )


def event_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        seq=row["seq"],
        at=datetime.fromtimestamp(row["at"], UTC),
        run_uuid=row["run_uuid"],
        dag_uuid=row["dag_uuid"],
        kind=row["kind"],
        payload=loads(row["payload"]),
    )


def change_from_row(row: sqlite3.Row) -> StatusChange:
    previous = row["previous"]
    return StatusChange(
        run_uuid=row["run_uuid"],
        seq=row["seq"],
        status=Status(row["status"]),
        previous=None if previous is None else Status(previous),
        reason=row["reason"],
        message=row["message"],
        at=datetime.fromtimestamp(row["at"], UTC),
    )
