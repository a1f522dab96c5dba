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


class _ThreadState(threading.local):
    """One thread's connection and the write transaction it has open."""

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.depth = 0
        """``atomic`` blocks open"""
        self.batch: Batch | None = None


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
        self._local = _ThreadState()
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._orphans: dict[int, sqlite3.Connection] = {}
        """Connections of threads still alive at close: each is closed by its own thread."""
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
            with self._lock:
                orphan = self._orphans.pop(threading.get_ident(), None)
            if orphan is not None:
                orphan.close()
            raise StoreError(f"{self.path}: the store is closed")
        if os.getpid() != self._pid:
            # Forked child: set the parent's connections aside unclosed (closing them here could touch the
            # parent's WAL state) and keep them referenced so garbage collection does not close them either.
            self._pid = os.getpid()
            self._inherited.extend(conn for _owner, conn in self._owners.values())
            self._owners = {}
            self._lock = threading.Lock()
            self._local = _ThreadState()
        conn = self._local.conn
        if conn is None:
            conn = connect(self.path)
            self._adopt(conn)
        return conn

    @contextmanager
    def write(self, *, one_statement: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front: a deferred transaction
        that reads then writes can fail at once with SQLITE_BUSY (its snapshot is stale) instead of
        waiting out the busy timeout. Inside :meth:`atomic` or :meth:`batch` the write joins the enclosing
        transaction as a savepoint: a write that fails is undone whole and the rest of the block stays.
        A write of ``one_statement`` needs no savepoint: SQLite undoes a failed statement itself."""
        conn = self.get()
        local = self._local
        if local.depth or local.batch is not None:
            self._begin_batch(conn)
            if one_statement:
                yield conn
                return
            with _savepoint(conn):
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
        self.committed()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction around every write this thread makes in the block: all or none is kept.
        Nested (in another ``atomic`` or a :meth:`batch`) it is a savepoint: an exception undoes the block
        alone; the enclosing transaction decides whether it is kept."""
        local = self._local
        with self.write():
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Group this thread's writes into one transaction until :meth:`Batch.commit` or the end of the
        block (which commits; an exception rolls back what was not committed). The transaction begins
        with the first write, so a batch that writes nothing costs nothing."""
        local = self._local
        if local.batch is not None or local.depth:
            raise StoreError("a batch cannot be opened inside another batch or an atomic block")
        conn = self.get()
        batch = Batch(self, conn)
        local.batch = batch
        try:
            yield batch
            batch.commit()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            batch.begun = False
            raise
        finally:
            local.batch = None

    def _begin_batch(self, conn: sqlite3.Connection) -> None:
        batch = self._local.batch
        if batch is not None and not batch.begun:
            conn.execute("BEGIN IMMEDIATE")
            batch.begun = True

    def in_atomic(self) -> bool:
        """This thread is inside an ``atomic`` block."""
        return self._local.depth > 0

    def committed(self) -> None:
        """Note a commit (the checkpointer counts them)."""
        if self.on_commit is not None:
            self.on_commit()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one consistent snapshot (WAL readers never block)."""
        conn = self.get()
        if conn.in_transaction:  # inside this thread's write transaction: it is one snapshot already
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close this process's connections. Further use raises StoreError.

        A connection is closed by this thread only if it is this thread's or its thread has ended: closing a
        connection another thread may be using (a UI thread still finishing a redraw) races with its
        statements in the C library. A live thread's connection is closed by that thread at its next call.
        """
        me = threading.get_ident()
        with self._lock:
            self._closed = True
            if os.getpid() == self._pid:
                for ident, (owner, conn) in self._owners.items():
                    if ident == me or not owner.is_alive():
                        conn.close()
                    else:
                        self._orphans[ident] = conn
            self._owners.clear()
        self._local = _ThreadState()


class Batch:
    """A :meth:`ConnectionPool.batch` in progress: the writes since its last commit are one transaction."""

    def __init__(self, pool: ConnectionPool, conn: sqlite3.Connection) -> None:
        self._pool = pool
        self._conn = conn
        self.begun = False
        """A write has begun the transaction (BEGIN IMMEDIATE: this thread holds the write lock)."""

    def commit(self) -> bool:
        """Commit the writes made so far (True if there were any); the next write begins a new transaction.
        Not inside an ``atomic`` block: its writes must stay all or none."""
        if self._pool.in_atomic():
            raise StoreError("cannot commit a batch inside an atomic block")
        if not self.begun:
            return False
        try:
            self._conn.execute("COMMIT")  # deferred foreign keys are checked here, so it may raise too
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self.begun = False
        self._pool.committed()
        return True


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """A nested piece of the open transaction: undone whole if the block raises."""
    conn.execute("SAVEPOINT w")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO w")
        conn.execute("RELEASE w")
        raise
    conn.execute("RELEASE w")
