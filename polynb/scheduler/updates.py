"""What an executor's status update does to a run: progress, its final status, a retry, a timeout.

Updates reach the engine thread through its queue (executor threads only enqueue). An update that comes
while the run's submission is in flight (its handle not back yet) is held and applied after the handle, in
order. A re-attached executor replays what it recorded: an update behind what the store has is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status, can_transition, event_kind
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.termination import REASON_TIMEOUT, Termination
from polynb.store import Step

logger = logging.getLogger(__name__)

REASON_RAN = "ObservedSucceeded"
RUNNING_EVENT = event_kind(Status.RUNNING)

_PROGRESS = {Status.QUEUED: 0, Status.SCHEDULED: 1, Status.STARTING: 2, Status.RUNNING: 3}
"""The order a submitted run moves in: an update behind the run's current status is not applied."""
_ADVANCING = frozenset(s.value for s in _PROGRESS)


class Updates:
    """Applies executor updates to the runs of one engine (engine thread only)."""

    def __init__(self, state: EngineState, statuses: Statuses, termination: Termination) -> None:
        self._state = state
        self._statuses = statuses
        self._termination = termination
        self.before: Callable[[RunState, ExecutorUpdate], None] | None = None
        """Called before an update of a live run is applied (``intake``: read the op's events file first)."""

    def handle_all(self, updates: Sequence[ExecutorUpdate]) -> None:
        """Apply ``updates`` in order. Progress updates of one run that follow each other (``starting`` then
        ``running``, as an executor often reports them together) are written as one store write
        (``Store.advance``): the same statuses, history rows and events, in the same order, for one UPDATE."""
        i = 0
        while i < len(updates):
            run = self._state.runs.get(updates[i].run_uuid)
            steps = self._progress(run, updates, i) if run is not None else 0
            if steps > 1:
                assert run is not None
                self._advance(run, updates[i : i + steps])
                i += steps
            else:
                self.handle(updates[i])
                i += 1

    def _progress(self, run: RunState, updates: Sequence[ExecutorUpdate], start: int) -> int:
        """How many updates from ``start`` on are progress of ``run`` that ``handle`` would each apply as one
        ``Statuses.set`` (a status ahead of the one before, nothing else to store)."""
        if run.in_flight or run.is_final or not run.submitted:
            return 0
        status, count = run.status, 0
        for update in updates[start:]:
            if update.run_uuid != run.uuid or update.url or update.outputs or update.status not in _ADVANCING:
                break
            target = Status(update.status)
            if _PROGRESS[target] <= _PROGRESS.get(status, -1) or not can_transition(status, target):
                break
            status, count = target, count + 1
        return count

    def _advance(self, run: RunState, updates: Sequence[ExecutorUpdate]) -> None:
        if self.before is not None:
            for update in updates:
                self.before(run, update)  # non-final: may start watching the op's events file (once)
        steps = [Step(Status(u.status), u.reason, u.message or None, observed_at(u)) for u in updates]
        moves = self._state.store.advance(run.uuid, steps, known=run.status)
        if moves is None:  # moved meanwhile (another process): one by one, each decides on what is stored
            for step, update in zip(steps, updates, strict=True):
                self._statuses.set(run, step.status, update.reason, update.message, step.at)
            return
        for move in moves:
            self._statuses.apply(run, move)

    def handle(self, update: ExecutorUpdate) -> None:
        state = self._state
        statuses = self._statuses
        run = state.runs.get(update.run_uuid)
        if run is not None and run.in_flight:
            run.early.append(update)  # the executor has it but its handle is not back yet: keep the order
            return
        if run is None or run.is_final:
            logger.debug("ignoring update for %s: %s", update.run_uuid, update.status)
            return
        if not run.submitted and run.status == Status.RETRYING:
            logger.debug("ignoring late update of a previous attempt of %s", run.uuid)
            return
        if self.before is not None:
            self.before(run, update)
        if update.url:
            state.store.set_url(run.uuid, update.url)
        if update.outputs:
            state.store.set_outputs(run.uuid, update.outputs)
        status = update.status
        at = observed_at(update)
        if status == "succeeded":
            if RUNNING_EVENT not in run.emitted:
                # A job too fast to be seen running did run: running-triggers must not miss it.
                statuses.set(run, Status.RUNNING, REASON_RAN, "reported succeeded before running", at)
            statuses.finish(run, Status.SUCCEEDED, update.reason, update.message, at)
        elif status == "failed":
            # The executor's own backstop of the timeout (the local shim's) fired before or without this engine's
            # timer: a timeout too, never retried.
            if run.timed_out or update.reason == REASON_TIMEOUT:
                statuses.finish(run, Status.FAILED, REASON_TIMEOUT, self._termination.timeout_message(run), at)
            elif self._termination.retries_left(run):
                self._termination.retry(run, update)
            else:
                statuses.finish(run, Status.FAILED, update.reason, update.message, at)
        elif status == "stopped":
            if run.timed_out:
                statuses.finish(run, Status.FAILED, REASON_TIMEOUT, self._termination.timeout_message(run), at)
            else:
                statuses.finish(run, Status.STOPPED, update.reason, update.message, at)
        elif status in _ADVANCING and _PROGRESS[Status(status)] < _PROGRESS.get(run.status, -1):
            # A re-attached executor replays what it recorded; what the store already has moved past is old.
            # Only progress is ordered: `warning` and `unschedulable` (a pull that fails, no node that fits)
            # come while a run is scheduled, starting or running, and are never behind.
            logger.debug("ignoring %s for %s, already %s", status, run.uuid, run.status)
        else:
            statuses.set(run, Status(status), update.reason, update.message, at)


def observed_at(update: ExecutorUpdate) -> datetime | None:
    """When the executor saw ``update`` happen (None: unknown, the store uses the time of writing).

    A restarted engine hears of what happened while no engine ran only when it re-attaches: the status is
    recorded with the time the run's own record gives, never the replay's (an op that took 3 s must not
    show, nor hand its hooks, the 6 s until someone attached). Never in the future: clocks may differ.
    """
    if update.at <= 0:
        return None
    return datetime.fromtimestamp(min(update.at, time.time()), UTC)
