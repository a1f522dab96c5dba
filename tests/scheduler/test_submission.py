"""Submissions made off the engine thread: a stop while one is in flight, updates before the handle, the
crash window between the claim and the stored handle. Gates replace slow spawns: no timing assertions."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
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
from polynb.store import Store


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
