"""The UI thread: the single owner of every widget write, coalescing engine events into few updates.

The engine calls :meth:`UiPump.notify` on its own thread for every event; that only enqueues. The pump
thread routes events to the top-level runs being shown, and refreshes a run's views (reading the store's
event log from the last seq it saw) at most ``max_rate`` times a second, whatever the event rate: every
widget therefore gets at most ``max_rate`` messages a second. A run whose refresh is costly (a DAG of hundreds
of ops) is refreshed less often, so its refreshes take at most :data:`UI_SHARE` of the time. Views of live runs
are also refreshed once a second without events, so durations and the "now" line move.

Widget traits are written directly from this thread: ipykernel sends ``comm_msg`` updates from any thread
and they reach the front end even while a cell is busy. Marshalling them onto the kernel's event loop
(``call_soon_threadsafe``) would stall them until the cell ends. Nothing here prints.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from polynb.notebook.model import RunSnapshot, RunTracker
from polynb.scheduler.events import EngineEvent
from polynb.store import RunNotFoundError, Store

log = logging.getLogger(__name__)

DEFAULT_MAX_RATE = 10.0
TICK = 1.0
"""Seconds between refreshes of a live run's views when no event comes."""
UI_SHARE = 0.2
"""Most of the time the refreshes of one run may take: one that cost ``c`` seconds waits ``c / UI_SHARE`` before
the next, whatever ``max_rate`` allows. The snapshot and the widget's HTML are Python code holding the GIL the
engine thread needs (the kernel runs both), and grow with the run's ops: a DAG of a thousand is redrawn less
often instead of slowing its own scheduling."""


class View(Protocol):
    """What the pump drives: a widget showing one top-level run (written from the pump thread only)."""

    @property
    def root(self) -> str: ...
    @property
    def alive(self) -> bool: ...
    def show(self, snapshot: RunSnapshot) -> None: ...


SnapshotHook = Callable[[RunTracker, float], RunSnapshot]
"""Builds a run's snapshot from its tracker at a time (the session adds links and notes, opens pages)."""


@dataclass(frozen=True, slots=True)
class _Notice:
    run_uuid: str
    dag_uuid: str | None


@dataclass(frozen=True, slots=True)
class _Attach:
    view: View
    tracker: RunTracker | None


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Touch:
    root: str


_QUIT = object()


class UiPump:
    """See the module docstring. ``snapshot`` turns a tracker into what views show."""

    def __init__(self, store: Store, *, snapshot: SnapshotHook, max_rate: float = DEFAULT_MAX_RATE) -> None:
        if max_rate <= 0:
            raise ValueError("max_rate must be positive")
        self.store = store
        self.min_interval = 1.0 / max_rate
        self._snapshot = snapshot
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._views: dict[str, list[View]] = {}
        self._trackers: dict[str, RunTracker] = {}
        self._member_of: dict[str, str] = {}
        self._strangers: set[str] = set()
        self._dirty: set[str] = set()
        self._last_flush: dict[str, float] = {}
        self._interval: dict[str, float] = {}
        """Per run: the shortest pause before its next refresh (``min_interval``, or longer for a costly one)."""
        self._live: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="polynb-ui", daemon=True)
        self.flushes = 0
        """How many times views were refreshed (benchmarks and tests read it)."""

    def start(self) -> None:
        self._thread.start()

    def set_max_rate(self, max_rate: float) -> None:
        """A new ``max_rate`` (any thread): each run's next refresh is spaced by it (and by its own cost after)."""
        if not max_rate > 0:
            raise ValueError("max_rate must be positive")
        self.min_interval = 1.0 / max_rate
        self.call(self._interval.clear)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_QUIT)
            self._thread.join(timeout=10)

    # -- any thread ---------------------------------------------------------------------------------

    def notify(self, event: EngineEvent) -> None:
        """Engine listener: enqueue only (it runs on the engine thread)."""
        self._queue.put(_Notice(event.run_uuid, event.dag_uuid))

    def attach(self, view: View, tracker: RunTracker | None = None) -> None:
        """Start driving ``view``; ``tracker`` (built by the caller for the first render) is handed over."""
        self._queue.put(_Attach(view, tracker))

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the UI thread (button actions: stop a run, show logs)."""
        self._queue.put(_Call(fn))

    def touch(self, root: str) -> None:
        """Redraw the views of ``root`` (a selection changed in one), within the message rate as any refresh."""
        self._queue.put(_Touch(root))

    def sync(self, timeout: float = 10.0) -> None:
        """Wait until everything enqueued so far is handled (tests and benchmarks)."""
        done = threading.Event()
        self._queue.put(_Call(done.set))
        done.wait(timeout)

    # -- the UI thread ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._timeout())
            except queue.Empty:
                item = None
            items = [item]
            while True:  # drain: coalesce everything that is already there
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for it in items:
                if it is _QUIT:
                    return
                try:
                    self._take(it)
                except Exception:
                    log.exception("polynb UI thread: handling %r failed", it)
            try:
                self._flush_due()
            except Exception:
                log.exception("polynb UI thread: refreshing views failed")

    def _timeout(self) -> float | None:
        if not self._dirty and not self._live:
            return None
        now = time.monotonic()
        due = [self._last_flush.get(r, 0.0) + self._interval.get(r, self.min_interval) for r in self._dirty]
        due += [self._last_flush.get(r, 0.0) + max(TICK, self._interval.get(r, 0.0)) for r in self._live]
        return max(0.0, min(due) - now)

    def _take(self, item: object) -> None:
        if isinstance(item, _Notice):
            root = self._route(item)
            if root is not None:
                self._dirty.add(root)
        elif isinstance(item, _Attach):
            root = item.view.root
            if root not in self._trackers:
                self._trackers[root] = item.tracker or RunTracker(self.store, root)
            self._views.setdefault(root, []).append(item.view)
            self._live.add(root)
            self._dirty.add(root)
            self._last_flush.pop(root, None)  # show the new view at once
        elif isinstance(item, _Call):
            item.fn()
        elif isinstance(item, _Touch) and item.root in self._trackers:
            self._dirty.add(item.root)

    def _route(self, notice: _Notice) -> str | None:
        for uuid in (notice.dag_uuid, notice.run_uuid):
            if uuid is None:
                continue
            if uuid in self._trackers:
                return uuid
            root = self._member_of.get(uuid)
            if root is not None:
                return root
        if notice.run_uuid in self._strangers or not self._trackers:
            return None
        # A hook run of a single-op run has no dag_uuid: find its main run once.
        try:
            record = self.store.get_run(notice.run_uuid)
        except RunNotFoundError:
            return None
        main = record.hook_of or record.dag_uuid
        # A trial of a DAG's sweeping op is under that op, a member of the DAG's run.
        root = main if main in self._trackers else self._member_of.get(main or "")
        if root is not None:
            self._member_of[notice.run_uuid] = root
            return root
        self._strangers.add(notice.run_uuid)
        return None

    def _flush_due(self) -> None:
        now = time.monotonic()
        for root in list(self._dirty | self._live):
            last = self._last_flush.get(root)
            interval = self._interval.get(root, self.min_interval)
            if root not in self._dirty:
                interval = max(interval, TICK)
            if last is not None and now - last < interval:
                continue
            self._dirty.discard(root)
            start = time.monotonic()  # not `now`: the runs refreshed before this one in the loop are not its cost
            self._last_flush[root] = start
            self._flush(root)
            self._interval[root] = max(self.min_interval, (time.monotonic() - start) / UI_SHARE)

    def _flush(self, root: str) -> None:
        tracker = self._trackers[root]
        tracker.refresh()
        for uuid in tracker.member_uuids:
            self._member_of[uuid] = root
        snapshot = self._snapshot(tracker, time.time())
        views = [v for v in self._views.get(root, []) if v.alive]
        self._views[root] = views
        self.flushes += 1
        for view in views:
            try:
                view.show(snapshot)
            except Exception:
                log.exception("polynb UI thread: a view of run %s failed to update", root)
        if snapshot.settled or not views:
            self._live.discard(root)
        else:
            self._live.add(root)
