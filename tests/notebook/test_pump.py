"""The UI thread: coalescing to at most ``max_rate`` refreshes a second per run, routing, no lost events."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from polynb.lifecycle import Status
from polynb.notebook.model import RunSnapshot, RunTracker
from polynb.notebook.pump import UI_SHARE, UiPump, _Attach
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


def test_a_run_whose_refresh_is_costly_is_refreshed_less_often_and_loses_no_event(tmp_path: Path) -> None:
    """A refresh that takes ``c`` seconds is followed by none for ``c / UI_SHARE``: the UI thread's share of the
    interpreter stays bounded whatever the run's size (the engine thread schedules in that interpreter)."""
    store = Store(tmp_path / "db")
    root, ops = dag(store, 4)
    cost = 0.05

    def costly(tracker: RunTracker, now: float) -> RunSnapshot:
        time.sleep(cost)  # as a large DAG's snapshot and HTML would take
        return tracker.snapshot(now)

    pump = UiPump(store, snapshot=costly, max_rate=10.0)
    pump.start()
    view = CountingView(root)
    try:
        pump.attach(view)
        seq = 0
        deadline = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < deadline:  # events all along: the run always has something new to show
            store.set_status(ops[i % len(ops)], Status.WARNING if i % 2 else Status.RUNNING)
            seq = publish(pump, store, seq)
            i += 1
            time.sleep(0.005)
        view.wait_for_seq(store.last_seq())
    finally:
        pump.stop()
        store.close()
    # Shown at the end of each refresh: two shows are at least (the pause after the first) + (the second's cost).
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(view.shown)]
    assert len(gaps) >= 2, view.shown
    assert min(gaps) >= cost / UI_SHARE * 0.99, gaps
    assert view.shown[-1][1].last_seq == seq


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


def retried_dag(store: Store) -> tuple[str, list[str]]:
    """A DAG whose first attempt failed, as the engine writes it (the DAG ``retrying``): its uuid, its ops'."""
    dag_uuid, first = dag(store, 2)
    store.set_status(dag_uuid, Status.COMPILED)
    assert store.claim(dag_uuid, status=Status.RUNNING, expected={Status.COMPILED})
    store.set_status(first[0], Status.RUNNING)
    store.set_status(first[0], Status.SUCCEEDED)
    store.set_status(first[1], Status.RUNNING)
    store.set_status(first[1], Status.FAILED, reason="ExitCode", message="exit code 1")
    store.create_run(NewRun(name="op1-notify", kind="job", dag_uuid=dag_uuid, hook_of=first[1], hook_trigger="failed"))
    store.set_status(dag_uuid, Status.RETRYING)
    return dag_uuid, first


def start_second_attempt(store: Store, dag_uuid: str) -> list[str]:
    """The DAG ``running`` again (its attempt 2) with new runs of the same ops (``meta.dag_attempt``)."""
    assert store.claim(dag_uuid, status=Status.RUNNING, expected={Status.RETRYING})
    second = store.create_runs(
        [NewRun(name=f"op{i}", kind="job", dag_uuid=dag_uuid, meta={"dag_attempt": 2}) for i in range(2)]
    )
    return [r.uuid for r in second]


def test_a_retried_dag_shows_the_ops_of_its_current_attempt_followed_live_or_drawn_late(tmp_path: Path) -> None:
    """Issue 11 item 4: a DAG's ``maxRetries`` runs its ops anew as new runs with the same names; the widget
    shows the current attempt's, and its log keeps the earlier attempt's lines."""
    store = Store(tmp_path / "db")
    try:
        dag_uuid, first = retried_dag(store)
        live = RunTracker(store, dag_uuid)
        live.refresh()
        assert [op.uuid for op in live.snapshot(time.time()).members] == [*first, store.hooks_of(first[1])[0].uuid]
        second = start_second_attempt(store, dag_uuid)
        store.set_status(second[0], Status.RUNNING)
        # The failed attempt's hook still runs after the next attempt started: it stays out of the ops too.
        store.set_status(store.hooks_of(first[1])[0].uuid, Status.RUNNING)
        late = RunTracker(store, dag_uuid)
        for tracker in (live, late):
            tracker.refresh()
            snap = tracker.snapshot(time.time())
            assert [(op.uuid, op.name, op.status) for op in snap.members] == [
                (second[0], "op0", "running"),
                (second[1], "op1", "created"),
            ]
            assert snap.ops[0].status == "running"
            assert [line.status for line in snap.log if line.name == "op1"][:3] == ["created", "running", "failed"]
            assert [line.status for line in snap.log if line.name == "d"][-2:] == ["retrying", "running"]
    finally:
        store.close()


class FakeClock:
    """``time`` as the pump module sees it: only a costly snapshot moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_each_runs_refreshes_are_spaced_by_its_own_cost_not_by_the_runs_refreshed_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's pause after a refresh is that refresh's cost / ``UI_SHARE``: a large DAG shown in one cell does not
    slow the refreshes of a small one shown in another (whichever of the two is refreshed first in a pass)."""
    import polynb.notebook.pump as pump_module

    clock = FakeClock()
    monkeypatch.setattr(pump_module, "time", clock)
    store = Store(tmp_path / "db")
    costs = {}
    for name, cost in (("b", 0.05), ("c", 0.03)):
        costs[store.create_runs([NewRun(name=name, kind="dag", uuid=name * 32)])[0].uuid] = cost

    def snapshot(tracker: RunTracker, now: float) -> RunSnapshot:
        clock.now += costs[tracker.uuid]  # as building a DAG's snapshot and HTML would take
        return tracker.snapshot(now)

    pump = UiPump(store, snapshot=snapshot, max_rate=10.0)  # not started: driven here, one pass at a time
    views = [CountingView(root) for root in costs]
    try:
        for view in views:
            pump._take(_Attach(view, None))
        for _ in range(3):  # both due in every pass
            pump._dirty |= set(costs)
            pump._flush_due()
            clock.now += 0.5
    finally:
        store.close()
    assert {root: pump._interval[root] for root in costs} == {
        root: pytest.approx(cost / UI_SHARE) for root, cost in costs.items()
    }
    assert [len(view.shown) for view in views] == [3, 3]
