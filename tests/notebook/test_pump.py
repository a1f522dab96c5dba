"""The UI thread: coalescing to at most ``max_rate`` refreshes a second per run, routing, no lost events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from polynb.lifecycle import Status
from polynb.notebook.model import RunSnapshot, RunTracker
from polynb.notebook.pump import UiPump
from polynb.scheduler.events import EngineEvent
from polynb.store import NewRun, Store

GUARD = 60.0


class CountingView:
    def __init__(self, root: str) -> None:
        self._root = root
        self.shown: list[tuple[float, RunSnapshot]] = []
        self.threads: set[str] = set()
        self.changed = threading.Condition()

    @property
    def root(self) -> str:
        return self._root

    @property
    def alive(self) -> bool:
        return True

    def show(self, snapshot: RunSnapshot) -> None:
        with self.changed:
            self.threads.add(threading.current_thread().name)
            self.shown.append((time.monotonic(), snapshot))
            self.changed.notify_all()

    def wait_for_seq(self, seq: int) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: bool(self.shown) and self.shown[-1][1].last_seq >= seq, GUARD)
        assert ok, "deadlock guard"


def dag(store: Store, n_ops: int) -> tuple[str, list[str]]:
    records = store.create_runs(
        [NewRun(name="d", kind="dag", uuid="d" * 32)]
        + [NewRun(name=f"op{i}", kind="job", uuid=f"{i:032x}", dag_uuid="d" * 32) for i in range(n_ops)]
    )
    return records[0].uuid, [r.uuid for r in records[1:]]


def publish(pump: UiPump, store: Store, after: int) -> int:
    for record in store.events(after_seq=after):
        pump.notify(EngineEvent.from_record(record))
    return store.last_seq()


def snapshot_of(tracker: RunTracker, now: float) -> RunSnapshot:
    return tracker.snapshot(now)


def test_a_burst_of_events_gives_at_most_max_rate_refreshes_a_second_and_loses_none(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    root, ops = dag(store, 20)
    pump = UiPump(store, snapshot=snapshot_of, max_rate=10.0)
    pump.start()
    view = CountingView(root)
    try:
        pump.attach(view)
        seq = 0
        store.set_status(root, Status.RUNNING)
        for uuid in ops:
            store.set_status(uuid, Status.RUNNING)
        started = time.monotonic()
        for i in range(1500):  # running <-> warning toggles: an event each, as fast as the store takes them
            uuid = ops[i % len(ops)]
            store.set_status(uuid, Status.WARNING if (i // len(ops)) % 2 == 0 else Status.RUNNING)
            seq = publish(pump, store, seq)
        window = time.monotonic() - started
        view.wait_for_seq(store.last_seq())
        window_all = time.monotonic() - started
    finally:
        pump.stop()
        store.close()
    refreshes = [t for t, _ in view.shown if t >= started]
    # The cap as a count over the measured window (+1: a refresh may fall on each edge of the window).
    assert len(refreshes) <= window_all * 10.0 + 2, (len(refreshes), window, window_all)
    assert view.shown[-1][1].last_seq == seq  # every event reached the view in the end
    assert view.threads == {"polynb-ui"}  # one writer thread


def test_hook_runs_of_a_single_run_are_routed_to_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    (main,) = store.create_runs([NewRun(name="main", kind="job", uuid="a" * 32)])
    pump = UiPump(store, snapshot=snapshot_of)
    pump.start()
    view = CountingView(main.uuid)
    try:
        pump.attach(view)
        store.set_status(main.uuid, Status.RUNNING)
        store.set_status(main.uuid, Status.FAILED)
        store.create_runs([NewRun(name="main-webhook", kind="job", uuid="b" * 32, hook_of=main.uuid)])
        store.set_status("b" * 32, Status.RUNNING)
        publish(pump, store, 0)
        view.wait_for_seq(store.last_seq())
    finally:
        pump.stop()
        store.close()
    final = view.shown[-1][1]
    assert [op.name for op in final.ops] == ["main", "main-webhook"]
    assert final.ops[1].role == "hook" and final.ops[1].status == "running"


def test_a_view_attached_late_is_drawn_from_the_whole_log(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    root, ops = dag(store, 2)
    for uuid in ops:
        store.set_status(uuid, Status.RUNNING)
        store.set_status(uuid, Status.SUCCEEDED)
    store.set_status(root, Status.RUNNING)
    store.set_status(root, Status.SUCCEEDED)
    pump = UiPump(store, snapshot=snapshot_of)
    pump.start()
    view = CountingView(root)
    try:
        pump.attach(view)  # no notification at all: attaching draws from the store
        view.wait_for_seq(store.last_seq())
    finally:
        pump.stop()
        store.close()
    snap = view.shown[-1][1]
    assert snap.status == "succeeded" and snap.settled
    assert [s.status for s in snap.ops[1].segments] == ["created", "running", "succeeded"]
