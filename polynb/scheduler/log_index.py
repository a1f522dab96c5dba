"""A DAG's index of its runs' logs, written to the artifacts store when the DAG ends.

Each run's logs reach the store from its executor (:mod:`polynb.log_archive`); which runs make up a DAG, and under
which labels, only this engine's database knows. So when a DAG (a sweep, a schedule) reaches its final status a
worker thread reads the configuration (no store: nothing more is done), then the DAG's runs as ``polynb logs DAG``
lists them (:func:`~polynb.log_archive.dag_index`; the store is safe to read from any thread) and writes them to
``<store root>/<dag uuid>/logs/dag.json``: a store that is slow or down never holds the engine up, and an engine
without a store does no work. Another home then shows the DAG's logs op by op.

Runs that start after the DAG ended (hooks of the DAG itself) are not in its index; services still running are
(their logs reach the store when they end).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

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
        """Engine thread: a pipeline run's ``run_status_done`` hands it to the worker."""
        if event.kind != DONE_EVENT or event.run_kind not in PIPELINE_KINDS:
            return
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polynb-log-index")
            self._worker.submit(self._write, event.run_uuid, str(event.status or ""))

    def close(self) -> None:
        """Write what was handed over, then stop the worker (idempotent)."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)

    def _write(self, dag_uuid: str, status: str) -> None:
        try:
            archive = self._archive()
            if archive is not None:
                archive.write_index(dag_uuid, dag_index(self._store, dag_uuid, status=status))
        except ArchiveError as exc:
            logger.warning("DAG %s: its logs' index is not in the artifacts store: %s", dag_uuid, exc)
        except Exception:  # a store's bug must not end the worker
            logger.exception("DAG %s: writing its logs' index failed", dag_uuid)
