"""The engine writes a turn of its loop in one transaction, and nothing acts on a status before its commit:
no submission before its claim is committed, no event to a listener before it is in the store, and an
engine killed mid-turn leaves a store that explains everything that happened (the next engine finishes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from support.recorder import Recorder
from support.schedkit import DEADLOCK_GUARD, build, dag, describe, job

from polynb.compiler.types import CompiledOp, OpKind, Placement
from polynb.executors.base import UpdateCallback
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler import evaluation
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.store import Store

TESTS = Path(__file__).resolve().parents[1]


def appending(name: str, log: Path) -> list[str]:
    return ["sh", "-c", f'echo {name} >> "{log}"']


def fan(log: Path, width: int) -> str:
    """``root``, then ``width`` ops that depend on it: one event of root starts them all in one turn."""
    ops = [job("root", appending("root", log))]
    ops += [job(f"m{i}", appending(f"m{i}", log), extra="dependencies: [root]\n") for i in range(width)]
    return dag(*ops)


class ClaimCheckingExecutor(LocalExecutor):
    """The local executor noting, at each ``submit``, what another connection reads of the run's claim."""

    def __init__(self, db: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reader = Store(db)
        self.claims: dict[str, tuple[Status, int]] = {}

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        record = self.reader.get_run(op.uuid)
        self.claims[op.uuid] = (record.status, record.attempt)
        return super().submit(op, on_update)


def test_runs_are_submitted_and_events_published_only_once_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(home))
    log = tmp_path / "ran.txt"
    store = Store(home / "polynb.db")
    reader = Store(home / "polynb.db")  # its own connection: it sees committed writes only
    executor = ClaimCheckingExecutor(home / "polynb.db", base_dir=tmp_path)
    engine = Engine(store=store, executors={"local": executor})
    unseen: list[EngineEvent] = []
    recorder = Recorder[EngineEvent]()

    def check(event: EngineEvent) -> None:
        if [(e.seq, e.kind) for e in reader.events(run_uuid=event.run_uuid, after_seq=event.seq - 1, limit=1)] != [
            (event.seq, event.kind)
        ]:
            unseen.append(event)
        recorder(event)

    engine.subscribe(check)
    engine.start()
    try:
        uuid = engine.submit(build(fan(log, 8)))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        ops = {r.name: r for r in store.children(uuid)}
        assert unseen == []
        assert len(recorder.events) == len(store.events(dag_uuid=uuid))
        # Every submission found the run's claim (queued, attempt 1) committed.
        assert executor.claims == {r.uuid: (Status.QUEUED, 1) for r in ops.values()}
    finally:
        engine.shutdown()
        executor.reader.close()
        reader.close()
        store.close()


class FirstSubmitGated(ClaimCheckingExecutor):
    """Compiling the fourth op (root, m0, m1, then m2) waits until an op of the fan was handed to ``submit``."""

    def __init__(self, db: Path, **kwargs: Any) -> None:
        super().__init__(db, **kwargs)
        self.submitted = threading.Event()
        self.placed = 0
        self.waited: bool | None = None

    def place(self, run_uuid: str, kind: OpKind, port_count: int) -> Placement:
        self.placed += 1
        if self.placed == 4:
            self.waited = self.submitted.wait(DEADLOCK_GUARD)
        return super().place(run_uuid, kind, port_count)

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        handle = super().submit(op, on_update)
        if op.name != "root":
            self.submitted.set()
        return handle


def test_ops_a_message_starts_are_submitted_while_it_starts_the_others_once_their_claims_are_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(home))
    monkeypatch.setattr(evaluation, "ACTING_SECONDS", 0.0)  # commit and submit after every op started
    log = tmp_path / "ran.txt"
    store = Store(home / "polynb.db")
    executor = FirstSubmitGated(home / "polynb.db", base_dir=tmp_path)
    engine = Engine(store=store, executors={"local": executor})
    engine.start()
    try:
        uuid = engine.submit(build(fan(log, 6)))
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        # root's `succeeded` starts the six in one turn: the first went to the executor before m2 compiled...
        assert executor.waited is True
        # ...and every submission found its claim committed, as when the turn ends first.
        assert executor.claims == {r.uuid: (Status.QUEUED, 1) for r in store.children(uuid)}
        assert sorted(log.read_text().split()) == sorted(["root", *(f"m{i}" for i in range(6))])
    finally:
        engine.shutdown()
        executor.reader.close()
        store.close()


# The engine is SIGKILLed in the middle of a turn: root's `succeeded` is written and the DAG evaluation is
# compiling the ops it starts (the third `place` call: root, then two of them), nothing of it committed.
KILLED_MID_TURN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from support.schedkit import build
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler import evaluation
from polynb.scheduler.engine import Engine
from polynb.store import Store

place = LocalExecutor.place
placed = []

def place_then_die(self, *args):
    placed.append(args)
    if len(placed) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return place(self, *args)

LocalExecutor.place = place_then_die
seen = open({seen!r}, "a", buffering=1)  # a line is one write(2): what the listener got survives the kill
engine = Engine(store=Store({db!r}), executors={{"local": LocalExecutor(base_dir={tmp!r})}})
engine.subscribe(lambda e: seen.write(f"{{e.seq}} {{e.run_uuid}} {{e.kind}}\\n"))
engine.start()
engine.submit(build(open({spec!r}).read()))
signal.pause()
"""


@pytest.mark.slow
def test_an_engine_killed_mid_turn_leaves_nothing_that_was_acted_on_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(home))
    log, seen = tmp_path / "ran.txt", tmp_path / "seen.txt"
    (tmp_path / "dag.yaml").write_text(fan(log, 4))
    script = tmp_path / "child.py"
    db = home / "polynb.db"
    script.write_text(
        textwrap.dedent(KILLED_MID_TURN).format(
            tests=str(TESTS), seen=str(seen), db=str(db), tmp=str(tmp_path), spec=str(tmp_path / "dag.yaml")
        )
    )
    env = {**os.environ, "POLYNB_HOME": str(home), "PYTHONPATH": str(TESTS.parent)}
    child = subprocess.run([sys.executable, str(script)], env=env, timeout=DEADLOCK_GUARD, check=False)
    assert child.returncode == -signal.SIGKILL

    store = Store(db)
    try:
        (dag_record,) = store.list_runs(top_level_only=True)
        ops = {r.name: r for r in store.children(dag_record.uuid)}
        # Everything the listener was given is in the store, as it was given.
        stored = {(e.seq, e.run_uuid, e.kind) for e in store.events(dag_uuid=dag_record.uuid)}
        published = {(int(seq), run, kind) for seq, run, kind in map(str.split, seen.read_text().splitlines())}
        assert published <= stored
        # The turn the kill interrupted is gone whole: root's final status with the compiles it started.
        assert not ops["root"].is_final
        assert (ops["root"].uuid, "run_status_succeeded") not in {(run, kind) for _, run, kind in published}
        assert {ops[f"m{i}"].status for i in range(4)} == {Status.CREATED}
        assert log.read_text().split() == ["root"]

        engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        engine.start()
        try:
            assert engine.wait(dag_record.uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, dag_record.uuid)
        finally:
            engine.shutdown()
        assert sorted(log.read_text().split()) == sorted(ops)  # each op ran once across both engines
        assert all(r.attempt == 1 for r in store.children(dag_record.uuid))
    finally:
        store.close()
