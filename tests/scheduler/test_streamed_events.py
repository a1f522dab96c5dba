"""Events an executor brings back itself (``set_event_sink``: kubernetes, from its pods' logs): the op awaited is
labelled, each event is recorded once whatever the executor repeats, and nothing is recorded after the run ends.

The executor here is the local one with a sink; the test plays the pod's log stream."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.recorder import Recorder
from support.schedkit import DEADLOCK_GUARD, build, dag, job, wait_flag

from polynb.compiler.registry import ComponentRegistry
from polynb.compiler.types import CompiledOp
from polynb.executors.base import EVENTS_AWAITED_LABEL, EventSink, UpdateCallback
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.store import Store


class StreamingExecutor(LocalExecutor):
    def __init__(self, base_dir: Path) -> None:
        super().__init__(base_dir=base_dir, stop_grace=2.0)
        self.sink: EventSink | None = None
        self.labels: dict[str, Mapping[str, str]] = {}

    def set_event_sink(self, sink: EventSink) -> None:
        self.sink = sink

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        self.labels[op.name] = dict(op.labels)
        return super().submit(op, on_update)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, StreamingExecutor, Store]]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    executor = StreamingExecutor(tmp_path)
    engine = Engine(store=store, executors={"local": executor}, registry=ComponentRegistry())
    engine.start()
    try:
        yield engine, executor, store
    finally:
        engine.shutdown(stop_running=True)
        store.close()


def event(seq: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "at": 1_800_000_000.0 + seq, "payload": payload, "seq": seq}


def test_streamed_events_start_the_awaiting_op_each_once_and_none_after_the_end(
    engine: tuple[Engine, StreamingExecutor, Store], tmp_path: Path
) -> None:
    eng, executor, store = engine
    recorder = Recorder[EngineEvent]()
    eng.subscribe(recorder)
    flag = tmp_path / "let-train-finish"
    evaluate_op = (
        "name: evaluate\nevents: [{ref: ops.train, kinds: [run_new_artifacts]}]\n"
        "params: {ckpt: {ref: ops.train, value: artifacts.latest}}\n"
        "component: {name: evaluate, inputs: [{name: ckpt, type: str}], run: {kind: job, container: "
        "{command: [sh, -c, 'echo {{ ckpt }}']}}}"
    )
    uuid = eng.submit(build(dag(job("train", wait_flag(flag)), evaluate_op)))
    train = {r.name: r for r in store.children(uuid)}["train"].uuid
    recorder.wait_for(lambda evs: any(e.run_uuid == train and e.kind == "run_status_running" for e in evs))
    assert executor.labels["train"].get(EVENTS_AWAITED_LABEL) == "true"  # what makes a pod write its events
    assert executor.sink is not None
    ckpt = "/plx-context/artifacts/x/outputs/ckpt-1.pt"
    # A stream reopened after a drop repeats what it delivered: the engine records each seq once.
    artifact = event(1, "run_new_artifacts", {"path": ckpt, "kind": "file", "name": "ckpt-1.pt"})
    executor.sink(train, [artifact])
    executor.sink(train, [artifact])
    executor.sink(train, [event(2, "alert_info", {"message": "half way"}), {"kind": 3}])  # a malformed one is skipped
    recorder.wait_for(lambda evs: any(e.name == "evaluate" and e.kind == "run_status_succeeded" for e in evs))
    assert store.get_run(train).status == Status.RUNNING  # evaluated while train still runs
    flag.touch()
    assert eng.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    executor.sink(train, [event(3, "alert_info", {"message": "too late"})])  # after the run's end: dropped
    assert eng.emit("project_custom_event", {"name": "barrier"}) == []  # queued behind it: the late one was handled
    kinds = [(e.kind, e.payload.get("message") or e.payload.get("name")) for e in store.events(run_uuid=train)]
    assert [k for k in kinds if not k[0].startswith("run_status_")] == [
        ("run_new_artifacts", "ckpt-1.pt"),
        ("alert_info", "half way"),
    ]


def test_events_of_several_streams_arriving_out_of_order_are_each_recorded_once(
    engine: tuple[Engine, StreamingExecutor, Store], tmp_path: Path
) -> None:
    """A pod's containers (init entries, sidecars, main) are followed each on its own stream, so a later ``seq``
    may come before an earlier one: none is dropped, none recorded twice."""
    eng, executor, store = engine
    recorder = Recorder[EngineEvent]()
    eng.subscribe(recorder)
    flag = tmp_path / "let-train-finish"
    waiting = "name: watcher\nevents: [{ref: ops.train, kinds: [alert_critical]}]\ncomponent: {run: {kind: job, " \
              "container: {command: [\"true\"]}}}"  # fmt: skip
    uuid = eng.submit(build(dag(job("train", wait_flag(flag)), waiting)))
    train = {r.name: r for r in store.children(uuid)}["train"].uuid
    recorder.wait_for(lambda evs: any(e.run_uuid == train and e.kind == "run_status_running" for e in evs))
    assert executor.sink is not None
    main, sidecar = event(1, "alert_info", {"message": "main"}), event(3, "alert_info", {"message": "sidecar"})
    executor.sink(train, [sidecar])  # the sidecar's stream is ahead
    executor.sink(train, [main, event(2, "alert_info", {"message": "init"})])
    executor.sink(train, [sidecar, main])  # streams reopened after a drop repeat themselves
    executor.sink(train, [event(5, "alert_critical", {"message": "later"})])
    recorder.wait_for(lambda evs: any(e.name == "watcher" and e.kind == "run_status_succeeded" for e in evs))
    assert store.get_run(train).meta["events_seq"] == 3 and store.get_run(train).meta["events_seen"] == [5]
    flag.touch()
    assert eng.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    messages = [e.payload["message"] for e in store.events(run_uuid=train) if e.kind.startswith("alert_")]
    assert sorted(messages) == ["init", "later", "main", "sidecar"]
