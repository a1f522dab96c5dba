"""Recording events beyond statuses: what ops append to their events file, approvals, custom events.

Engine thread only. Each event is appended to the store's log on the run it belongs to, added to that run's
``emitted`` kinds (what ``readiness`` reads) and published to subscribers once committed; the ops waiting
on it are marked for a new verdict. Inside a DAG an op starts once, on the first matching event: later
events are recorded (``polynb events`` lists them) but start nothing.

An op's events file is read (``sources.run_files``) while an op waits for one of its kinds, and always once
more when the run's final update arrives, *before* its final status is recorded: an artifact logged just
before the process exits fires its trigger instead of skipping the op that waited for it. The byte offset
read so far is kept in the run's ``meta`` (``events_offset``), so a restarted engine neither records a line
twice nor misses one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import CUSTOM_EVENT_KINDS, Status, is_status_event
from polynb.runtime.tracking import EVENTS_FILE
from polynb.scheduler.readiness import APPROVED_EVENT, INVALIDATED_EVENT
from polynb.scheduler.run_state import RunState
from polynb.scheduler.sources.run_files import EventFileWatcher, FileEvent, read_new
from polynb.scheduler.state import EngineState
from polynb.scheduler.tallies import awaits_events
from polynb.store import EventRecord
from polynb.store.paths import run_paths

logger = logging.getLogger(__name__)

OFFSET_KEY = "events_offset"
SEQ_KEY = "events_seq"
"""In a run's ``meta``: every ``seq`` up to this one is recorded, of the events an executor streamed back
(:meth:`receive`)."""
SEEN_KEY = "events_seen"
"""In a run's ``meta``: the ``seq``s recorded beyond :data:`SEQ_KEY` (the containers of a pod are followed
each on its own stream, so a later ``seq`` may arrive before an earlier one)."""


def events_file(uuid: str, root: Path | None = None) -> Path:
    """Where the op of run ``uuid`` appends its events (local executor layout under the run's artifacts
    ``root``, default ``$POLYNB_HOME/artifacts``)."""
    return run_paths(uuid, root).outputs / EVENTS_FILE


class EventIntake:
    """Records non-status events for one engine (engine thread only, but for ``watcher``'s thread)."""

    def __init__(self, state: EngineState, wake: Callable[[str], None]) -> None:
        self._state = state
        self.watcher = EventFileWatcher(wake)
        self._offsets: dict[str, int] = {}
        self._files: dict[str, Path] = {}
        self._seqs: dict[str, tuple[int, set[int]]] = {}
        self.start_single: Callable[[RunState], None] | None = None
        """``Submission.start_unless_awaiting_approval``: an approved single run starts."""

    # -- an op's events file --------------------------------------------------------------------------

    def before_update(self, run: RunState, update: ExecutorUpdate) -> None:
        """Called before an executor update is applied: watch a run someone waits on; read it all at its end."""
        if update.is_final:
            self.watcher.unwatch(run.uuid)
            self.ingest(run)
            self._offsets.pop(run.uuid, None)  # kept in the run's meta: a next attempt reads it back
            self._files.pop(run.uuid, None)
            if self._seqs.pop(run.uuid, None) is not None:
                # A next attempt runs in a new pod, whose events may number from 1 again.
                self._state.store.set_meta(run.uuid, {SEQ_KEY: 0, SEEN_KEY: []})
        elif not self.watcher.watching(run.uuid) and not self.streamed(run) and self._awaited(run):
            self.watcher.watch(run.uuid, self._events_file(run.uuid), self._offset(run.uuid))
            self.ingest(run)  # what it wrote before the watch began

    def streamed(self, run: RunState) -> bool:
        """Does ``run``'s executor stream its op's events back itself (:meth:`receive`; kubernetes)?"""
        executor = self._state.executors.get(run.executor)
        return executor is not None and hasattr(executor, "set_event_sink")

    def wake(self, uuid: str) -> None:
        """The watcher saw the file of ``uuid`` grow."""
        run = self._state.runs.get(uuid)
        if run is None or run.is_final:
            self.watcher.unwatch(uuid)
            return
        self.ingest(run)

    def ingest(self, run: RunState) -> list[EventRecord]:
        """Record the complete lines ``run``'s op appended since the last read."""
        path = self._events_file(run.uuid)
        if run.uuid not in self._offsets and not path.exists():
            return []  # most runs log no event: no store read for them
        offset = self._offset(run.uuid)
        lines, new_offset = read_new(path, offset)
        if new_offset == offset:
            return []
        records = []
        for line in lines:
            if is_status_event(line.kind):
                logger.warning("run %s: ignoring a status event %s in its events file", run.uuid, line.kind)
                continue
            at = datetime.fromtimestamp(line.at, UTC) if line.at > 0 else None
            records.append(self.record(run, line.kind, line.payload, at=at))
        self._offsets[run.uuid] = new_offset
        self._state.store.set_meta(run.uuid, {OFFSET_KEY: new_offset})
        return records

    def receive(self, uuid: str, events: Sequence[FileEvent]) -> list[EventRecord]:
        """Events an executor read from where the op runs (a pod's log stream), in order: the same record as
        :meth:`ingest`'s, each ``seq`` once (a stream reopened after a drop may repeat some). The executor
        delivers them before the run's final update, so none arrives after the run is final."""
        run = self._state.runs.get(uuid)
        if run is None or run.is_final:
            if events:
                logger.warning("run %s: %d event(s) from its executor after it ended: dropped", uuid, len(events))
            return []
        known = self._seqs.get(uuid)
        if known is None:
            meta = self._state.store.get_run(uuid).meta
            known = (int(meta.get(SEQ_KEY, 0) or 0), {int(s) for s in meta.get(SEEN_KEY) or ()})
        floor, seen = known[0], set(known[1])
        records = []
        for event in events:
            if event.seq and (event.seq <= floor or event.seq in seen):
                continue
            if is_status_event(event.kind):
                logger.warning("run %s: ignoring a status event %s from inside its op", uuid, event.kind)
            else:
                at = datetime.fromtimestamp(event.at, UTC) if event.at > 0 else None
                records.append(self.record(run, event.kind, event.payload, at=at))
            if event.seq:
                seen.add(event.seq)
                while floor + 1 in seen:
                    floor += 1
                    seen.discard(floor)
        if (floor, seen) != known:
            self._seqs[uuid] = (floor, seen)
            self._state.store.set_meta(uuid, {SEQ_KEY: floor, SEEN_KEY: sorted(seen)})
        else:
            self._seqs[uuid] = known
        return records

    def _events_file(self, uuid: str) -> Path:
        """The run's events file, under the artifacts root recorded for it (read once per run)."""
        path = self._files.get(uuid)
        if path is None:
            path = self._files[uuid] = events_file(uuid, self._state.store.artifacts_root_of(uuid))
        return path

    def close(self) -> None:
        self.watcher.close()

    # -- any event --------------------------------------------------------------------------------------

    def record(
        self, run: RunState, kind: str, payload: Mapping[str, Any] | None = None, *, at: datetime | None = None
    ) -> EventRecord:
        """Append ``kind`` to ``run``'s log and let the ops waiting on it decide again."""
        state = self._state
        event = state.store.append_event(run.uuid, kind, payload, at=at)
        run.emitted.add(kind)
        own = state.dags.get(run.uuid)
        if own is not None and own.attempt_seq:
            own.attempt_emitted.add(kind)  # a retried DAG's ``ref: dag`` triggers see this attempt's events only
        state.outbox.publish([event])
        index = state.index_of(run)
        if index is not None:
            index.touch(run)
            if kind in (APPROVED_EVENT, INVALIDATED_EVENT) and run.status == Status.CREATED:
                index.dirty.add(run.uuid)  # the op waits for its own approval
        if run.role == "single" and run.status == Status.CREATED and kind in (APPROVED_EVENT, INVALIDATED_EVENT):
            assert self.start_single is not None
            self.start_single(run)
        if run.role == "dag" or run.dag_uuid is not None:
            state.dirty_dags.add(run.uuid if run.role == "dag" else str(run.dag_uuid))
        if run.role == "op" and run.uuid in state.dags:  # an op running a nested DAG: its ops may await it
            state.dirty_dags.add(run.uuid)
        return event

    def approve(self, uuid: str, *, approved: bool = True, actor: str | None = None) -> EventRecord:
        """Approve (or invalidate) run ``uuid``: ``run_approved_actor`` / ``run_invalidated_actor``."""
        run = self._managed(uuid)
        kind = APPROVED_EVENT if approved else INVALIDATED_EVENT
        if run.is_final:
            raise ValueError(f"run {run.name} ({uuid}) is {run.status.value} already: nothing to {_verb(approved)}")
        return self.record(run, kind, {"actor": actor} if actor else {})

    def emit_to_dags(self, kind: str, payload: Mapping[str, Any]) -> list[EventRecord]:
        """A custom event from a cell or a terminal: recorded on every DAG of this engine that is not final
        (what ``ref: dag`` triggers await)."""
        if kind not in CUSTOM_EVENT_KINDS:
            raise ValueError(f"{kind!r}: only {', '.join(sorted(CUSTOM_EVENT_KINDS))} can be emitted to a DAG")
        state = self._state
        return [
            self.record(state.runs[uuid], kind, payload) for uuid in list(state.dags) if not state.runs[uuid].is_final
        ]

    def emit_to_run(self, uuid: str, kind: str, payload: Mapping[str, Any]) -> EventRecord:
        if is_status_event(kind):
            raise ValueError(f"{kind!r}: status events come from status changes")
        return self.record(self._managed(uuid), kind, payload)

    # -- helpers ----------------------------------------------------------------------------------------

    def _managed(self, uuid: str) -> RunState:
        run = self._state.runs.get(uuid)
        if run is None:
            raise LookupError(f"run {uuid} is not managed by this engine")
        return run

    def _offset(self, uuid: str) -> int:
        offset = self._offsets.get(uuid)
        if offset is None:
            meta = self._state.store.get_run(uuid).meta
            offset = self._offsets[uuid] = int(meta.get(OFFSET_KEY, 0) or 0)
        return offset

    def _awaited(self, run: RunState) -> bool:
        """Does a pending op of ``run``'s DAG wait for a non-status kind of it?"""
        index = self._state.index_of(run)
        return index is not None and awaits_events(index, run.name)


def _verb(approved: bool) -> str:
    return "approve" if approved else "invalidate"
