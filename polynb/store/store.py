"""The store: runs, their status history, the append-only event log, hook links and outputs in SQLite.

Every write is one short transaction (``Store.atomic`` groups a few into one, ``Store.batch`` many), so
a crash (even SIGKILL of the engine mid-DAG) leaves the file in a state some sequence of complete writes
produced. Any number of threads and processes may use the same file.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from polynb.lifecycle import (
    DONE_EVENT,
    FINAL,
    RUNNING_VALUES,
    STORABLE,
    SUBMITTABLE_VALUES,
    Status,
    can_transition,
    event_kind,
    is_status_event,
)
from polynb.store.checkpoint import Checkpointer
from polynb.store.connections import Batch, ConnectionPool
from polynb.store.errors import AmbiguousRunError, DuplicateRunError, RunNotFoundError, StoreError
from polynb.store.paths import ARTIFACTS_ROOT_KEY, check_uuid, db_path, recorded_root
from polynb.store.records import (
    DAG_ATTEMPT_KEY,
    RUN_COLUMNS,
    EventRecord,
    Move,
    NewRun,
    RunRecord,
    StatusChange,
    Step,
    Transition,
    change_from_row,
    dumps,
    event_from_row,
    loads,
    run_from_row,
    to_ts,
)
from polynb.store.remote import ARTIFACTS_STORE_KEY, StoreAccess, access, recorded_store

_SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM runs"  # noqa: S608 -- a constant column list
_INSERT_EVENT = "INSERT INTO events (at, run_uuid, dag_uuid, kind, payload) VALUES (?, ?, ?, ?, ?)"
_INSERT_CHANGE = (
    "INSERT INTO status_history (run_uuid, seq, status, previous, reason, message, at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SET_STATUS = (
    "status = ?, reason = ?, message = ?, updated_at = ?, started_at = ?, finished_at = ?, wait_time = ?, duration = ?"
)
_UPDATE_STATUS = f"UPDATE runs SET {_SET_STATUS} WHERE uuid = ?"  # noqa: S608 -- constant SQL
_UPDATE_CLAIMED = f"UPDATE runs SET {_SET_STATUS}, attempt = ?, executor = ?, spec = ?, inputs = ? WHERE uuid = ?"  # noqa: S608
# A status change in one statement when the caller knows the current status (a compare-and-set on it): the run's
# LifeCycle bookkeeping (started_at and wait_time on the first running-ish status, finished_at and duration on a
# final one; as ``_advanced``) in SQL, and back only what the event needs. ?1 status, ?2 reason, ?3 message,
# ?4 now, ?5 running-ish, ?6 final, ?7 uuid, ?8 the status the caller knows, ?9 1 for a claim (else 0), ?10 the
# claimer's executor (None: keep).
_MOVE = (
    "UPDATE runs SET status = ?1, reason = ?2, message = ?3, updated_at = ?4,"
    " attempt = attempt + ?9, executor = coalesce(?10, executor),"
    " spec = coalesce(?11, spec), inputs = coalesce(?12, inputs),"
    " started_at = CASE WHEN started_at IS NULL AND ?5 THEN ?4 ELSE started_at END,"
    " wait_time = CASE WHEN started_at IS NULL AND ?5 THEN max(0.0, ?4 - created_at) ELSE wait_time END,"
    " finished_at = CASE WHEN ?6 THEN ?4 END,"
    " duration = CASE WHEN ?6 THEN max(0.0, ?4 - CASE WHEN started_at IS NULL AND ?5 THEN ?4"
    " ELSE coalesce(started_at, created_at) END) END"
    " WHERE uuid = ?7 AND status = ?8 RETURNING name, kind, dag_uuid, attempt"
)
# Several non-final statuses at once (``advance``): the last one's status, reason, message and time (?1-?4); ?5 the
# time of the first running-ish one (NULL: none); a compare-and-set on ?7, the status the caller knows.
_ADVANCE = (
    "UPDATE runs SET status = ?1, reason = ?2, message = ?3, updated_at = ?4,"
    " started_at = CASE WHEN started_at IS NULL AND ?5 IS NOT NULL THEN ?5 ELSE started_at END,"
    " wait_time = CASE WHEN started_at IS NULL AND ?5 IS NOT NULL THEN max(0.0, ?5 - created_at) ELSE wait_time END,"
    " finished_at = NULL, duration = NULL"
    " WHERE uuid = ?6 AND status = ?7 RETURNING name, kind, dag_uuid, attempt"
)
_ROOTS_KEPT = 4096
_UNKNOWN = object()
_HEX_RE = re.compile(r"[0-9a-f]{1,32}")
_CURRENT_ATTEMPT = "(SELECT max(attempt, 1) FROM runs WHERE uuid = ?)"
# A key of ``meta`` read in SQL, NULL where the text is not JSON to SQLite (a NaN an older version wrote): a row
# SQLite cannot parse would else fail every statement that reads it, as long as it is in the store.
_META_KEY = "CASE WHEN json_valid(meta) THEN json_extract(meta, '$.{}') END"
_OP_OF_CURRENT_ATTEMPT = f"coalesce({_META_KEY.format(DAG_ATTEMPT_KEY)}, 1) = {_CURRENT_ATTEMPT}"
# A run of DAG ``?`` (every ``?`` is that DAG's uuid) in its current attempt: an op made for it, a hook of such an
# op, or a hook of the DAG itself. Until the DAG is retried every run is: the JSON is read only then.
_OPS_OF_CURRENT_ATTEMPT = f"SELECT uuid FROM runs WHERE dag_uuid = ? AND hook_of IS NULL AND {_OP_OF_CURRENT_ATTEMPT}"  # noqa: S608
_IN_CHUNK = 500
"""uuids per ``IN (...)`` list: far below SQLite's limit on a statement's parameters."""
_IN_CURRENT_ATTEMPT = (
    f"({_CURRENT_ATTEMPT} = 1 OR CASE WHEN hook_of IS NULL THEN {_OP_OF_CURRENT_ATTEMPT}"
    f" WHEN hook_of = ? THEN 1 ELSE hook_of IN ({_OPS_OF_CURRENT_ATTEMPT}) END)"
)
_AMBIGUOUS_SHOWN = 10
# The key, or where SQLite cannot read the JSON the whole text, for Python to.
_ARTIFACTS_ROOT = f"SELECT json_valid(meta), CASE WHEN json_valid(meta) THEN json_extract(meta, '$.{ARTIFACTS_ROOT_KEY}') ELSE meta END FROM runs WHERE uuid = ?"  # noqa: E501, S608


class Store:
    """The polynb store at ``path`` (default ``$POLYNB_HOME/polynb.db``), created if missing.

    Thread-safe: each thread uses its own connection. Reads never block on writes (WAL); writes from
    several threads or processes queue on SQLite's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        artifacts_root: str | os.PathLike[str] | None = None,
        artifacts_store: StoreAccess | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else db_path()
        self.artifacts_root = Path(artifacts_root).absolute() if artifacts_root is not None else None
        """Recorded in the meta of every run this store creates (unless it has one): where the local executor
        puts the run's artifacts for good, whatever the configuration says later. None: the default root."""
        self.artifacts_store = artifacts_store
        """The bucket every new local run is synced to (recorded in its meta, without credentials), and the
        connection that reaches it from here. None: runs stay on this machine only."""
        self._roots: dict[str, object] = {}
        """The artifacts root recorded in the meta of the runs this store created last (``_ROOTS_KEPT``): the
        engine thread asks for an op's twice (its placement, its events file), and the key never changes."""
        self._roots_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pool = ConnectionPool(self.path)
        self._checkpointer = Checkpointer(self._pool.get)
        self._pool.on_commit = self._checkpointer.committed

    def close(self) -> None:
        """Stop the checkpoint thread and close every connection of this process."""
        self._checkpointer.stop()
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make the writes this thread makes in the block one transaction: a crash keeps all or none of
        them (e.g. a run's final status and the hook runs it starts). Other threads' writes wait for it."""
        with self._pool.atomic():
            yield

    def in_atomic(self) -> bool:
        """This thread is inside an ``atomic`` block (a batch cannot be committed there)."""
        return self._pool.in_atomic()

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Make this thread's writes one transaction until ``batch.commit()`` or the end of the block, so
        many writes cost one commit (the engine writes a whole turn of its loop this way). Each write in it
        stays whole: one that raises is undone alone (a savepoint), as is an ``atomic`` block that raises.
        Other threads and processes see the writes only once committed, and wait for the write lock
        meanwhile: commit often. An exception out of the block rolls back what was not committed."""
        with self._pool.batch() as batch:
            yield batch

    # -- creating runs ------------------------------------------------------------------------------

    def create_runs(self, runs: Iterable[NewRun], *, at: datetime | None = None) -> list[RunRecord]:
        """Create runs (status ``created``, with their history row and ``run_status_created`` event) in one
        transaction: a DAG's runs appear all together or not at all. Parents may be in the same batch."""
        batch = [self._with_root(new) for new in runs]
        now = to_ts(at)
        for new in batch:
            _check_new_run(new)
        created: list[RunRecord] = []
        with self._pool.write() as conn:
            self._check_references(conn, batch)
            for new in batch:
                try:
                    conn.execute(
                        "INSERT INTO runs (uuid, name, kind, status, message, dag_uuid, hook_of, hook_trigger,"
                        " spec, inputs, meta, executor, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            new.uuid,
                            new.name,
                            new.kind,
                            Status.CREATED.value,
                            new.message,
                            new.dag_uuid,
                            new.hook_of,
                            new.hook_trigger,
                            dumps(new.spec),
                            dumps(new.inputs),
                            dumps(new.meta),
                            new.executor,
                            now,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    raise DuplicateRunError(f"a run with uuid {new.uuid} exists already") from exc
                run = _fresh_record(new, now)
                self._record_change(conn, run, None, now)
                created.append(run)
        with self._roots_lock:
            for new in batch:
                self._roots[new.uuid] = new.meta.get(ARTIFACTS_ROOT_KEY)
            while len(self._roots) > _ROOTS_KEPT:
                del self._roots[next(iter(self._roots))]
        return created

    def _with_root(self, new: NewRun) -> NewRun:
        meta = dict(new.meta)
        if self.artifacts_root is not None and ARTIFACTS_ROOT_KEY not in meta:
            meta[ARTIFACTS_ROOT_KEY] = str(self.artifacts_root)
        if self.artifacts_store is not None and ARTIFACTS_STORE_KEY not in meta:
            meta[ARTIFACTS_STORE_KEY] = self.artifacts_store.record.to_meta()
        return new if meta == new.meta else replace(new, meta=meta)

    def create_run(self, run: NewRun, *, at: datetime | None = None) -> RunRecord:
        """Create one run; see ``create_runs``."""
        return self.create_runs([run], at=at)[0]

    @staticmethod
    def _check_references(conn: sqlite3.Connection, batch: list[NewRun]) -> None:
        in_batch = {new.uuid for new in batch}
        wanted = {ref for new in batch for ref in (new.dag_uuid, new.hook_of) if ref and ref not in in_batch}
        for ref in wanted:
            if conn.execute("SELECT 1 FROM runs WHERE uuid = ?", (ref,)).fetchone() is None:
                raise RunNotFoundError(f"no run {ref} (named as a dag_uuid or hook_of)")

    # -- status changes -----------------------------------------------------------------------------

    def set_status(
        self,
        uuid: str,
        status: Status | str,
        *,
        reason: str | None = None,
        message: str | None = None,
        at: datetime | None = None,
        expected: Collection[Status] | None = None,
    ) -> Transition:
        """Move a run to ``status`` in one transaction: the run row (timestamps, wait_time, duration), a
        status-history row and the ``run_status_<status>`` event, plus ``run_status_done`` on a final status.

        Refused (returns a false Transition, writes nothing) when the run is final, when it is
        ``stopping`` and ``status`` is not final, and when ``expected`` is given and the current status is
        not in it (a compare-and-set). The current (non-final) status again appends nothing; a ``reason``
        or ``message`` given then replaces the run's current ones (progress messages).
        """
        target = _storable(status)
        now = to_ts(at)
        with self._pool.write() as conn:
            run = self._load(conn, uuid)
            return self._transition(conn, run, target, reason, message, now, expected, claim=None)

    def claim(
        self,
        uuid: str,
        *,
        status: Status | str = Status.QUEUED,
        expected: Collection[Status] = SUBMITTABLE_VALUES,
        executor: str | None = None,
        spec: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        reason: str | None = None,
        message: str | None = None,
        at: datetime | None = None,
    ) -> Transition:
        """Claim a run for submission: atomically move it from a status in ``expected`` (pending,
        compiled or retrying) to ``status``, add one to ``attempt`` and record the executor and what is
        being submitted. Exactly one of any number of concurrent claimers (threads or processes) gets a
        true result; only that caller may submit the run."""
        target = _storable(status)
        now = to_ts(at)
        with self._pool.write() as conn:
            run = self._load(conn, uuid)
            return self._transition(
                conn, run, target, reason, message, now, expected, claim=_Claim(executor, spec, inputs)
            )

    def move(
        self,
        uuid: str,
        status: Status | str,
        *,
        known: Status,
        reason: str | None = None,
        message: str | None = None,
        at: datetime | None = None,
        claim: bool = False,
        executor: str | None = None,
        spec: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> Move:
        """``set_status`` (or, with ``claim``, ``claim`` from the submittable statuses, recording ``executor``) for
        a caller that knows the run's current status (``known``, e.g. the engine's view) and needs no record
        back: one UPDATE (a compare-and-set on ``known``) and the event and history INSERTs, without reading the
        run. The same rules and writes as those two, which decide when ``known`` is not the stored status or
        ``known`` → ``status`` is not a transition. ``spec`` and ``inputs``, if given, are written as
        ``set_spec`` writes them (whether or not the status changes), in the same UPDATE when it does."""
        target = _storable(status)
        spec_text = None if spec is None else dumps(spec)
        inputs_text = None if inputs is None else dumps(inputs)
        if not can_transition(known, target) or (claim and known not in SUBMITTABLE_VALUES):
            with self._pool.atomic():
                self._write_spec(self._pool.get(), uuid, spec_text, inputs_text)
                return _as_move(self._change(uuid, target, reason, message, at, claim, executor))
        now = to_ts(at)
        params = (
            target.value, reason, message, now, target in RUNNING_VALUES, target in FINAL, uuid, known.value,
            int(claim), executor, spec_text, inputs_text,
        )  # fmt: skip
        with self._pool.write() as conn:
            rows = conn.execute(_MOVE, params).fetchall()
            if not rows:  # moved meanwhile (by another process), or gone: decide on what is stored
                self._write_spec(conn, uuid, spec_text, inputs_text)
                run = self._load(conn, uuid)
                expected = SUBMITTABLE_VALUES if claim else None
                claimed = _Claim(executor, None, None) if claim else None
                return _as_move(self._transition(conn, run, target, reason, message, now, expected, claimed))
            name, kind, dag_uuid, attempt = rows[0]
            events = _append_change(conn, uuid, name, kind, dag_uuid, attempt, target, known, reason, message, now)
        return Move(True, known, target, attempt, events)

    def compile_and_claim(
        self,
        uuid: str,
        *,
        spec: Mapping[str, Any],
        inputs: Mapping[str, Any] | None,
        executor: str | None,
        compiled: tuple[str, str | None],
        reason: str = "Queued",
        at: datetime | None = None,
    ) -> Move | None:
        """A ``created`` run compiled and claimed at once, as ``move`` to ``compiled`` (with ``spec`` and
        ``inputs``; ``compiled`` is its reason and message) then ``move`` to ``queued`` with ``claim`` write
        them, in one UPDATE: both history rows and both events, in that order, at the same instant. None,
        with nothing written, if the run is not ``created`` in the store: the caller makes the two moves."""
        now = to_ts(at)
        target = Status.QUEUED
        params = (
            target.value, reason, None, now, False, False, uuid, Status.CREATED.value, 1, executor, dumps(spec),
            None if inputs is None else dumps(inputs),
        )  # fmt: skip
        with self._pool.write() as conn:
            rows = conn.execute(_MOVE, params).fetchall()
            if not rows:
                return None
            name, kind, dag_uuid, attempt = rows[0]
            first = _append_change(
                conn, uuid, name, kind, dag_uuid, attempt - 1, Status.COMPILED, Status.CREATED, *compiled, now
            )
            then = _append_change(
                conn, uuid, name, kind, dag_uuid, attempt, target, Status.COMPILED, reason, None, now
            )  # fmt: skip
        return Move(True, Status.CREATED, target, attempt, first + then)

    def advance(self, uuid: str, steps: Sequence[Step], *, known: Status) -> tuple[Move, ...] | None:
        """Several statuses a run took one after another (``queued`` → ``starting`` → ``running``, as an executor
        reports them together), as ``move`` would write them one by one, in one UPDATE: every status its history
        row and its event, in order, each at its own instant; ``started_at`` and ``wait_time`` from the first
        running-ish one. Non-final statuses only, each a transition from the one before (``known`` first).
        None, with nothing written, if the run is not ``known`` in the store: the caller makes the moves one by
        one, which decide on what is stored. Returns one :class:`Move` per step."""
        if not steps:
            return ()
        previous = known
        for step in steps:
            if step.status in FINAL or not can_transition(previous, step.status):
                raise ValueError(f"run {uuid}: {previous.value} -> {step.status.value} is not a step to advance by")
            previous = step.status
        times = [to_ts(step.at) for step in steps]
        running_at = next((t for step, t in zip(steps, times, strict=True) if step.status in RUNNING_VALUES), None)
        last = steps[-1]
        params = (last.status.value, last.reason, last.message, times[-1], running_at, uuid, known.value)
        with self._pool.write() as conn:
            rows = conn.execute(_ADVANCE, params).fetchall()
            if not rows:
                return None
            name, kind, dag_uuid, attempt = rows[0]
            changes: list[_Change] = []
            before: Status = known
            for step, now in zip(steps, times, strict=True):
                changes.append(
                    (uuid, name, kind, dag_uuid, attempt, step.status, before, step.reason, step.message, now)
                )
                before = step.status
            events = _append_changes(conn, changes)
        moves: list[Move] = []
        before, i = known, 0
        for step in steps:
            moves.append(Move(True, before, step.status, attempt, events[i : i + 1]))
            before, i = step.status, i + 1
        return tuple(moves)

    def _write_spec(self, conn: sqlite3.Connection, uuid: str, spec: str | None, inputs: str | None) -> None:
        if spec is not None or inputs is not None:
            conn.execute(
                "UPDATE runs SET spec = coalesce(?, spec), inputs = coalesce(?, inputs), updated_at = ? WHERE uuid = ?",
                (spec, inputs, to_ts(None), uuid),
            )

    def _change(
        self,
        uuid: str,
        target: Status,
        reason: str | None,
        message: str | None,
        at: datetime | None,
        claim: bool,
        executor: str | None,
    ) -> Transition:
        if claim:
            return self.claim(uuid, status=target, executor=executor, reason=reason, message=message, at=at)
        return self.set_status(uuid, target, reason=reason, message=message, at=at)

    def _transition(
        self,
        conn: sqlite3.Connection,
        run: RunRecord,
        target: Status,
        reason: str | None,
        message: str | None,
        now: float,
        expected: Collection[Status] | None,
        claim: _Claim | None,
    ) -> Transition:
        previous = run.status
        if (expected is not None and previous not in expected) or previous in FINAL:
            return Transition(False, previous, run)  # a final run is frozen, message included
        if previous == target:
            if (reason is not None and reason != run.reason) or (message is not None and message != run.message):
                run = replace(
                    run,
                    reason=run.reason if reason is None else reason,
                    message=run.message if message is None else message,
                    updated_at=_dt(now),
                )
                conn.execute(
                    "UPDATE runs SET reason = ?, message = ?, updated_at = ? WHERE uuid = ?",
                    (run.reason, run.message, now, run.uuid),
                )
            return Transition(False, previous, run)
        if not can_transition(previous, target):
            return Transition(False, previous, run)

        run = _advanced(run, target, reason, message, now, claim)
        values = (
            target.value,
            reason,
            message,
            now,
            _ts_or_none(run.started_at),
            _ts_or_none(run.finished_at),
            run.wait_time,
            run.duration,
        )
        if claim is None:
            conn.execute(_UPDATE_STATUS, (*values, run.uuid))
        else:
            claimed = (run.attempt, run.executor, dumps(run.spec), dumps(run.inputs))
            conn.execute(_UPDATE_CLAIMED, (*values, *claimed, run.uuid))
        events = self._record_change(conn, run, previous, now)
        return Transition(True, previous, run, events)

    @staticmethod
    def _record_change(
        conn: sqlite3.Connection, run: RunRecord, previous: Status | None, now: float
    ) -> tuple[EventRecord, ...]:
        """Append the history row and the status events of ``run``'s new status (already written)."""
        return _append_change(
            conn, run.uuid, run.name, run.kind, run.dag_uuid, run.attempt, run.status, previous,
            run.reason, run.message, now,
        )  # fmt: skip

    # -- other writes -------------------------------------------------------------------------------

    def append_event(
        self, run_uuid: str, kind: str, payload: Mapping[str, Any] | None = None, *, at: datetime | None = None
    ) -> EventRecord:
        """Append a non-status event (``run_new_artifacts``, ``alert_*``, ...) to the log of ``run_uuid``.
        ``run_status_*`` events are written only by status changes, so history and log always agree."""
        if not kind or is_status_event(kind):
            raise ValueError(f"{kind!r}: status events come from set_status(), not append_event()")
        now = to_ts(at)
        body = dict(payload or {})
        with self._pool.write(one_statement=True) as conn:  # a read, then the one write
            row = conn.execute("SELECT dag_uuid FROM runs WHERE uuid = ?", (run_uuid,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run {run_uuid}")
            seq = conn.execute(_INSERT_EVENT, (now, run_uuid, row["dag_uuid"], kind, dumps(body))).lastrowid
        assert seq is not None
        return EventRecord(seq, _dt(now), run_uuid, row["dag_uuid"], kind, body)

    def set_outputs(self, uuid: str, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``outputs`` into the run's outputs (new keys win) and return the result."""
        return self._merge_json(uuid, "outputs", outputs)

    def set_meta(self, uuid: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``meta`` (engine data needed to resume the run, e.g. the DAG's source folder) into the run's."""
        return self._merge_json(uuid, "meta", meta)

    def set_handle(self, uuid: str, record: Mapping[str, Any] | None, *, executor: str | None = None) -> None:
        """Store (or clear, with None) the executor's handle record (pid, pgid, start time, ports, paths)
        so a restarted engine can re-attach to the run."""
        self._update(uuid, "handle = ?, executor = coalesce(?, executor)", (dumps(record), executor))

    def set_url(self, uuid: str, url: str | None) -> None:
        """Store the URL where a service run answers (None clears it)."""
        self._update(uuid, "url = ?", (url,))

    def set_spec(self, uuid: str, spec: Mapping[str, Any], *, inputs: Mapping[str, Any] | None = None) -> None:
        """Replace the run's spec (the compiled op, or a DAG's spec) and, if given, its inputs."""
        self._update(uuid, "spec = ?, inputs = coalesce(?, inputs)", (dumps(spec), dumps(inputs)))

    def _update(self, uuid: str, assignments: str, params: tuple[Any, ...]) -> None:
        with self._pool.write(one_statement=True) as conn:
            cursor = conn.execute(
                f"UPDATE runs SET {assignments}, updated_at = ? WHERE uuid = ?",  # noqa: S608 -- fixed SQL
                (*params, to_ts(None), uuid),
            )
            if cursor.rowcount != 1:
                raise RunNotFoundError(f"no run {uuid}")

    def _merge_json(self, uuid: str, column: str, values: Mapping[str, Any]) -> dict[str, Any]:
        with self._pool.write(one_statement=True) as conn:  # a read, then the one write
            row = conn.execute(f"SELECT {column} FROM runs WHERE uuid = ?", (uuid,)).fetchone()  # noqa: S608
            if row is None:
                raise RunNotFoundError(f"no run {uuid}")
            merged = {**loads(row[0]), **values}
            conn.execute(
                f"UPDATE runs SET {column} = ?, updated_at = ? WHERE uuid = ?",  # noqa: S608 -- fixed column
                (dumps(merged), to_ts(None), uuid),
            )
        return merged

    # -- reads --------------------------------------------------------------------------------------

    def get_run(self, uuid: str) -> RunRecord:
        """The run with this uuid; RunNotFoundError if there is none."""
        return self._load(self._pool.get(), uuid)

    def get_runs(self, uuids: Collection[str]) -> dict[str, RunRecord]:
        """The runs with these uuids (unknown ones left out), by uuid: one statement per 500, where a follower
        refreshing what a burst of events touched would otherwise make one each."""
        wanted = list(dict.fromkeys(uuids))
        found: dict[str, RunRecord] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            for run in self._select_runs([f"uuid IN ({', '.join('?' * len(chunk))})"], chunk, order="rowid"):
                found[run.uuid] = run
        return found

    def artifacts_root_of(self, uuid: str) -> Path:
        """The artifacts root recorded for run ``uuid`` when it was created; ``$POLYNB_HOME/artifacts`` for a
        run without one (created before a root was configured) or an unknown run."""
        known = self._roots.get(uuid, _UNKNOWN)
        if known is not _UNKNOWN:
            return recorded_root({ARTIFACTS_ROOT_KEY: known})
        # The one key, not the whole meta (an op's holds its plan).
        row = self._pool.get().execute(_ARTIFACTS_ROOT, (uuid,)).fetchone()
        if row is not None and not row[0]:
            return recorded_root(loads(row[1]))  # Python's JSON reads what SQLite's does not
        return recorded_root({ARTIFACTS_ROOT_KEY: row[1]} if row is not None else {})

    def artifacts_store_of(self, uuid: str) -> StoreAccess | None:
        """The bucket store recorded for run ``uuid`` when it was created, reached with this store's connection
        of the same name (else with the environment alone); None for a run kept on this machine only."""
        row = self._pool.get().execute("SELECT meta FROM runs WHERE uuid = ?", (uuid,)).fetchone()
        record = recorded_store(loads(row[0]) if row is not None else {})
        if record is None:
            return None
        return access(record, self.artifacts_store.connection if self.artifacts_store is not None else None)

    @staticmethod
    def _load(conn: sqlite3.Connection, uuid: str) -> RunRecord:
        row = conn.execute(f"{_SELECT_RUN} WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run {uuid}")
        return run_from_row(row)

    def list_runs(
        self,
        dag_uuid: str | None = None,
        *,
        top_level_only: bool = False,
        statuses: Collection[Status] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first: those of one DAG run (ops and hooks), or only top-level runs, or all."""
        clauses: list[str] = []
        params: list[Any] = []
        if dag_uuid is not None:
            clauses.append("dag_uuid = ?")
            params.append(dag_uuid)
        if top_level_only:
            clauses.append("dag_uuid IS NULL AND hook_of IS NULL")
        if statuses is not None:
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(Status(s).value for s in statuses)
        return self._select_runs(clauses, params, order="rowid DESC", limit=limit)

    def children(self, dag_uuid: str, *, include_hooks: bool = False, all_attempts: bool = False) -> list[RunRecord]:
        """The op runs of a DAG run in creation order: those of its current attempt (``RunRecord.dag_attempt``;
        a DAG retried by its ``maxRetries`` has a set of ops per attempt, with the same names), or of every
        attempt with ``all_attempts``. With ``include_hooks``, also the hook runs of the ops listed and the
        DAG's own. One statement, so a reader never mixes two attempts while a new one is being created."""
        clauses = ["dag_uuid = ?"]
        params: list[Any] = [dag_uuid]
        if not include_hooks:
            clauses.append("hook_of IS NULL")
        if not all_attempts:
            clauses.append(_IN_CURRENT_ATTEMPT)
            params += [dag_uuid] * _IN_CURRENT_ATTEMPT.count("?")
        return self._select_runs(clauses, params, order="rowid")

    def find_cached(self, key: str, *, since: float | None, exclude: str) -> RunRecord | None:
        """The newest run that ``succeeded`` with cache key ``key`` (``meta.cache_key``), finished at or after
        ``since`` (a Unix time; None: any), other than ``exclude``. A scan of the succeeded runs: the cache is
        opt-in per op, so few runs carry a key."""
        clauses = ["status = ?", f"{_META_KEY.format('cache_key')} = ?", "uuid != ?"]
        params: list[Any] = [Status.SUCCEEDED.value, key, exclude]
        if since is not None:
            clauses.append("finished_at >= ?")
            params.append(since)
        found = self._select_runs(clauses, params, order="finished_at DESC", limit=1)
        return found[0] if found else None

    def hooks_of(self, uuid: str) -> list[RunRecord]:
        """The hook runs of a main run, in creation order."""
        return self._select_runs(["hook_of = ?"], [uuid], order="rowid")

    def unfinished_runs(self) -> list[RunRecord]:
        """Every run not in a final status, oldest first: what a restarted engine must re-attach to,
        resume or resolve. A run claimed (``queued``/``starting``) without a handle may have been
        submitted just before a crash; it must not be submitted again blindly."""
        return self._select_runs(["finished_at IS NULL"], [], order="rowid")

    def _select_runs(
        self, clauses: list[str], params: list[Any], *, order: str, limit: int | None = None
    ) -> list[RunRecord]:
        sql = _SELECT_RUN
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, limit]
        return [run_from_row(row) for row in self._pool.get().execute(sql, params)]

    def status_history(self, uuid: str) -> list[StatusChange]:
        """Every status a run took, oldest first (the first is ``created``)."""
        rows = self._pool.get().execute(
            "SELECT run_uuid, seq, status, previous, reason, message, at FROM status_history"
            " WHERE run_uuid = ? ORDER BY seq",
            (uuid,),
        )
        return [change_from_row(row) for row in rows]

    def events(
        self,
        run_uuid: str | None = None,
        dag_uuid: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events with ``seq > after_seq`` in seq order, of one run and/or of a DAG run (its own events
        and those of its ops and hooks). Poll with the last seq seen: nothing is ever missed, because
        writers commit one at a time and a seq is never reused."""
        clauses = ["seq > ?"]
        params: list[Any] = [after_seq]
        if run_uuid is not None:
            clauses.append("run_uuid = ?")
            params.append(run_uuid)
        if dag_uuid is not None:
            clauses.append("(dag_uuid = ? OR run_uuid = ?)")
            params.extend((dag_uuid, dag_uuid))
        where = " AND ".join(clauses)  # fixed clauses; every value is a bound parameter
        sql = f"SELECT seq, at, run_uuid, dag_uuid, kind, payload FROM events WHERE {where} ORDER BY seq"  # noqa: S608
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [event_from_row(row) for row in self._pool.get().execute(sql, params)]

    def last_seq(self) -> int:
        """The seq of the newest event (0 when the log is empty)."""
        row = self._pool.get().execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def find_by_prefix(self, query: str, *, dag_uuid: str | None = None) -> RunRecord:
        """The one run whose uuid starts with ``query`` (dashes and case ignored) or whose name is
        ``query``, optionally among the runs of one DAG run. RunNotFoundError when none matches,
        AmbiguousRunError (listing candidates) when several do."""
        query = query.strip()
        if not query:
            raise RunNotFoundError("empty run reference")
        scope, scope_params = ("", []) if dag_uuid is None else (" AND dag_uuid = ?", [dag_uuid])
        found: dict[str, str] = {}
        with self._pool.read() as conn:
            prefix = query.lower().replace("-", "")
            if _HEX_RE.fullmatch(prefix):
                # A range, not LIKE: it uses the primary key index ('g' sorts after every hex digit).
                rows = conn.execute(
                    f"SELECT uuid, name FROM runs WHERE uuid >= ? AND uuid < ?{scope} ORDER BY rowid LIMIT ?",  # noqa: S608
                    [prefix, prefix + "g", *scope_params, _AMBIGUOUS_SHOWN + 1],
                )
                found.update((row["uuid"], row["name"]) for row in rows)
            named = conn.execute(
                f"SELECT uuid, name FROM runs WHERE name = ?{scope} ORDER BY rowid LIMIT ?",  # noqa: S608
                [query, *scope_params, _AMBIGUOUS_SHOWN + 1],
            ).fetchall()
            if len(named) == 1:
                # A name typed in full wins over uuids it happens to prefix (names like `b` or `add` are hex).
                return self._load(conn, named[0]["uuid"])
            found.update((row["uuid"], row["name"]) for row in named)
            if len(found) == 1:
                return self._load(conn, next(iter(found)))
        if not found:
            where = "" if dag_uuid is None else f" in DAG run {dag_uuid}"
            raise RunNotFoundError(f"no run with a uuid starting with or a name equal to {query!r}{where}")
        raise AmbiguousRunError(query, list(found.items())[:_AMBIGUOUS_SHOWN])


@dataclass(frozen=True, slots=True)
class _Claim:
    """What a claim records besides the status: who submits, and what is submitted (None: keep)."""

    executor: str | None
    spec: Mapping[str, Any] | None
    inputs: Mapping[str, Any] | None


def _advanced(
    run: RunRecord, target: Status, reason: str | None, message: str | None, now: float, claim: _Claim | None
) -> RunRecord:
    """``run`` moved to ``target`` at ``now``, with Polyaxon's LifeCycle bookkeeping: ``started_at`` and
    ``wait_time`` on the first running-ish status, ``finished_at`` and ``duration`` on a final one."""
    started_at, wait_time, finished_at, duration = run.started_at, run.wait_time, None, None
    if started_at is None and target in RUNNING_VALUES:
        started_at = _dt(now)
        wait_time = max(0.0, now - run.created_at.timestamp())
    if target in FINAL:
        finished_at = _dt(now)
        # A run that never started (skipped, upstream_failed, stopped while pending) keeps started_at
        # empty; its duration counts from creation, which is what Polyaxon's LifeCycle computes.
        duration = max(0.0, now - (started_at or run.created_at).timestamp())
    claimed: dict[str, Any] = {}
    if claim is not None:
        claimed = {
            "attempt": run.attempt + 1,
            "executor": run.executor if claim.executor is None else claim.executor,
            "spec": run.spec if claim.spec is None else dict(claim.spec),
            "inputs": run.inputs if claim.inputs is None else dict(claim.inputs),
        }
    return replace(
        run,
        status=target,
        reason=reason,
        message=message,
        updated_at=_dt(now),
        started_at=started_at,
        finished_at=finished_at,
        wait_time=wait_time,
        duration=duration,
        **claimed,
    )


def _append_change(
    conn: sqlite3.Connection,
    uuid: str,
    name: str,
    kind: str,
    dag_uuid: str | None,
    attempt: int,
    status: Status,
    previous: Status | None,
    reason: str | None,
    message: str | None,
    now: float,
) -> tuple[EventRecord, ...]:
    """Append the status events and the history row of run ``uuid``'s new ``status`` (already written)."""
    payload = {
        "name": name,
        "run_kind": kind,
        "status": status.value,
        "previous": None if previous is None else previous.value,
        "reason": reason,
        "message": message,
        "attempt": attempt,
    }
    text = dumps(payload)
    at = _dt(now)
    seq = conn.execute(_INSERT_EVENT, (now, uuid, dag_uuid, event_kind(status), text)).lastrowid
    assert seq is not None
    events = [EventRecord(seq, at, uuid, dag_uuid, event_kind(status), payload)]
    if status in FINAL:
        done = conn.execute(_INSERT_EVENT, (now, uuid, dag_uuid, DONE_EVENT, text)).lastrowid
        assert done is not None
        events.append(EventRecord(done, at, uuid, dag_uuid, DONE_EVENT, dict(payload)))
    conn.execute(_INSERT_CHANGE, (uuid, seq, status.value, payload["previous"], reason, message, now))
    return tuple(events)


_Change = tuple[str, str, str, "str | None", int, Status, "Status | None", "str | None", "str | None", float]
"""A status a run took (already in its row): uuid, name, kind, dag_uuid, attempt, the status, the one before,
reason, message, when."""


def _append_changes(conn: sqlite3.Connection, changes: Sequence[_Change]) -> tuple[EventRecord, ...]:
    """``_append_change`` for each of ``changes``, in order. (One multi-row INSERT for them all was tried: it took
    9% more instructions per op than these, the rows and their indexes being the cost, not the statements.)"""
    events: list[EventRecord] = []
    for change in changes:
        events += _append_change(conn, *change)
    return tuple(events)


def _as_move(transition: Transition) -> Move:
    return Move(transition.applied, transition.previous, transition.status, transition.attempt, transition.events)


def _ts_or_none(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _storable(status: Status | str) -> Status:
    target = Status(status)
    if target not in STORABLE:
        raise ValueError(f"{target.value!r} is a pseudo-status; a run never has it")
    return target


def _check_new_run(new: NewRun) -> None:
    check_uuid(new.uuid)
    for ref in (new.dag_uuid, new.hook_of):
        if ref is not None:
            check_uuid(ref)
    if not new.name or not new.kind:
        raise StoreError(f"run {new.uuid}: name and kind must not be empty")
    if new.hook_trigger is not None and new.hook_of is None:
        raise StoreError(f"run {new.uuid}: hook_trigger given without hook_of")


def _fresh_record(new: NewRun, now: float) -> RunRecord:
    return RunRecord(
        uuid=new.uuid,
        name=new.name,
        kind=new.kind,
        status=Status.CREATED,
        reason=None,
        message=new.message,
        dag_uuid=new.dag_uuid,
        hook_of=new.hook_of,
        hook_trigger=new.hook_trigger,
        spec=dict(new.spec),
        inputs=dict(new.inputs),
        outputs={},
        meta=dict(new.meta),
        executor=new.executor,
        handle=None,
        attempt=0,
        url=None,
        created_at=_dt(now),
        updated_at=_dt(now),
        started_at=None,
        finished_at=None,
        wait_time=None,
        duration=None,
    )


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
