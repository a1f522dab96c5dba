"""Schedules in the engine: each tick is a real local run under the schedule run; ``maxRuns``, ``endAt``,
``dependsOnPast``, stop, and a restarted engine that neither misses nor doubles a tick.

Tests that need to say *when* a tick is due drive the engine's wall clock (``Engine(now=...)``): a tick
fires when the test moves the clock, never after a real wait the test assumes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.execkit import wait_until
from support.schedkit import DEADLOCK_GUARD, PY, build, wait_flag

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.store import RunRecord, Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A wall clock the test moves; it counts reads so a test knows the engine looked at it."""

    def __init__(self, at: datetime) -> None:
        self._at = at
        self._lock = threading.Lock()
        self.reads = 0

    def __call__(self) -> datetime:
        with self._lock:
            self.reads += 1
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at


def scheduled(schedule: str, command: list[str]) -> str:
    return (
        "version: 1.1\nkind: operation\nname: tick\n"
        f"schedule: {schedule}\n"
        f"component:\n  name: job\n  run: {{kind: job, container: {{command: {json.dumps(command)}}}}}\n"
    )


def ticks(store: Store, uuid: str) -> list[RunRecord]:
    return [r for r in store.children(uuid) if r.hook_of is None]


class Engines:
    """Engines on one real SQLite store, each with the test's clock (or the real one)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store = Store(tmp / "home" / "polynb.db")
        self.live: list[Engine] = []

    def start(self, clock: Clock | None = None) -> Engine:
        executor = LocalExecutor(base_dir=self.tmp, stop_grace=2.0)
        if clock is None:
            engine = Engine(store=self.store, executors={"local": executor}, registry=ComponentRegistry())
        else:  # the test moves the clock: the engine reads it often
            engine = Engine(store=self.store, executors={"local": executor}, registry=ComponentRegistry(),
                            now=clock, clock_recheck=0.05)  # fmt: skip
        engine.start()
        self.live.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.live:
            engine.shutdown(stop_running=True)
        self.store.close()


@pytest.fixture
def engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engines]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    made = Engines(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_an_interval_schedule_with_max_runs_runs_that_many_real_runs_under_the_schedule(engines: Engines) -> None:
    engine = engines.start()
    uuid = engine.submit(build(scheduled("{kind: interval, frequency: 1, maxRuns: 3}", [PY, "-c", "pass"])))
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    parent = engines.store.get_run(uuid)
    assert parent.kind == "schedule"
    assert parent.meta["schedule"]["fired"] == 3
    assert parent.meta["schedule"]["next_at"] is None
    # Polyaxon's on_schedule before a tick (between ticks: see the restart tests), running while one is live.
    history = [c.status for c in engines.store.status_history(uuid)]
    assert history[history.index(Status.COMPILED) + 1 :][:2] == [Status.ON_SCHEDULE, Status.RUNNING]
    assert history[-2:] == [Status.RUNNING, Status.SUCCEEDED]
    runs = ticks(engines.store, uuid)
    assert [r.name for r in runs] == ["tick-1", "tick-2", "tick-3"]
    assert all(r.status == Status.SUCCEEDED and r.dag_uuid == uuid and r.handle for r in runs)
    assert [r.meta["tick"]["index"] for r in runs] == [1, 2, 3]
    assert all("schedule" not in r.meta["plan"]["operation"] for r in runs)  # each tick runs the op unscheduled
    # Each tick's run is a real local run (a handle, a run folder) that started on its own tick.
    ats = [datetime.fromisoformat(r.meta["tick"]["at"]) for r in runs]
    assert ats == sorted(ats) and len(set(ats)) == 3


def test_end_at_bounds_the_ticks(engines: Engines) -> None:
    clock = Clock(T0)
    engine = engines.start(clock)
    end = (T0 + timedelta(seconds=1.5)).isoformat()
    uuid = engine.submit(build(scheduled(f"{{kind: interval, frequency: 1, endAt: '{end}'}}", [PY, "-c", "pass"])))
    wait_until(lambda: len(ticks(engines.store, uuid)) == 1 and ticks(engines.store, uuid)[0].is_final, "tick 1")
    clock.set(T0 + timedelta(seconds=1))
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"  # T0+2 is after endAt: no third tick
    assert [r.name for r in ticks(engines.store, uuid)] == ["tick-1", "tick-2"]


def test_depends_on_past_holds_a_due_tick_until_the_previous_run_is_final(engines: Engines, tmp_path: Path) -> None:
    clock = Clock(T0)
    engine = engines.start(clock)
    flag = tmp_path / "go"
    uuid = engine.submit(
        build(scheduled("{kind: interval, frequency: 60, maxRuns: 2, dependsOnPast: true}", wait_flag(flag)))
    )
    wait_until(lambda: [r.status for r in ticks(engines.store, uuid)] == [Status.RUNNING], "tick 1 running")
    reads = clock.reads
    clock.set(T0 + timedelta(seconds=600))  # ticks 2..10 are due while tick 1 runs
    wait_until(lambda: clock.reads >= reads + 2, "the engine to look at the due tick")
    assert len(ticks(engines.store, uuid)) == 1
    flag.touch()
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    first, second = ticks(engines.store, uuid)
    done = next(e.seq for e in engines.store.events(run_uuid=first.uuid) if e.kind == "run_status_succeeded")
    created = next(e.seq for e in engines.store.events(run_uuid=second.uuid) if e.kind == "run_status_created")
    assert created > done
    assert second.meta["tick"]["at"] == (T0 + timedelta(seconds=60)).isoformat()  # the missed ticks coalesced


def test_depends_on_past_starts_no_tick_after_a_failed_one(engines: Engines) -> None:
    engine = engines.start()
    uuid = engine.submit(
        build(scheduled("{kind: interval, frequency: 1, maxRuns: 3, dependsOnPast: true}", [PY, "-c", "exit(1)"]))
    )
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
    parent = engines.store.get_run(uuid)
    assert parent.reason == "PastTickFailed"
    assert [r.status for r in ticks(engines.store, uuid)] == [Status.FAILED]


def test_without_depends_on_past_ticks_overlap(engines: Engines, tmp_path: Path) -> None:
    clock = Clock(T0)
    engine = engines.start(clock)
    flag = tmp_path / "go"
    uuid = engine.submit(build(scheduled("{kind: interval, frequency: 60, maxRuns: 2}", wait_flag(flag))))
    wait_until(lambda: [r.status for r in ticks(engines.store, uuid)] == [Status.RUNNING], "tick 1 running")
    clock.set(T0 + timedelta(seconds=60))
    wait_until(lambda: len(ticks(engines.store, uuid)) == 2, "tick 2 while tick 1 runs")
    flag.touch()
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"


def test_stopping_the_schedule_stops_its_live_ticks_and_fires_no_more(engines: Engines, tmp_path: Path) -> None:
    engine = engines.start()
    uuid = engine.submit(build(scheduled("{kind: interval, frequency: 3600}", wait_flag(tmp_path / "never"))))
    wait_until(lambda: [r.status for r in ticks(engines.store, uuid)] == [Status.RUNNING], "tick 1 running")
    engine.stop(uuid)
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "stopped"
    assert [r.status for r in ticks(engines.store, uuid)] == [Status.STOPPED]
    assert engines.store.get_run(uuid).meta["schedule"]["next_at"] is None


def test_a_restarted_engine_fires_a_missed_tick_once_and_never_doubles_one(engines: Engines) -> None:
    clock = Clock(T0)
    first = engines.start(clock)
    uuid = first.submit(build(scheduled("{kind: interval, frequency: 60, maxRuns: 3}", [PY, "-c", "pass"])))
    wait_until(lambda: [r.status for r in ticks(engines.store, uuid)] == [Status.SUCCEEDED], "tick 1")
    first.shutdown(stop_running=False)  # the schedule is handed to the next engine on this store
    engines.live.remove(first)
    assert engines.store.get_run(uuid).meta["schedule"]["fired"] == 1

    later = Clock(T0 + timedelta(seconds=200))  # ticks at T0+60, +120 and +180 came due meanwhile
    second = engines.start(later)
    wait_until(lambda: [r.status for r in ticks(engines.store, uuid)] == [Status.SUCCEEDED] * 2, "tick 2")
    assert len(ticks(engines.store, uuid)) == 2  # one catch-up tick, not three
    later.set(T0 + timedelta(seconds=240))
    assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    runs = ticks(engines.store, uuid)
    assert [r.name for r in runs] == ["tick-1", "tick-2", "tick-3"]
    assert [r.meta["tick"]["at"] for r in runs] == [(T0 + timedelta(seconds=s)).isoformat() for s in (0, 60, 240)]


def test_polynb_stop_of_a_schedule_no_engine_runs_stops_its_ticks_runs_and_it(engines: Engines, tmp_path: Path) -> None:
    from polynb.scheduler import control

    engine = engines.start()
    uuid = engine.submit(build(scheduled("{kind: interval, frequency: 3600}", wait_flag(tmp_path / "never"))))
    wait_until(lambda: [r.status for r in ticks(engines.store, uuid)] == [Status.RUNNING], "tick 1 running")
    engine.shutdown(stop_running=False)  # releases the schedule: no engine runs it now
    engines.live.remove(engine)
    how = control.stop(
        engines.store, engines.store.get_run(uuid), executors=lambda: {"local": LocalExecutor(base_dir=tmp_path)}
    )
    assert how == "direct"
    assert engines.store.get_run(uuid).status == Status.STOPPED
    assert [r.status for r in ticks(engines.store, uuid)] == [Status.STOPPED]


def test_each_tick_runs_the_op_with_its_params(engines: Engines) -> None:
    engine = engines.start()
    command = json.dumps([PY, "-c", "import sys; sys.exit(int(sys.argv[1]) - 3)", "{{ n }}"])
    text = (
        "version: 1.1\nkind: operation\nname: tick\nschedule: {kind: interval, frequency: 1, maxRuns: 1}\n"
        "params: {n: {value: 3}}\ncomponent:\n  name: job\n  inputs: [{name: n, type: int}]\n"
        f"  run: {{kind: job, container: {{command: {command}}}}}\n"
    )
    uuid = engine.submit(build(text))
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    (run,) = ticks(engines.store, uuid)
    assert run.inputs == {"n": 3} and run.status == Status.SUCCEEDED


# -- a schedule on an op of a DAG ---------------------------------------------------------------------------

WRITE_TICK = (
    "import json, os, sys; json.dump({'n': int(sys.argv[1]), 'at': sys.argv[2]}, "
    "open(os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'), 'w'))"
)


def scheduled_in_dag(schedule: str, command: list[str], extra: str = "") -> str:
    """A DAG: ``prep`` gives ``n`` = 5, ``tick`` (scheduled) reads it, ``after`` depends on ``tick``."""
    prep = json.dumps([PY, "-c", WRITE_TICK.replace("int(sys.argv[1])", "5").replace("sys.argv[2]", "''")])
    return (
        f"version: 1.1\nkind: component\nname: nightly\n{extra}run:\n  kind: dag\n  operations:\n"
        f"  - name: prep\n    component: {{name: prep, outputs: [{{name: n, type: int}}],"
        f" run: {{kind: job, container: {{command: {prep}}}}}}}\n"
        f"  - name: tick\n    schedule: {schedule}\n    params: {{n: {{ref: ops.prep, value: outputs.n}}}}\n"
        f"    component:\n      name: t\n      inputs: [{{name: n, type: int}}]\n"
        f"      outputs: [{{name: at, type: str, isOptional: true}}]\n"
        f"      run: {{kind: job, container: {{command: {json.dumps(command)}}}}}\n"
        f"  - name: after\n    dependencies: [tick]\n"
        f"    component: {{name: after, run: {{kind: job, container: {{command: [{json.dumps(PY)}, -c, pass]}}}}}}\n"
    )


def op_named(store: Store, dag_uuid: str, name: str) -> RunRecord:
    return next(r for r in store.children(dag_uuid) if r.name == name)


def test_a_schedule_on_an_op_of_a_dag_ticks_under_the_op_and_the_dag_waits_for_it(engines: Engines) -> None:
    engine = engines.start()
    command = [PY, "-c", WRITE_TICK, "{{ n }}", "{{ globals.schedule_at }}"]
    uuid = engine.submit(build(scheduled_in_dag("{kind: interval, frequency: 1, maxRuns: 2}", command)))
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    store = engines.store
    op = op_named(store, uuid, "tick")
    assert (op.kind, op.status, op.reason) == ("schedule", Status.SUCCEEDED, "ScheduleDone")
    runs = ticks(store, op.uuid)
    assert [r.name for r in runs] == ["tick-1", "tick-2"]
    # Each tick is compiled as the op: its upstream's output, and its own nominal time as globals.schedule_at.
    assert [r.outputs["n"] for r in runs] == [5, 5]
    assert [r.outputs["at"] for r in runs] == [r.meta["tick"]["at"] for r in runs]
    assert all(datetime.fromisoformat(r.outputs["at"]).utcoffset() == timedelta(0) for r in runs)
    # Waiting for a tick the schedule's run is on_schedule, running while a tick's run is live.
    history = [c.status for c in store.status_history(op.uuid)]
    assert history[history.index(Status.COMPILED) + 1 :][:2] == [Status.ON_SCHEDULE, Status.RUNNING]
    assert history[-2:] == [Status.RUNNING, Status.SUCCEEDED]
    # Downstream starts once the schedule is final, and sees its status.
    after = op_named(store, uuid, "after")
    done = next(e.seq for e in store.events(run_uuid=op.uuid) if e.kind == "run_status_succeeded")
    assert after.status == Status.SUCCEEDED
    assert next(e.seq for e in store.events(run_uuid=after.uuid) if e.kind == "run_status_compiled") > done


def test_a_failed_tick_fails_the_scheduled_op_and_its_downstream_is_upstream_failed(engines: Engines) -> None:
    engine = engines.start()
    uuid = engine.submit(build(scheduled_in_dag("{kind: interval, frequency: 1, maxRuns: 1}", [PY, "-c", "exit(3)"])))
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
    op = op_named(engines.store, uuid, "tick")
    assert (op.status, op.reason) == (Status.FAILED, "TicksFailed")
    assert op_named(engines.store, uuid, "after").status == Status.UPSTREAM_FAILED


def test_stopping_the_dag_stops_its_schedule_and_the_ticks_runs(engines: Engines, tmp_path: Path) -> None:
    engine = engines.start()
    uuid = engine.submit(build(scheduled_in_dag("{kind: interval, frequency: 3600}", wait_flag(tmp_path / "never"))))
    wait_until(lambda: any(r.name == "tick" and r.status == Status.RUNNING for r in engines.store.children(uuid)),
               "the schedule's first tick running")  # fmt: skip
    op = op_named(engines.store, uuid, "tick")
    wait_until(lambda: [r.status for r in ticks(engines.store, op.uuid)] == [Status.RUNNING], "tick 1 running")
    engine.stop(uuid)
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "stopped"
    assert op_named(engines.store, uuid, "tick").status == Status.STOPPED
    assert [r.status for r in ticks(engines.store, op.uuid)] == [Status.STOPPED]
    assert op_named(engines.store, uuid, "after").status == Status.STOPPED
    assert engines.store.get_run(op.uuid).meta["schedule"]["next_at"] is None


def test_the_dags_timeout_stops_a_schedule_waiting_for_its_next_tick(engines: Engines) -> None:
    engine = engines.start()
    hourly = "{kind: interval, frequency: 3600}"
    text = scheduled_in_dag(hourly, [PY, "-c", "pass"], extra="termination: {timeout: 1}\n")
    uuid = engine.submit(build(text))
    assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
    assert engines.store.get_run(uuid).reason == "Timeout"
    op = op_named(engines.store, uuid, "tick")
    assert op.status == Status.STOPPED
    assert [r.status for r in ticks(engines.store, op.uuid)] == [Status.SUCCEEDED]


def test_a_restarted_engine_goes_on_with_a_dags_schedule_without_doubling_a_tick(engines: Engines) -> None:
    clock = Clock(T0)
    first = engines.start(clock)
    uuid = first.submit(build(scheduled_in_dag("{kind: interval, frequency: 60, maxRuns: 2}", [PY, "-c", "pass"])))
    wait_until(lambda: any(r.name == "tick" for r in engines.store.children(uuid)), "the scheduled op")
    op_uuid = op_named(engines.store, uuid, "tick").uuid
    wait_until(lambda: [r.status for r in ticks(engines.store, op_uuid)] == [Status.SUCCEEDED], "tick 1")
    wait_until(lambda: engines.store.get_run(op_uuid).status == Status.ON_SCHEDULE, "on_schedule between ticks")
    first.shutdown(stop_running=False)
    engines.live.remove(first)

    later = Clock(T0 + timedelta(seconds=200))  # tick 2 (T0+60) came due meanwhile, and T0+120, T0+180
    second = engines.start(later)
    assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    runs = ticks(engines.store, op_uuid)
    assert [r.name for r in runs] == ["tick-1", "tick-2"]
    assert [r.meta["tick"]["at"] for r in runs] == [T0.isoformat(), (T0 + timedelta(seconds=60)).isoformat()]
    assert op_named(engines.store, uuid, "after").status == Status.SUCCEEDED


def test_polynb_stop_of_a_dag_no_engine_runs_stops_its_schedules_ticks(engines: Engines, tmp_path: Path) -> None:
    from polynb.scheduler import control

    engine = engines.start()
    uuid = engine.submit(build(scheduled_in_dag("{kind: interval, frequency: 3600}", wait_flag(tmp_path / "never"))))
    wait_until(lambda: any(r.name == "tick" for r in engines.store.children(uuid)), "the scheduled op")
    op_uuid = op_named(engines.store, uuid, "tick").uuid
    wait_until(lambda: [r.status for r in ticks(engines.store, op_uuid)] == [Status.RUNNING], "tick 1 running")
    engine.shutdown(stop_running=False)
    engines.live.remove(engine)
    how = control.stop(
        engines.store, engines.store.get_run(uuid), executors=lambda: {"local": LocalExecutor(base_dir=tmp_path)}
    )
    assert how == "direct"
    assert engines.store.get_run(uuid).status == Status.STOPPED
    assert engines.store.get_run(op_uuid).status == Status.STOPPED
    assert [r.status for r in ticks(engines.store, op_uuid)] == [Status.STOPPED]
