"""Reactive pipelines: a pipeline whose top-level ``events`` name connections runs once per event
(``polynb watch -f FILE``; docs/semantics.md, "Events").

Three threads meet here: the sources' loop (``sources.external.SourceLoop``) looks at a source when it may
have news and records what is new in the store (``store.watches``: the cursor, which drops what was seen);
the dispatcher submits the pending events in order, within ``concurrency`` runs at once, until ``max_runs``
runs were submitted; the engine's listener frees a slot when a run of the watch is final.

The first time a watch looks at a source, what is there already is its *baseline*, recorded and not run
(``catch_up=True`` runs it instead); from then on, across restarts, every new commit, file or tag is run once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polynb.lifecycle import DONE_EVENT
from polynb.scheduler.events import EngineEvent
from polynb.scheduler.sources.external import Source, SourceLoop
from polynb.store import RunNotFoundError, Store
from polynb.store.watches import BASELINE, FAILED, PENDING, SUBMITTED, WatchEvent, WatchLog

if TYPE_CHECKING:
    from polynb.compiler.pipeline import Pipeline
    from polynb.scheduler.engine import Engine

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchOptions:
    name: str
    """Names the watch's cursor in the store: the same name resumes where it stopped."""
    max_runs: int | None = None
    concurrency: int = 1
    catch_up: bool = False


class Watch:
    """Runs ``build(event)`` (a pipeline bound to the event's payload) once per new event of ``sources``."""

    def __init__(
        self,
        *,
        store: Store,
        engine: Engine,
        sources: Sequence[Source],
        build: Callable[[WatchEvent], Pipeline],
        options: WatchOptions,
        executor: str | None = None,
        on_change: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.options = options
        self.log = WatchLog(store)
        self._build = build
        self._executor = executor
        self._on_change = on_change
        self._loop = SourceLoop(sources, self._look)
        self._cond = threading.Condition()
        self._active: set[str] = set()
        self._submitted = len(self.log.events(options.name, status=SUBMITTED))
        self._stopping = False
        self._dispatcher: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        for event in self.log.events(self.options.name, status=SUBMITTED):
            if event.run_uuid and not self._is_final(event.run_uuid):
                self._active.add(event.run_uuid)  # a run of an earlier watch still going: it holds a slot
        self._unsubscribe = self.engine.subscribe(self._on_engine_event)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="polynb-watch", daemon=True)
        self._dispatcher.start()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join()
        if self._unsubscribe is not None:
            self._unsubscribe()

    @property
    def done(self) -> bool:
        """``max_runs`` runs were submitted and all of them are final."""
        with self._cond:
            return self._exhausted() and not self._active

    def wait_done(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._exhausted() and not self._active, timeout=timeout)

    @property
    def submitted(self) -> int:
        with self._cond:
            return self._submitted

    # -- sources' thread -------------------------------------------------------------------------------

    def _look(self, source: Source) -> None:
        name = self.options.name
        baseline = not self.log.has_looked(name, source.name) and not self.options.catch_up
        candidates = source.poll(self.log.last_id(name, source.name))
        rows = [(e.id, e.kind, e.payload) for e in candidates]
        if baseline:
            # Even an empty source gets a row, so the next look knows the baseline was taken.
            self.log.record(name, source.name, rows or [("(empty)", source.kind, {})], status=BASELINE)
            return
        new = self.log.record(name, source.name, rows)
        if new:
            for event in new:
                self._changed(event)
            with self._cond:
                self._cond.notify_all()

    # -- dispatcher thread -----------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._can_submit(), timeout=None)
                if self._stopping:
                    return
            pending = self.log.events(self.options.name, status=PENDING)
            if not pending:
                with self._cond:
                    self._cond.wait(0.5)  # woken by the next record
                continue
            self._submit(pending[0])

    def _can_submit(self) -> bool:
        return not self._exhausted() and len(self._active) < max(1, self.options.concurrency) and self._has_pending()

    def _has_pending(self) -> bool:
        return bool(self.log.events(self.options.name, status=PENDING))

    def _exhausted(self) -> bool:
        return self.options.max_runs is not None and self._submitted >= self.options.max_runs

    def _submit(self, event: WatchEvent) -> None:
        def handled(uuid: str) -> None:
            # In the transaction that creates the run: a watch killed at any moment has either both (the run
            # and its event marked) or neither, so a restarted watch never submits an event twice.
            self.log.mark(event.seq, SUBMITTED, run_uuid=uuid)

        try:
            pipeline = self._build(event)
            uuid = self.engine.submit(pipeline, executor=self._executor, created=handled)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "watch %s: event %s of %s not run: %s", self.options.name, event.event_id, event.source, message
            )
            self.log.mark(event.seq, FAILED, message=message)
            self._changed(event)
            return
        with self._cond:
            self._active.add(uuid)
            self._submitted += 1
        self._changed(event)

    # -- engine thread -----------------------------------------------------------------------------------

    def _on_engine_event(self, event: EngineEvent) -> None:
        if event.kind != DONE_EVENT:
            return
        with self._cond:
            if event.run_uuid in self._active:
                self._active.discard(event.run_uuid)
                self._cond.notify_all()

    # -- helpers -------------------------------------------------------------------------------------------

    def _is_final(self, uuid: str) -> bool:
        try:
            return self.store.get_run(uuid).is_final
        except RunNotFoundError:
            return True

    def _changed(self, event: WatchEvent) -> None:
        if self._on_change is not None:
            try:
                self._on_change(event)
            except Exception:
                logger.exception("watch listener failed")


def event_params(event: WatchEvent, inputs: Sequence[Any]) -> dict[str, Any]:
    """The pipeline's params for one event: each declared input named like a payload key gets its value, and
    an input named ``event`` the whole payload (with ``id``, ``source`` and ``kind``)."""
    whole = {**event.payload, "id": event.event_id, "source": event.source, "kind": event.kind}
    params: dict[str, Any] = {}
    for io in inputs:
        name = getattr(io, "name", None)
        if name == "event":
            params[name] = whole
        elif name in event.payload:
            params[name] = event.payload[name]
    return params
