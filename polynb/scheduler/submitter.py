"""Hands ``executor.submit`` to a small pool of threads so a process spawn never blocks the engine thread.

The engine claims a run in the store (atomic, exactly once) on its own thread, then queues the submission
here; a submitter thread calls ``executor.submit`` and reports a :class:`Submitted` back through the
engine's queue, where the handle is stored. Executor updates for the run may reach the engine before its
``Submitted``: the engine treats a claimed run as submitted from the claim on. Executors are thread-safe
(their updates already come from their own threads), and one run is only ever submitted by one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polynb.compiler.types import CompiledOp
from polynb.executors.base import Executor, UpdateCallback

logger = logging.getLogger(__name__)

THREADS = 2
"""Two spawns may overlap (a spawn mostly waits on the kernel); more would only compete for the cores."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """The outcome of one ``executor.submit``: the handle record, or the exception it raised."""

    uuid: str
    attempt: int
    handle: dict[str, Any] | None = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    executor: Executor
    op: CompiledOp
    on_update: UpdateCallback
    attempt: int


class Submitter:
    """A pool of ``threads`` daemon threads, started on first use; ``report`` gets every outcome."""

    def __init__(self, report: Callable[[Submitted], None], *, threads: int = THREADS) -> None:
        self._report = report
        self._count = threads
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, executor: Executor, op: CompiledOp, on_update: UpdateCallback, *, attempt: int) -> None:
        with self._lock:
            if not self._threads:
                for i in range(self._count):
                    thread = threading.Thread(target=self._work, name=f"polynb-submit-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        self._jobs.put(_Job(executor, op, on_update, attempt))

    def drain(self) -> None:
        """Block until every queued submission has been made and reported."""
        self._jobs.join()

    def close(self) -> None:
        """Let the threads end once the queue is empty (submissions already queued are still made)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                try:
                    handle = job.executor.submit(job.op, job.on_update)
                except Exception as exc:
                    self._report(Submitted(job.op.uuid, job.attempt, error=exc))
                else:
                    self._report(Submitted(job.op.uuid, job.attempt, handle=handle))
            except Exception:  # reporting only enqueues; never let one run take a thread down
                logger.exception("submitter: reporting the submission of %s failed", job and job.op.uuid)
            finally:
                self._jobs.task_done()
