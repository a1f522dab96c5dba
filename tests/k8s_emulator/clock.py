"""The emulator's clock: wall time at start plus what tests advance; strictly increasing nanoseconds.

Deadlines and TTLs (``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``) fire on ``advance()``, never
by waiting, and every timestamp is distinct so log resumption is exact.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, start: float | None = None, *, follow_wall: bool = False) -> None:
        """``follow_wall``: time also passes as on the wall (the executing kubelet's processes take real time,
        and a container's ``finishedAt`` must come after a stop asked while it ran); else it stands still
        between ``advance()`` calls, which makes the scripted kubelet's timestamps exact."""
        self._base_ns = int((start if start is not None else time.time()) * 1e9)
        self._follow_from_ns = time.time_ns() if follow_wall else None
        self._offset_ns = 0
        self._last_ns = 0
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            passed = 0 if self._follow_from_ns is None else time.time_ns() - self._follow_from_ns
            value = max(self._base_ns + passed + self._offset_ns, self._last_ns + 1000)  # +1 µs per reading
            self._last_ns = value
            return value

    def now(self) -> float:
        return self.now_ns() / 1e9

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset_ns += int(seconds * 1e9)

    def iso(self) -> str:
        return datetime.fromtimestamp(self.now_ns() // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def iso_nano(self) -> str:
        """RFC 3339 with nanoseconds, trailing zeros trimmed (Go's ``RFC3339Nano``, as the kubelet writes)."""
        ns = self.now_ns()
        whole = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        frac = f"{ns % 10**9:09d}".rstrip("0")
        return f"{whole}.{frac}Z" if frac else f"{whole}Z"


def parse_iso(value: str) -> float:
    head, _, frac = value.rstrip("Z").partition(".")
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (int((frac + "000000000")[:9]) / 1e9 if frac else 0.0)
