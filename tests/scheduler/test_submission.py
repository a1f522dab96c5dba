"""Submissions made off the engine thread: a stop while one is in flight, updates before the handle, the
crash window between the claim and the stored handle. Gates replace slow spawns: no timing assertions."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.recorder import Recorder
from support.schedkit import DEADLOCK_GUARD, build, dag, job, wait_flag

from polynb.compiler.types import CompiledOp
from polynb.executors.base import ExecutorUpdate, UpdateCallback
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.scheduler.ownership import OWNER_KEY
from polynb.store import Move, Step, Store


class GatedExecutor(LocalExecutor):
    """The local executor whose ``submit`` runs ``before`` and ``after`` hooks around the real one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entered = threading.Event()
        self.delivered: list[ExecutorUpdate] = []
        self.cond = threading.Condition()
        self.before: Callable[[CompiledOp], object] = lambda op: None
        self.after: Callable[[CompiledOp], object] = lambda op: None

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        self.entered.set()
        self.before(op)

        def record(update: ExecutorUpdate) -> None:
            on_update(update)
            with self.cond:
                self.delivered.append(update)
                self.cond.notify_all()

        handle = super().submit(op, record)
        self.after(op)
        return handle

    def wait_delivered(self, uuid: str, status: str) -> None:
        """Block until the engine was handed ``status`` for ``uuid`` (deadlock guard only)."""
        with self.cond:
            found = self.cond.wait_for(
                lambda: any(u.run_uuid == uuid and u.status == status for u in self.delivered), DEADLOCK_GUARD
            )
        assert found, "deadlock guard"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    yield store
    store.close()


def engine_with(store: Store, executor: LocalExecutor) -> tuple[Engine, Recorder[EngineEvent]]:
    engine = Engine(store=store, executors={"local": executor}, retry_delay=0.05)
    recorder = Recorder[EngineEvent]()
    engine.subscribe(recorder)
    engine.start()
    return engine, recorder


def single(argv: list[str]) -> str:
    return f"version: 1.1\nkind: component\nname: one\nrun: {{kind: job, container: {{command: {argv!r}}}}}\n"


def test_a_stop_while_the_submission_is_in_flight_stops_the_run_once_the_executor_has_it(
    store: Store, tmp_path: Path
) -> None:
    gate = threading.Event()
    executor = GatedExecutor(base_dir=tmp_path, stop_grace=2.0)
    executor.before = lambda op: gate.wait(DEADLOCK_GUARD)
    engine, _ = engine_with(store, executor)
    try:
        uuid = engine.submit(build(single(wait_flag(tmp_path / "never"))))
        assert executor.entered.wait(DEADLOCK_GUARD)
        assert store.get_run(uuid).status == Status.QUEUED
        engine.stop(uuid)  # the engine thread is free while the spawn is in flight
        assert store.get_run(uuid).status == Status.STOPPING
        gate.set()
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "stopped"
        record = store.get_run(uuid)
        assert record.handle is not None  # the executor did start it, and the stop reached it
    finally:
        gate.set()
        engine.shutdown()


def test_updates_that_arrive_before_the_handle_are_applied_after_it_in_order(store: Store, tmp_path: Path) -> None:
    executor = GatedExecutor(base_dir=tmp_path)
    engine, _ = engine_with(store, executor)
    # Return the handle only once the executor has handed the engine the run's final status.
    executor.after = lambda op: executor.wait_delivered(op.uuid, "succeeded")
    try:
        uuid = engine.submit(build(dag(job("a", ["true"]), job("b", ["true"], extra="dependencies: [a]\n"))))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
        children = store.children(uuid)
        assert all(r.status == Status.SUCCEEDED and r.handle is not None for r in children)
        for record in children:
            kinds = [e.kind for e in store.events(run_uuid=record.uuid)]
            assert (
                kinds.index("run_status_queued")
                < kinds.index("run_status_running")
                < kinds.index("run_status_succeeded")
            )
    finally:
        engine.shutdown()


class AdvanceCountingStore(Store):
    """The store, counting the writes of several statuses at once (``Store.advance``)."""

    advanced = 0

    def advance(self, uuid: str, steps: Sequence[Step], *, known: Status) -> tuple[Move, ...] | None:
        moves = super().advance(uuid, steps, known=known)
        self.advanced += moves is not None
        return moves


def test_statuses_reported_together_are_written_at_once_each_with_its_row_and_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = AdvanceCountingStore(tmp_path / "home" / "polynb.db")
    executor = GatedExecutor(base_dir=tmp_path)
    engine, recorder = engine_with(store, executor)
    # The handle comes back once the run ended: `starting`, `running` and `succeeded` reach the engine first
    # and are applied after it, together; `b` waits for a's `running` event.
    executor.after = lambda op: executor.wait_delivered(op.uuid, "succeeded")
    b = job("b", ["true"], extra="events: [{ref: ops.a, kinds: [run_status_running]}]\n")
    try:
        uuid = engine.submit(build(dag(job("a", ["true"]), b)))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()
        store.close()
    reader = Store(tmp_path / "home" / "polynb.db")
    try:
        assert store.advanced >= 2  # each op's `starting` and `running` in one write
        expected = ["created", "compiled", "queued", "starting", "running", "succeeded"]
        for record in reader.children(uuid):
            history = reader.status_history(record.uuid)
            events = [e for e in reader.events(run_uuid=record.uuid) if e.kind != "run_status_done"]
            assert [c.status.value for c in history] == expected
            assert [(c.seq, f"run_status_{c.status.value}") for c in history] == [(e.seq, e.kind) for e in events]
            assert [c.previous for c in history][1:] == [c.status for c in history][:-1]
            starting = history[3]
            assert (record.started_at, record.handle is not None) == (starting.at, True)
            assert record.wait_time == pytest.approx((starting.at - record.created_at).total_seconds(), abs=1e-5)
        # Listeners got every status event once, in seq order.
        seqs = [e.seq for e in recorder.events if e.run_uuid in {r.uuid for r in reader.children(uuid)}]
        assert seqs == sorted(set(seqs))
    finally:
        reader.close()


def test_a_failed_attempt_reported_before_its_handle_is_retried_with_the_new_handle(
    store: Store, tmp_path: Path
) -> None:
    executor = GatedExecutor(base_dir=tmp_path)
    engine, _ = engine_with(store, executor)
    seen: list[str] = []

    def after(op: CompiledOp) -> None:
        seen.append(op.uuid)
        if len(seen) == 1:  # the first attempt: hold its handle until its failure reached the engine
            executor.wait_delivered(op.uuid, "failed")

    executor.after = after
    text = single(["false"]).replace("run:", "termination: {maxRetries: 1}\nrun:")
    try:
        uuid = engine.submit(build(text))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
        record = store.get_run(uuid)
        assert record.attempt == 2
        assert len(seen) == 2
        assert record.handle is not None and record.handle["status_offset"] > 0  # the second attempt's
    finally:
        engine.shutdown()


def test_a_crash_between_the_claim_and_the_stored_handle_never_submits_twice(store: Store, tmp_path: Path) -> None:
    gate = threading.Event()
    executor = GatedExecutor(base_dir=tmp_path)

    def refuse(op: CompiledOp) -> None:
        gate.wait(DEADLOCK_GUARD)
        raise RuntimeError("the engine died before spawning")  # never started

    executor.before = refuse
    engine, _ = engine_with(store, executor)
    log = tmp_path / "ran"
    try:
        uuid = engine.submit(build(single(["sh", "-c", f"echo x >> {log}"])))
        assert executor.entered.wait(DEADLOCK_GUARD)
        record = store.get_run(uuid)
        assert record.status == Status.QUEUED and record.handle is None  # claimed, no handle yet
        # As if this engine had died now: its owner record names a process that is gone.
        store.set_meta(uuid, {OWNER_KEY: {"host": socket.gethostname(), "pid": -1, "token": "gone"}})
        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        second.start()
        try:
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
            assert store.get_run(uuid).reason == "SubmissionInterrupted"
        finally:
            second.shutdown(stop_running=False)
    finally:
        gate.set()
        engine.shutdown()
    assert not log.exists()
    assert store.get_run(uuid).reason == "SubmissionInterrupted"
