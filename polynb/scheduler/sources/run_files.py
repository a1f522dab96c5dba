"""The events a running op appends to its ``outputs/events.jsonl`` (``polynb.runtime.tracking``).

Two halves, so the engine thread alone reads and records (no event is recorded twice or after its run's
final status):

* :class:`EventFileWatcher` — a thread that only notices a watched file grew (``os.stat``) and calls
  ``wake(uuid)``, which enqueues a message for the engine. It runs only while some file is watched: the
  engine watches a run only while an op waits for one of its non-status events, so nothing polls when
  nothing waits. ``stat`` of a few files every ``interval`` costs nothing measurable (bench/events.py);
  inotify (``watchfiles``) would save the interval's latency but is not a dependency of polynb yet.
* :func:`read_new` — reads the complete lines after ``offset`` (a line is written with one ``write`` under
  ``flock`` by the op, so a line without its newline is still being written and is left for the next read).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.005
"""Seconds between two looks at the watched files (only while at least one is watched)."""


@dataclass(frozen=True, slots=True)
class FileEvent:
    kind: str
    at: float
    payload: dict[str, Any]


def read_new(path: Path, offset: int) -> tuple[list[FileEvent], int]:
    """The complete event lines of ``path`` after byte ``offset``, and the offset after them."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events: list[FileEvent] = []
    for raw in data[: end + 1].splitlines():
        try:
            line = json.loads(raw)
            kind = line["kind"]
            payload = line.get("payload") or {}
            if not isinstance(kind, str) or not isinstance(payload, dict):
                raise ValueError("kind must be a string and payload an object")
            events.append(FileEvent(kind, float(line.get("at") or 0.0), payload))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: skipping a malformed event line (%s): %r", path, exc, raw[:200])
    return events, offset + end + 1


class EventFileWatcher:
    """Wakes the engine when a watched events file grows. ``watch``/``unwatch`` from the engine thread."""

    def __init__(self, wake: Callable[[str], None], *, interval: float = DEFAULT_INTERVAL) -> None:
        self._wake = wake
        self._interval = interval
        self._lock = threading.Lock()
        self._files: dict[str, tuple[Path, int]] = {}
        """uuid -> (path, size last woken for)"""
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, uuid: str, path: Path, seen: int) -> None:
        """Wake for ``uuid`` whenever ``path`` grows beyond ``seen`` bytes."""
        with self._lock:
            self._files[uuid] = (path, seen)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="polynb-event-files", daemon=True)
                self._thread.start()
            self._changed.notify()

    def unwatch(self, uuid: str) -> None:
        with self._lock:
            self._files.pop(uuid, None)

    def watching(self, uuid: str) -> bool:
        with self._lock:
            return uuid in self._files

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._files and not self._closed:
                    self._changed.wait()  # nothing is watched: sleep until something is
                if self._closed:
                    return
                files = dict(self._files)
            for uuid, (path, seen) in files.items():
                try:
                    size = os.stat(path).st_size
                except OSError:
                    continue
                if size > seen:
                    with self._lock:
                        if uuid in self._files:
                            self._files[uuid] = (path, size)
                    self._wake(uuid)
            with self._lock:
                if self._closed:
                    return
                self._changed.wait(self._interval)
