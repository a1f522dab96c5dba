"""WAL checkpoints on a background thread.

SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past its threshold, and with
synchronous=NORMAL that is where the fsync happens: every few hundred status changes one of them took
milliseconds instead of a fraction of one. A passive checkpoint on another connection needs no writer lock,
so moving it to a thread keeps the scheduler's commits uniformly short.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable

COMMITS_PER_CHECKPOINT = 200
IDLE_CHECKPOINT_S = 1.0


class Checkpointer:
    """Checkpoints after every ``every`` commits, or ``idle_s`` after the last unflushed one.

    Started by the first commit, so a process that only reads (``polynb ls``) never starts a thread.
    """

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        *,
        every: int = COMMITS_PER_CHECKPOINT,
        idle_s: float = IDLE_CHECKPOINT_S,
    ) -> None:
        self._connection = connection
        self._every = every
        self._idle_s = idle_s
        self._pending = 0  # approximate (unlocked) count: it only decides when to wake up
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def committed(self) -> None:
        """Note one commit; called by the writer right after COMMIT."""
        self._pending += 1
        thread = self._thread
        if thread is None or not thread.is_alive():  # not started yet, or lost in a fork
            self._start()
        if self._pending >= self._every:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._stopping or (self._thread is not None and self._thread.is_alive()):
                return
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._run, name="polynb-store-checkpoint", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._idle_s)
            self._wake.clear()
            if self._pending and not self._stopping:
                self._pending = 0
                self.checkpoint()

    def checkpoint(self) -> None:
        """One passive checkpoint: copies what it can without waiting for readers or writers."""
        # Busy or closing: the next round (or the next open of the file) catches up.
        with contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def stop(self) -> None:
        """Stop the thread; the caller closes the connections (the last close checkpoints the WAL)."""
        with self._start_lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join()
