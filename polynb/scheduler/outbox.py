"""What the engine does only once the store has committed the writes it follows.

The engine writes a turn of its loop in one transaction (``Store.batch``): one commit for many status
changes. The rule that makes this safe: nothing acts on a status before it is durable. So during a turn
the engine does not call ``executor.submit`` (through the submitter), ``executor.stop`` nor the listeners:
it posts them here, and the loop delivers them after the commit, in the order they were posted. Had the
process died before the commit, none of it happened: a restarted engine finds the store as it was before
the turn and no process, event or stop that the store does not explain.

Outside a turn (e.g. a listener calling the engine back while the loop delivers) every write commits on
its own, so whatever is posted is done at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from polynb.scheduler.events import Listeners
from polynb.store import EventRecord

logger = logging.getLogger(__name__)

Action = Callable[[], None]

ACTING_SECONDS = 0.001
"""How much longer a turn goes on once a message has left something to act on (a run to submit, one to
stop): nothing acts before the commit, so a submission waits at most this for the messages already queued
behind it (with many chains in flight, a commit per submission would cost more than it saves; alone, the
queue is empty and the turn ends at once), or for the other ops its message starts (``act_if_waited``)."""


class Outbox:
    """Actions and events waiting for the commit of the turn that caused them (engine thread only)."""

    def __init__(self, listeners: Listeners) -> None:
        self._listeners = listeners
        self._actions: list[tuple[Action, str]] = []
        self._events: list[EventRecord] = []
        self._committed: list[EventRecord] = []
        """Events whose writes a commit within the turn made durable: published at its end, whatever follows."""
        self._acting_since: float | None = None
        self.holding = False
        """A turn is open: what is posted waits for its commit."""
        self.commit: Callable[[], bool] | None = None
        """Commits the open turn's writes so far, if it may now (set by the engine for the turn; False: not now,
        e.g. inside an ``atomic`` block)."""

    def post(self, action: Action, what: str) -> None:
        """Do ``action`` (an executor call; ``what`` names it in the log if it fails) once the writes before it
        are committed."""
        if self.holding:
            self._actions.append((action, what))
            if self._acting_since is None:
                self._acting_since = time.monotonic()
        else:
            _attempt(action, what)

    def next_message(self) -> None:
        """The turn goes on with another message: what earlier ones posted waits for the end of the turn, which
        comes ``ACTING_SECONDS`` after the first action at the latest, unless this message runs that long itself
        (``act_if_waited`` counts from now)."""
        if self._acting_since is not None:
            self._acting_since = time.monotonic()

    def act_if_waited(self, seconds: float) -> None:
        """Within a turn, between two pieces of work that are each whole (two ops of a DAG being started): if an
        action has waited ``seconds`` for the commit, commit what is written so far and do the actions now, so a
        submission does not wait for the rest of the turn (a fan-out compiling 1,000 ops). Events still wait
        for the end of the turn: a listener may call the engine back, which must not happen halfway."""
        if self._acting_since is None or self.commit is None or time.monotonic() - self._acting_since < seconds:
            return
        try:
            committed = self.commit()
        except BaseException:
            # Not committed: nothing written since the last commit is durable, so nothing it posted may happen.
            dropped = self.drop()
            logger.critical("engine: a commit within a turn failed; %d submissions, stops and events dropped", dropped)
            raise
        if committed:
            actions, self._actions, self._acting_since = self._actions, [], None
            self._committed += self._events
            self._events = []
            for action, what in actions:
                _attempt(action, what)

    @property
    def acting(self) -> bool:
        """An action (a submission, a stop) waits for the commit."""
        return bool(self._actions)

    def publish(self, events: Iterable[EventRecord]) -> None:
        """Hand ``events`` (just written) to the listeners once committed, in seq order."""
        if self.holding:
            self._events.extend(events)
        else:
            self._listeners.publish(events)

    def deliver(self) -> None:
        """The turn's writes are committed: do the actions, then publish the events (the actions first: a
        submission waits for no listener). Listeners may call the engine back; what that posts is done too."""
        self._acting_since = None
        self._events[:0], self._committed = self._committed, []
        while self._actions or self._events:
            actions, self._actions = self._actions, []
            events, self._events = self._events, []
            for action, what in actions:
                _attempt(action, what)
            self._listeners.publish(events)

    def drop(self) -> int:
        """The turn's commit failed: nothing it posted since its last commit may happen (the events of what a
        commit within it made durable are still published). Returns how many items are dropped."""
        dropped = len(self._actions) + len(self._events)
        self._actions, self._events, self._acting_since = [], [], None
        return dropped


def _attempt(action: Action, what: str) -> None:
    try:
        action()
    except Exception:
        # One executor's failure to stop a run must not keep the others' submissions from being made.
        logger.exception("engine: %s failed", what)
