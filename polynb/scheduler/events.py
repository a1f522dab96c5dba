"""What in-process subscribers receive: every event the engine appended to the store, with its seq."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from polynb.store import EventRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One event of the store's log as the engine wrote it.

    ``status`` is set for status events (``run_status_<status>``, and ``run_status_done`` carries the final
    status); ``name``, ``run_kind``, ``reason`` and ``message`` come from the status change.
    """

    seq: int
    at: datetime
    kind: str
    run_uuid: str
    dag_uuid: str | None
    name: str | None = None
    run_kind: str | None = None
    status: str | None = None
    previous: str | None = None
    reason: str | None = None
    message: str | None = None
    payload: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_record(cls, record: EventRecord) -> EngineEvent:
        p = record.payload
        return cls(
            seq=record.seq,
            at=record.at,
            kind=record.kind,
            run_uuid=record.run_uuid,
            dag_uuid=record.dag_uuid,
            name=p.get("name"),
            run_kind=p.get("run_kind"),
            status=p.get("status"),
            previous=p.get("previous"),
            reason=p.get("reason"),
            message=p.get("message"),
            payload=dict(p),
        )


Listener = Callable[[EngineEvent], None]


class Listeners:
    """Subscribers, called on the engine thread in seq order. A failing listener is logged, never fatal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, records: Iterable[EventRecord]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        if not listeners:
            return
        for record in records:
            event = EngineEvent.from_record(record)
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    logger.exception("event listener %r failed on %s (seq %d)", listener, event.kind, event.seq)
