"""A heap of deadlines (timeouts, retry delays, TTL clean-ups) for the engine loop.

The loop blocks on ``queue.get(timeout=timers.next_timeout())`` and then pops what is due: no polling.
Cancellation is lazy: a timer carries a key; ``cancel(key)`` forgets it and the popped entry is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True, slots=True)
class _Entry:
    deadline: float
    order: int
    key: Hashable = field(compare=False)
    payload: Any = field(compare=False)


class Timers:
    """Deadlines on a monotonic clock. Not thread-safe: only the engine thread uses it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, int] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, key: Hashable, delay: float, payload: Any = None) -> None:
        """Fire ``payload`` after ``delay`` seconds; replaces a timer with the same key."""
        order = next(self._order)
        self._live[key] = order
        heapq.heappush(self._heap, _Entry(self._clock() + max(0.0, delay), order, key, payload))

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def next_timeout(self) -> float | None:
        """Seconds until the next live deadline (0 if overdue), or None when there is none."""
        self._drop_dead()
        if not self._heap:
            return None
        return max(0.0, self._heap[0].deadline - self._clock())

    def pop_due(self) -> list[tuple[Hashable, Any]]:
        """Remove and return ``(key, payload)`` of every live timer whose deadline has passed."""
        now = self._clock()
        due: list[tuple[Hashable, Any]] = []
        while self._heap:
            self._drop_dead()
            if not self._heap or self._heap[0].deadline > now:
                break
            entry = heapq.heappop(self._heap)
            del self._live[entry.key]
            due.append((entry.key, entry.payload))
        return due

    def _drop_dead(self) -> None:
        while self._heap and self._live.get(self._heap[0].key) != self._heap[0].order:
            heapq.heappop(self._heap)
