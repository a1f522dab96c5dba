"""A DAG's index of its runs' logs, written to the artifacts store when the DAG ends.

Each run's logs reach the store from its executor (:mod:`polynb.log_archive`); which runs make up a DAG, and under
which labels, only this engine's database knows. So when a DAG (a sweep, a schedule) reaches its final status the
engine reads its runs as ``polynb logs DAG`` lists them (:func:`~polynb.log_archive.dag_index`, on the engine
thread, where the store is read) and a worker thread writes them to ``<store root>/<dag uuid>/logs/dag.json``
(a store that is slow or down never holds the engine up). Another home then shows the DAG's logs op by op.

Runs that start after the DAG ended (hooks of the DAG itself) are not in its index; services still running are
(their logs reach the store when they end).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from polynb.lifecycle import DONE_EVENT, PIPELINE_KINDS
from polynb.log_archive import ArchiveError, LogArchive, dag_index
from polynb.scheduler.events import EngineEvent
from polynb.store import Store

logger = logging.getLogger(__name__)

ArchiveSource = Callable[[], LogArchive | None]
"""The artifacts store as a log archive (None: none configured); called on the worker, once per DAG."""


class DagLogIndex:
    """An engine listener writing each ended DAG's index to the artifacts store (see the module docstring)."""

    def __init__(self, store: Store, archive: ArchiveSource) -> None:
        self._store = store
        self._archive = archive
        self._lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None
        self._closed = False

    def on_event(self, event: EngineEvent) -> None:
        """Engine thread: a pipeline run's ``run_status_done`` hands its index to the worker."""
        if event.kind != DONE_EVENT or event.run_kind not in PIPELINE_KINDS:
            return
        index = dag_index(self._store, event.run_uuid)
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polynb-log-index")
            self._worker.submit(self._write, event.run_uuid, index)

    def close(self) -> None:
        """Write what was handed over, then stop the worker (idempotent)."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)

    def _write(self, dag_uuid: str, index: dict[str, Any]) -> None:
        try:
            archive = self._archive()
            if archive is not None:
                archive.write_index(dag_uuid, index)
        except ArchiveError as exc:
            logger.warning("DAG %s: its logs' index is not in the artifacts store: %s", dag_uuid, exc)
        except Exception:  # a store's bug must not end the worker
            logger.exception("DAG %s: writing its logs' index failed", dag_uuid)
