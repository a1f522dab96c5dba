"""One SQLite connection per thread (and per process) for a store file."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from polynb.store.errors import StoreError
from polynb.store.schema import connect, open_database


class ConnectionPool:
    """Hands each thread its own connection; SQLite's locking (with a busy timeout) does the rest.

    A connection is never shared between threads, so no Python-level lock is needed. Connections of
    threads that have ended are closed when the next thread asks for one. After ``fork`` the child gets
    fresh connections: SQLite connections must not cross a fork.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._owners: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}
        self._local = threading.local()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False
        self.on_commit: Callable[[], None] | None = None
        # The first connection creates/checks the schema and turns WAL on (a persistent file setting).
        first = open_database(path)
        self._adopt(first)

    def _adopt(self, conn: sqlite3.Connection) -> None:
        thread = threading.current_thread()
        with self._lock:
            for ident, (owner, old) in list(self._owners.items()):
                if not owner.is_alive():
                    old.close()
                    del self._owners[ident]
            self._owners[threading.get_ident()] = (thread, conn)
        self._local.conn = conn

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        if os.getpid() != self._pid:
            # Forked child: set the parent's connections aside unclosed (closing them here could touch the
            # parent's WAL state) and keep them referenced so garbage collection does not close them either.
            self._pid = os.getpid()
            self._inherited.extend(conn for _owner, conn in self._owners.values())
            self._owners = {}
            self._lock = threading.Lock()
            self._local = threading.local()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._adopt(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front: a deferred transaction
        that reads then writes can fail at once with SQLITE_BUSY (its snapshot is stale) instead of
        waiting out the busy timeout. Inside :meth:`atomic` the write joins the enclosing transaction."""
        conn = self.get()
        if getattr(self._local, "atomic", 0):
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")  # deferred foreign keys are checked here, so it may raise too
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if self.on_commit is not None:
            self.on_commit()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction around every write this thread makes in the block: all or none is kept."""
        with self.write():
            local = self._local
            local.atomic = getattr(local, "atomic", 0) + 1
            try:
                yield
            finally:
                local.atomic -= 1

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one consistent snapshot (WAL readers never block)."""
        conn = self.get()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this process opened. Further use raises StoreError."""
        with self._lock:
            self._closed = True
            if os.getpid() == self._pid:
                for _owner, conn in self._owners.values():
                    conn.close()
            self._owners.clear()
        self._local = threading.local()
