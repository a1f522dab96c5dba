"""The callback tests hand to an executor (``submit(op, recorder)``) or an engine (``subscribe(recorder)``).

It keeps everything it is called with, in order, and lets the test read those items one by one (``next``)
or block until a predicate over all of them holds (``wait_for``). Both wait on a condition, never sleep;
the timeout only guards against a hang and is never a timing assertion.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from polynb.executors.base import ExecutorUpdate

DEADLOCK_GUARD = 60.0
"""Seconds before a wait is declared hung."""

T = TypeVar("T")


class Recorder(Generic[T]):
    """Everything a callback received (``events``); ``next`` reads them in order, ``seen`` is what it read."""

    def __init__(self) -> None:
        self.events: list[T] = []
        self._read = 0
        self._cond = threading.Condition()

    def __call__(self, item: T) -> None:
        with self._cond:
            self.events.append(item)
            self._cond.notify_all()

    def next(self) -> T:
        """The first item not read yet, waiting for it if none has arrived."""
        with self._cond:
            arrived = self._cond.wait_for(lambda: self._read < len(self.events), timeout=DEADLOCK_GUARD)
            assert arrived, f"deadlock guard: nothing arrived after {self.events[: self._read]}"
            self._read += 1
            return self.events[self._read - 1]

    def empty(self) -> bool:
        """True if every item that arrived so far was read."""
        with self._cond:
            return self._read == len(self.events)

    def drain(self) -> list[T]:
        """Marks everything that arrived as read; returns all of it."""
        with self._cond:
            self._read = len(self.events)
            return self.seen

    @property
    def seen(self) -> list[T]:
        return self.events[: self._read]

    def wait_for(self, predicate: Callable[[list[T]], bool]) -> None:
        """Blocks until ``predicate(events)`` holds (checked again on every arrival)."""
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.events), timeout=DEADLOCK_GUARD), "deadlock guard"


class UpdateRecorder(Recorder[ExecutorUpdate]):
    """What an executor reports for its runs; a final update ends any wait for another status."""

    def until(self, status: str, *, reason: str | None = None) -> ExecutorUpdate:
        """Reads updates until one with ``status`` (and ``reason``); a final one that is not it fails the wait."""
        while True:
            update = self.next()
            if update.status == status and (reason is None or update.reason == reason):
                return update
            assert not update.is_final, f"ended as {update.status} ({update.reason}: {update.message}), not {status}"

    def final(self) -> ExecutorUpdate:
        """Reads updates until a final one."""
        while True:
            update = self.next()
            if update.is_final:
                return update

    @property
    def statuses(self) -> list[str]:
        return [u.status for u in self.seen]
