"""One list + watch of a namespace's pods by label selector, whatever the number of runs (an informer).

The thread lists once (the cache and a resourceVersion), then watches from that resourceVersion with
bookmarks, resuming from the last resourceVersion seen after every server-side close or dropped
connection. ``410 Gone`` (the resourceVersion was compacted away) means: list again and diff against the
cache, so a deletion missed in the gap is delivered as a synthetic ``DELETED``. Errors back off
exponentially (5xx, 429, no connection) and are reported to ``on_error`` (401/403 are worth a message);
the watch never gives up while the executor runs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from polynb.executors.kubernetes.client import Api, K8sError, Stream, path

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], None]
"""``(type, object)`` with type ADDED, MODIFIED or DELETED; called on the watch thread, in order."""
ErrorHandler = Callable[[K8sError], None]

READ_SLACK: Final = 30.0
"""Seconds a watch may stay silent beyond ``timeoutSeconds`` before the connection is taken as dead."""


class PodInformer(threading.Thread):
    """Lists and watches ``pods`` of ``namespace`` matching ``selector``; keeps the latest of each."""

    def __init__(
        self,
        api: Api,
        namespace: str,
        selector: str,
        on_event: EventHandler,
        on_error: ErrorHandler,
        *,
        watch_timeout: int = 300,
        backoff: float = 0.2,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__(name=f"polynb-k8s-watch-{namespace}", daemon=True)
        self.api = api
        self.namespace = namespace
        self.selector = selector
        self._on_event = on_event
        self._on_error = on_error
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.cache: dict[str, dict[str, Any]] = {}
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0
        self.reconnects = 0
        self._stop_event = threading.Event()
        self._stream: Stream | None = None
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop_event.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10.0)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.cache.values())

    # -- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        delay = self.backoff
        while not self._stop_event.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch()
                delay = self.backoff
            except K8sError as exc:
                if self._stop_event.is_set():
                    break
                if exc.code == 410:
                    log.info("pods watch in %s: %s; listing again", self.namespace, exc.message)
                    self.resource_version = None
                    continue
                self._report(exc)
                self._stop_event.wait(delay)
                delay = min(delay * 2, self.max_backoff)
            except Exception as exc:  # a dropped connection surfaces as urllib3/http.client errors
                if self._stop_event.is_set():
                    break
                self.reconnects += 1
                log.debug("pods watch in %s dropped (%s); resuming", self.namespace, exc)
                self._stop_event.wait(min(delay, 1.0))
                delay = min(delay * 2, self.max_backoff)

    def _report(self, exc: K8sError) -> None:
        try:
            self._on_error(exc)
        except Exception:
            log.exception("pods watch error handler")

    def _deliver(self, kind: str, obj: dict[str, Any]) -> None:
        try:
            self._on_event(kind, obj)
        except Exception:
            log.exception("pods watch event handler")

    def _relist(self) -> None:
        data = self.api.request(
            "GET", path("pods", self.namespace), query={"labelSelector": self.selector}, retry=False
        )
        items = [i for i in data.get("items") or () if isinstance(i, dict)]
        fresh = {i["metadata"]["name"]: i for i in items}
        with self._lock:
            gone = [obj for name, obj in self.cache.items() if name not in fresh]
            self.cache = dict(fresh)
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "") or None
        self.relists += 1
        for obj in gone:  # deleted while we were not watching
            self._deliver("DELETED", obj)
        for obj in items:
            self._deliver("MODIFIED", obj)
        self.synced.set()

    def _watch(self) -> None:
        query = {
            "watch": True,
            "labelSelector": self.selector,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self.watch_timeout,
        }
        stream = self.api.stream(
            path("pods", self.namespace), query=query, timeout=(10.0, self.watch_timeout + READ_SLACK)
        )
        with self._lock:
            self._stream = stream
        if self._stop_event.is_set():
            stream.close()
            return
        try:
            for line in stream.lines():
                if not line.strip():
                    continue
                self._handle(json.loads(line))
                if self._stop_event.is_set():
                    return
        finally:
            with self._lock:
                self._stream = None
            stream.close()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type") or "")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            raise K8sError(code, str(obj.get("reason") or "WatchError"), str(obj.get("message") or "watch error"))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = str(rv)
            return
        name = (obj.get("metadata") or {}).get("name")
        if kind not in ("ADDED", "MODIFIED", "DELETED") or not name:
            return
        with self._lock:
            if kind == "DELETED":
                self.cache.pop(name, None)
            else:
                self.cache[name] = obj
        if rv:
            self.resource_version = str(rv)
        self._deliver(kind, obj)
