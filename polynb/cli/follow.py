"""Following a run of an engine in this process from the main thread, with Ctrl-C handled at safe points.

SIGINT and SIGTERM only record the signal and wake the loop; :class:`Interrupted` is raised by the loop
itself between two looks at the store, never in the middle of a store read or a terminal redraw.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

from polynb.cli.progress import Progress
from polynb.cli.tree import RunTree

WAKE_INTERVAL = 0.25
"""Longest pause between two looks at the store (durations in the live view tick at this rate)."""
POLL_INTERVAL = 0.02
"""Shortest pause between two looks at the store while the run goes on: the events of a burst (an op's
statuses, a fan-out) are read together, and the engine thread, which shares the interpreter with this
loop, is not slowed by a store read per event. The run's end is seen at once."""
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived (the signal's name is the message)."""


class Follower:
    """Wakes on every event of ``engine`` and on signals; use as a context manager in the main thread."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.wake = threading.Event()
        self._received: list[str] = []
        self._seen = 0
        self._previous: dict[int, Any] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def __enter__(self) -> Self:
        self._unsubscribe = self.engine.subscribe(lambda _event: self.wake.set())
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signal.Signals(signum).name)
        self.wake.set()

    def check(self) -> None:
        """Raise :class:`Interrupted` once per signal received since the last check."""
        if len(self._received) > self._seen:
            self._seen = len(self._received)
            raise Interrupted(self._received[-1])

    def follow(
        self,
        tree: RunTree,
        progress: Progress,
        *,
        include_services: bool,
        on_poll: Callable[[RunTree], None] | None = None,
    ) -> str:
        """Show every event until the engine says the run is done (``include_services``: services too) and
        return its status; ``on_poll`` sees the tree after each look at the store."""
        polled = -POLL_INTERVAL
        while True:
            self.check()
            self.wake.wait(WAKE_INTERVAL)
            pause = polled + POLL_INTERVAL - time.monotonic()
            if pause > 0 and not self._done(tree.root, include_services):
                time.sleep(pause)  # a signal meanwhile is checked on the next turn
            self.wake.clear()  # before reading: an event after this sets it again, so none is missed
            polled = time.monotonic()
            progress.update(tree, tree.poll())
            if on_poll is not None:
                on_poll(tree)
            try:
                status: str = self.engine.wait(tree.root, timeout=0, include_services=include_services)
            except TimeoutError:
                continue
            progress.update(tree, tree.poll())
            return status

    def _done(self, root: str, include_services: bool) -> bool:
        try:
            self.engine.wait(root, timeout=0, include_services=include_services)
        except TimeoutError:
            return False
        return True

    def until_interrupted(self) -> None:
        """Block until Ctrl-C or SIGTERM (then raise :class:`Interrupted`)."""
        while True:
            self.check()
            self.wake.wait(WAKE_INTERVAL)
            self.wake.clear()
