"""Events from inside a pod (``polynb.tracking.log_artifact`` & co.), read from its containers' logs (one
:class:`EventFollower` per container: init entries, sidecars, main).

The engine cannot read a pod's ``outputs/events.jsonl``; what the API server gives is the container's log. In
the pod of a run some op awaits events of, ``$POLYNB_EVENTS_STDOUT`` makes the tracking helpers also write
each event on stdout as one marker line (:data:`~polynb.runtime.tracking.EVENT_MARKER` + compact JSON, one
``write`` under the events file's ``flock``). An :class:`EventFollower` reads that log with
``follow=true&timestamps=true`` (``GET /api/v1/namespaces/{ns}/pods/{pod}/log``: the API server streams the
lines as the container writes them and ends the response when the container terminates) and hands each
marker's event to the engine. A dropped stream is reopened with ``sinceTime=<last timestamp>``; the lines of
that instant are replayed and :class:`~polynb.executors.kubernetes.logs.Resume` skips those delivered, and
each event's ``seq`` lets the engine record it once whatever happens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from polynb.executors.kubernetes.client import Api, K8sError, Stream, path
from polynb.executors.kubernetes.logs import Resume, split_timestamp
from polynb.runtime.tracking import EVENT_MARKER, parse_marker

log = logging.getLogger(__name__)

READ_TIMEOUT: Final = 300.0
"""Seconds a followed log may stay silent before the read gives up and the stream is reopened."""


def strip_marker(text: str) -> str | None:
    """A log line as users see it: an event marker removed (None: the line was only the marker)."""
    start = text.find(EVENT_MARKER)
    if start < 0:
        return text
    return text[:start] or None


class EventFollower:
    """One thread following one container's log for event markers, until the container ends or ``close()``.

    ``state()`` says where the container is (``waiting``, ``running``, ``terminated``, ``gone``); ``wait(t)``
    blocks until a pod event or ``t`` seconds (the executor's condition). ``sink(events)`` is called from the
    thread, in order; everything it delivers is delivered before :meth:`join` returns.
    """

    def __init__(
        self,
        api: Api,
        namespace: str,
        pod: str,
        container: str,
        sink: Callable[[Sequence[Mapping[str, Any]]], None],
        *,
        state: Callable[[], str],
        wait: Callable[[float], None],
        retry_wait: float = 5.0,
    ) -> None:
        self._api = api
        self._path = path("pods", namespace, pod, "log")
        self._container = container
        self._sink = sink
        self._state = state
        self._wait = wait
        self._retry_wait = retry_wait
        self._lock = threading.Lock()
        self._stream: Stream | None = None
        self._closed = False
        self._ending = False
        self.reopened = 0
        """How many times the stream was opened again after the first (tests read it)."""
        self._thread = threading.Thread(target=self._run, name=f"polynb-k8s-events-{pod}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ending(self) -> None:
        """The run is final: stop at the end of the current stream (or the next, after a drop)."""
        with self._lock:
            self._ending = True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Stop following (idempotent, any thread): the open stream is shut, the thread ends; then joined."""
        with self._lock:
            self._closed = True
            stream = self._stream
        if stream is not None:
            stream.close()  # unblocks the reader; the thread drops its reference and ends
        self.join()

    def _run(self) -> None:
        resume = Resume()
        first = True
        while True:
            with self._lock:
                if self._closed:
                    return
            state = self._state()
            if state == "gone":
                return
            if state == "waiting":
                self._wait(self._retry_wait)
                continue
            query: dict[str, Any] = {"container": self._container, "follow": True, "timestamps": True}
            since = resume.reopen()
            if since:
                query["sinceTime"] = since
            if not first:
                self.reopened += 1
            first = False
            try:
                stream = self._api.stream(self._path, query=query, timeout=(10.0, READ_TIMEOUT))
            except K8sError as exc:
                if exc.code == 404:
                    return  # the pod is gone: what it wrote went with it
                log.debug("events of %s: %s (retrying)", self._path, exc)
                self._wait(self._retry_wait)
                continue
            with self._lock:
                if self._closed:
                    stream.close()
                    return
                self._stream = stream
            clean = False
            try:
                for raw in stream.lines():
                    ts, text = split_timestamp(raw)
                    if not resume.accept(ts, text):
                        continue
                    event = parse_marker(text)
                    if event is not None:
                        self._sink([event])
                clean = True
            except Exception as exc:  # a dropped stream: reopened from the last timestamp
                log.debug("events of %s: stream dropped: %s", self._path, exc)
            finally:
                with self._lock:
                    self._stream = None
                stream.close()
            if not clean:
                continue  # what was missed comes with the reopened stream, which then ends if the container did
            with self._lock:
                ending = self._ending
            # The server ends a followed log when the container terminates (or the connection times out).
            if ending or self._state() in ("terminated", "gone"):
                return
            self._wait(self._retry_wait)
