"""Connection events inside a DAG: ``events: [{ref: connections.NAME, kinds: [connection_git_commit]}]`` on an op.

A connection's source (``sources.external``, ``sources.buckets``) is *armed* for a DAG only while one of its
ops waits for that connection's events, and disarmed once none does (they started, were skipped, or the DAG
ended): nothing polls when nothing waits. Armed, its first look is the baseline (what was there before the
op waited is not an event); from then on each new commit, file, object or tag is recorded on the DAG run,
its payload with ``connection`` and ``id``. An op starts once, on the first matching event (as for every
in-DAG event); its inputs named like the payload's keys get their values, an input named ``event`` the whole
payload, as in a reactive pipeline (``watch.event_params``).

The cursor is the watch log's (``store.watches``, watch ``dag:<uuid>``): an event is recorded ``pending`` by
the source's thread, then on the DAG run and marked ``submitted`` in the engine's turn, one transaction, so
a restarted engine re-arms the source where it stopped and delivers what came meanwhile, none twice.

A DAG retried by its ``maxRetries`` runs its ops anew: each new attempt has its own cursor (``dag:<uuid>@<seq>``,
the seq of the DAG's ``running`` that began it) and reads only the events recorded on the DAG run since, so its
ops wait for a new event after the attempt began (its first look is a new baseline), never start on an earlier
attempt's.

A connection wait keeps its DAG running (as ``ref: dag`` does): only the event or the DAG being stopped (by
hand, a timeout, early stopping) ends it; stopped, the op is ``stopped`` like the DAG's other pending ops
(:mod:`.stopping`, reason ``DagStopped``), so the DAG ends ``stopped``. ``skipped``
(``ConnectionEventNotEmitted``) is for a connection that can no longer be watched (gone from the config file).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from polynb.lifecycle import CONNECTION_EVENT_KINDS, CONNECTION_REF_PREFIX, Status
from polynb.scheduler.readiness import EventWait
from polynb.scheduler.run_state import RunState
from polynb.scheduler.sources.external import Source, SourceLoop
from polynb.scheduler.state import DagState, EngineState
from polynb.store import EventRecord, Store
from polynb.store.watches import BASELINE, PENDING, SUBMITTED, WatchEvent, WatchLog

logger = logging.getLogger(__name__)

REASON_CONNECTION_EVENT_NOT_EMITTED = "ConnectionEventNotEmitted"

Connections = Callable[[], Sequence[Mapping[str, Any]]]
"""The ``connections:`` entries of the config file, read when a source is armed."""
SourceFor = Callable[[Mapping[str, Any]], Source]


def watch_name(dag_uuid: str, attempt_seq: int = 0) -> str:
    """The DAG's cursor in the watch log, one per attempt (``DagState.attempt_seq``; 0: the first)."""
    return f"dag:{dag_uuid}" if not attempt_seq else f"dag:{dag_uuid}@{attempt_seq}"


def connection_of(wait: EventWait) -> str | None:
    return wait.ref.removeprefix(CONNECTION_REF_PREFIX) if wait.ref.startswith(CONNECTION_REF_PREFIX) else None


def received(store: Store, dag: DagState) -> dict[str, dict[str, dict[str, Any]]]:
    """connection -> kind -> the first payload of that kind recorded on the DAG in its current attempt (read
    from the store once per attempt)."""
    if dag.connection_events is None:
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for event in store.events(run_uuid=dag.uuid, after_seq=dag.attempt_seq):
            name = event.payload.get("connection")
            if event.kind in CONNECTION_EVENT_KINDS and isinstance(name, str):
                found.setdefault(name, {}).setdefault(event.kind, dict(event.payload))
        dag.connection_events = found
    return dag.connection_events


def unfired(store: Store, dag: DagState, run: RunState) -> list[EventWait]:
    """The connection waits of a pending op none of whose kinds has come yet."""
    if run.plan is None or run.status != Status.CREATED:
        return []
    waits = [w for w in run.plan.requirements.events if connection_of(w) is not None]
    if not waits:
        return []
    got = received(store, dag)
    return [w for w in waits if w.kinds.isdisjoint(got.get(connection_of(w) or "", {}))]


def payload_for(store: Store, dag: DagState, run: RunState) -> dict[str, Any] | None:
    """What an op's connection events give its inputs: the first awaited event's payload per wait (later waits
    win on a shared key); None when the op awaits no connection."""
    if run.plan is None:
        return None
    got = received(store, dag)
    merged: dict[str, Any] | None = None
    for wait in run.plan.requirements.events:
        name = connection_of(wait)
        if name is None:
            continue
        merged = merged if merged is not None else {}
        for kind in sorted(wait.kinds):
            payload = got.get(name, {}).get(kind)
            if payload is not None:
                merged.update(payload)
                merged.setdefault("kind", kind)
                break
    return merged


def event_inputs(payload: Mapping[str, Any], inputs: Sequence[Any]) -> dict[str, Any]:
    """The op's params from an event payload: an input named like a payload key gets its value, an input named
    ``event`` the whole payload (as ``watch.event_params`` for a reactive pipeline)."""
    params: dict[str, Any] = {}
    for io in inputs:
        name = getattr(io, "name", None)
        if name == "event":
            params[name] = dict(payload)
        elif isinstance(name, str) and name in payload and name not in ("id", "kind"):
            params[name] = payload[name]
    return params


@dataclass(eq=False)
class _Armed:
    dag_uuid: str
    connection: str
    watch: str
    """The cursor of the DAG's attempt that armed it (``watch_name``)."""
    loop: SourceLoop


class ConnectionWaits:
    """Arms and disarms the sources the DAGs of one engine wait on (engine thread; each source on its own)."""

    def __init__(
        self,
        state: EngineState,
        *,
        call: Callable[[Callable[[], None]], None],
        record: Callable[[RunState, str, Mapping[str, Any]], EventRecord],
        connections: Connections,
        source_for: SourceFor,
        finish: Callable[[RunState, Status, str, str], None],
    ) -> None:
        """``call`` runs a function on the engine thread later (enqueues it); ``record`` appends an event to a
        run (``EventIntake.record``); ``finish`` gives a run its final status (``Statuses.finish``)."""
        self._state = state
        self._finish = finish
        self._call = call
        self._record = record
        self._connections = connections
        self._source_for = source_for
        self._armed: dict[tuple[str, str], _Armed] = {}
        self._log: WatchLog | None = None
        self._stoppers: list[threading.Thread] = []
        self._closed = False

    @property
    def armed(self) -> set[tuple[str, str]]:
        """(DAG uuid, connection name) pairs whose source is armed."""
        return set(self._armed)

    def sync(self, dag: DagState) -> None:
        """Arm the sources ``dag``'s pending ops wait on, disarm those none waits on any more."""
        needed = self._needed(dag)
        watch = watch_name(dag.uuid, dag.attempt_seq)
        # An earlier attempt's source is disarmed even when the new attempt waits on the same connection: the
        # new one takes its own baseline.
        stale = [k for k, a in self._armed.items() if k[0] == dag.uuid and (k[1] not in needed or a.watch != watch)]
        for key in stale:
            self._disarm(key)
        for name in needed:
            if (dag.uuid, name) not in self._armed:
                self._arm(dag, name)

    def close(self) -> None:
        """Disarm every source and wait for their threads (idempotent)."""
        self._closed = True
        for key in list(self._armed):
            self._disarm(key)
        for thread in self._stoppers:
            thread.join()
        self._stoppers = []

    # -- engine thread ----------------------------------------------------------------------------------

    def _needed(self, dag: DagState) -> set[str]:
        state = self._state
        if self._closed or dag.index is None or dag.stopping or state.shutting_down or state.closing:
            return set()
        if state.runs[dag.uuid].is_final:
            return set()
        needed: set[str] = set()
        for run in dag.index.volatile:  # the ops with an upstream outside the DAG: connection waits among them
            needed |= {name for w in unfired(state.store, dag, run) if (name := connection_of(w)) is not None}
        return needed

    def _arm(self, dag: DagState, name: str) -> None:
        try:
            entry = next((c for c in self._connections() if str(c.get("name")) == name), None)
        except Exception as exc:  # a config file broken since the check (SpecErrors, OSError)
            self._fail(dag, name, f"the config file cannot be read: {exc}")
            return
        if entry is None:
            self._fail(dag, name, f"no connection named {name} in the config file")
            return
        try:
            source = self._source_for(entry)
        except ValueError as exc:
            self._fail(dag, name, str(exc))
            return
        if self._log is None:
            self._log = WatchLog(self._state.store)
        log, dag_uuid, watch = self._log, dag.uuid, watch_name(dag.uuid, dag.attempt_seq)

        def look(src: Source) -> None:
            self._look(log, dag_uuid, watch, src)

        loop = SourceLoop([source], look)
        self._armed[(dag.uuid, name)] = _Armed(dag.uuid, name, watch, loop)
        loop.start()
        logger.debug("DAG %s: watching connection %s", dag.uuid, name)

    def _disarm(self, key: tuple[str, str]) -> None:
        armed = self._armed.pop(key)
        # A look may be under way (a listing, a git call): let it end on its own thread, never block the engine.
        stopper = threading.Thread(target=armed.loop.stop, name="polynb-source-stop", daemon=True)
        stopper.start()
        self._stoppers = [t for t in self._stoppers if t.is_alive()] + [stopper]

    def _fail(self, dag: DagState, name: str, message: str) -> None:
        """A connection that cannot be watched (gone from the config file since the check): its waiting ops are
        skipped with the reason rather than left waiting for ever."""
        state = self._state
        for uuid in dag.ops.values():
            run = state.runs[uuid]
            if any(connection_of(w) == name for w in unfired(state.store, dag, run)):
                self._finish(run, Status.SKIPPED, REASON_CONNECTION_EVENT_NOT_EMITTED, f"connections.{name}: {message}")

    def _deliver(self, key: tuple[str, str], events: Sequence[WatchEvent]) -> None:
        """Engine thread: record the new events of an armed source on its DAG (and mark them in the log, in the
        same transaction)."""
        armed = self._armed.get(key)
        if armed is None:
            return  # disarmed meanwhile: left pending for a later arming of the same DAG
        state = self._state
        run = state.runs.get(armed.dag_uuid)
        dag = state.dags.get(armed.dag_uuid)
        if run is None or dag is None or run.is_final:
            return
        assert self._log is not None
        got = received(state.store, dag)
        # Two looks may hand the same rows over before the first hand-over is handled: only those still
        # pending in the log (which this turn's marks are part of) are recorded.
        still = {e.seq for e in self._log.events(armed.watch, status=PENDING)}
        for event in events:
            if event.seq not in still:
                continue
            payload = {**event.payload, "connection": armed.connection, "id": event.event_id}
            self._record(run, event.kind, payload)
            got.setdefault(armed.connection, {}).setdefault(event.kind, payload)
            self._log.mark(event.seq, SUBMITTED, run_uuid=armed.dag_uuid)
        state.dirty_dags.add(armed.dag_uuid)

    # -- a source's thread --------------------------------------------------------------------------------

    def _look(self, log: WatchLog, dag_uuid: str, name: str, source: Source) -> None:
        if not log.has_looked(name, source.name):
            rows = [(e.id, e.kind, e.payload) for e in source.poll(None)]
            # Even an empty source gets a row: the next look knows the baseline was taken.
            log.record(name, source.name, rows or [("(empty)", source.kind, {})], status=BASELINE)
            return
        candidates = source.poll(log.last_id(name, source.name))
        log.record(name, source.name, [(e.id, e.kind, e.payload) for e in candidates])
        pending = [e for e in log.events(name, status=PENDING) if e.source == source.name]
        if pending:
            key = (dag_uuid, source.name)
            self._call(lambda: self._deliver(key, pending))
