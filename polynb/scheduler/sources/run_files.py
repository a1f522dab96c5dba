"""The events a running op appends to its ``outputs/events.jsonl`` (``polynb.runtime.tracking``).

Two halves, so the engine thread alone reads and records (no event is recorded twice or after its run's
final status):

* :class:`EventFileWatcher` — a thread that only notices a watched file grew (inotify, else ``os.stat``
  every few milliseconds) and calls ``wake(uuid)``, which enqueues a message for the engine. It starts with
  the first watched file: the engine watches a run only while an op waits for one of its non-status events,
  so nothing is watched when nothing waits.
* :func:`read_new` — reads the complete lines after ``offset`` (a line is written with one ``write`` under
  ``flock`` by the op, so a line without its newline is still being written and is left for the next read).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polynb.scheduler.sources import inotify

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.005
"""Seconds between two looks at the watched files (only while at least one is watched)."""


@dataclass(frozen=True, slots=True)
class FileEvent:
    kind: str
    at: float
    payload: dict[str, Any]
    seq: int = 0
    """The op's number for the event (1, 2, ... per run; 0: an older writer without one)."""


def parse_event(line: Any) -> FileEvent:
    """An event line's JSON object as a :class:`FileEvent` (``ValueError``/``KeyError``/``TypeError`` if malformed)."""
    kind = line["kind"]
    payload = line.get("payload") or {}
    if not isinstance(kind, str) or not isinstance(payload, dict):
        raise ValueError("kind must be a string and payload an object")
    return FileEvent(kind, float(line.get("at") or 0.0), payload, int(line.get("seq") or 0))


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
            events.append(parse_event(json.loads(raw)))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: skipping a malformed event line (%s): %r", path, exc, raw[:200])
    return events, offset + end + 1


class EventFileWatcher:
    """Wakes the engine when a watched events file grows. ``watch``/``unwatch`` from the engine thread.

    With inotify (Linux), the file's folder is watched for writes (``IN_MODIFY``): no CPU while the ops are
    quiet, a line seen within a millisecond or so. Where inotify is not available, or the folder does not
    exist yet, the file's size is looked at every ``interval`` seconds.
    """

    def __init__(self, wake: Callable[[str], None], *, interval: float = DEFAULT_INTERVAL) -> None:
        self._wake = wake
        self._interval = interval
        self._lock = threading.Lock()
        self._files: dict[str, tuple[Path, int]] = {}
        """uuid -> (path, size last woken for)"""
        self._by_folder: dict[Path, set[str]] = {}
        self._wds: dict[str, int] = {}
        self._polled: set[str] = set()
        """files no inotify watch covers: looked at every ``interval``"""
        self._inotify: inotify.Inotify | None = None
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, uuid: str, path: Path, seen: int) -> None:
        """Wake for ``uuid`` whenever ``path`` grows beyond ``seen`` bytes."""
        with self._lock:
            if self._closed:
                return
            self._files[uuid] = (path, seen)
            if self._thread is None:
                if inotify.available():
                    try:
                        self._inotify = inotify.Inotify()
                    except OSError:
                        self._inotify = None
                self._pipe = os.pipe()
                self._thread = threading.Thread(target=self._run, name="polynb-event-files", daemon=True)
                self._thread.start()
            if self._inotify is not None:
                try:
                    wd = self._inotify.add(
                        path.parent, inotify.IN_MODIFY | inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO
                    )
                except OSError:
                    self._polled.add(uuid)
                else:
                    self._wds[uuid] = wd
                    self._by_folder.setdefault(path.parent, set()).add(uuid)
            else:
                self._polled.add(uuid)
        self._poke()

    def unwatch(self, uuid: str) -> None:
        with self._lock:
            entry = self._files.pop(uuid, None)
            self._polled.discard(uuid)
            wd = self._wds.pop(uuid, None)
            if entry is not None:
                users = self._by_folder.get(entry[0].parent, set())
                users.discard(uuid)
                if not users:
                    self._by_folder.pop(entry[0].parent, None)
                    if wd is not None and self._inotify is not None:
                        self._inotify.remove(wd)

    def watching(self, uuid: str) -> bool:
        with self._lock:
            return uuid in self._files

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._poke()
        if thread is not None:
            thread.join()
        if self._inotify is not None:
            self._inotify.close()
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)

    def _poke(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe[1], b"x")

    def _run(self) -> None:
        assert self._pipe is not None
        fds = [self._pipe[0]] + ([self._inotify.fileno()] if self._inotify is not None else [])
        while True:
            with self._lock:
                if self._closed:
                    return
                timeout = self._interval if self._polled else None
            ready, _, _ = select.select(fds, [], [], timeout)
            if self._pipe[0] in ready:
                os.read(self._pipe[0], 4096)
            candidates: set[str] = set()
            if self._inotify is not None and self._inotify.fileno() in ready:
                for change in self._inotify.read():
                    with self._lock:
                        candidates |= self._by_folder.get(change.folder, set())
            with self._lock:
                if self._closed:
                    return
                candidates |= self._polled
                files = {u: self._files[u] for u in candidates if u in self._files}
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
