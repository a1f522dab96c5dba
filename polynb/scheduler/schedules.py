"""Schedules: a ``schedule`` run (Polyaxon's pipeline kind ``schedule``) whose ticks are runs under it.

A scheduled operation runs as a schedule run, created ``compiled`` then ``on_schedule``; each tick
(``schedule_ticks``) creates one child run of the op without its schedule, with ``dag_uuid`` = the schedule
(``polynb ls`` lists it under it), named ``<op>-<n>``, whose ``globals.schedule_at`` is the tick's nominal time.
The schedule run is ``running`` while a tick's run is not final, ``on_schedule`` between ticks (Polyaxon's
status of a run waiting for its schedule). The engine's timers wake it at the next tick: no thread per schedule,
and the wall clock is the engine's (``Engine(now=...)``), so tests inject one.

An op of a DAG with a ``schedule`` is one too (:meth:`Schedules.start_in_dag`): its own run is the schedule
(kind ``schedule``), it holds no slot of its DAG, its ticks are compiled as the op would be (the DAG's inputs,
its upstream ops), and its DAG reads its final status as any op's. Stopping the DAG stops it.

* ``maxRuns``: after that many ticks none fires; ``endAt``: no tick later than it fires. Once no tick will
  fire and every child is final, the schedule ends: ``failed`` if a child failed, else ``stopped`` if every
  child was stopped, else ``succeeded`` (Polyaxon's ``runs_check_pipeline``, as for a sweep). Without either,
  it ticks until stopped.
* ``dependsOnPast: true``: a due tick waits while the previous tick's run is not final (it fires as soon
  as that run ends, and the tick after it is the first one not in the past); once the previous run ended
  other than ``succeeded``/``skipped``, no tick fires any more and the schedule ends ``failed``
  (reason ``PastTickFailed``). Without it, ticks overlap: each fires on time whatever runs.
* A tick missed (the engine was busy, or not running) is coalesced: the one due fires once, late, and the
  next is the first one after now, as a cron daemon that catches up one run. The next tick's time, the
  count of ticks fired and the last tick's run are in the schedule run's ``meta`` (``schedule``), written in
  the same transaction as the tick's run, so a restarted engine neither misses nor doubles a tick.
* Stopping the schedule run stops its live children and fires no tick any more; it ends ``stopped``.
* Hooks: the operation's hooks run for the schedule run, the component's for each tick (as for a sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from polynb.lifecycle import Status, is_final
from polynb.scheduler.ownership import OWNER_KEY
from polynb.scheduler.plan import DagPlan, OpPlan, dump, make_op_plan
from polynb.scheduler.run_state import RunState
from polynb.scheduler.schedule_state import SCHEDULE_KEY, SCHEDULE_KIND, TICK_KEY, ScheduleState
from polynb.scheduler.schedule_ticks import first_tick, next_tick, parse_schedule, schedule_to_meta
from polynb.scheduler.state import EngineState
from polynb.scheduler.statuses import Statuses
from polynb.spec.models import Hook
from polynb.spec.schedule import CronSchedule, DateTimeSchedule, IntervalSchedule
from polynb.store import NewRun, RunRecord

REASON_SCHEDULE_STOPPED = "ScheduleStopped"
REASON_PAST_TICK_FAILED = "PastTickFailed"
_GOOD = frozenset({Status.SUCCEEDED, Status.SKIPPED})

AnySchedule = CronSchedule | IntervalSchedule | DateTimeSchedule

WALL_CLOCK_RECHECK = 30.0
"""The longest the engine sleeps (a monotonic timer) before reading the wall clock again while a tick is
pending: the wall clock can jump (NTP, a suspended laptop), and a test's clock moves when the test says."""


class Schedules:
    """Creates schedule runs and their ticks' runs, and decides on them (engine thread only)."""

    def __init__(
        self,
        state: EngineState,
        statuses: Statuses,
        submit: Any,
        stop_run: Any,
        now: Callable[[], datetime],
        recheck: float = WALL_CLOCK_RECHECK,
    ) -> None:
        self._state = state
        self._statuses = statuses
        self._submit = submit
        """``Submission.prepare_and_submit``: compile a tick's run and hand it to its executor."""
        self._stop_run = stop_run
        """``Stopping.stop_run``."""
        self._now = now
        self._recheck = recheck

    def create(
        self, op: OpPlan, schedule: AnySchedule, dag_plan: DagPlan, hook_components: Mapping[str, Any], executor: str
    ) -> str:
        state = self._state
        tick_plan = _tick_plan(op)
        sched_hooks = tuple(op.operation.hooks or ())
        record = state.store.create_run(
            NewRun(
                name=op.name,
                kind=SCHEDULE_KIND,
                inputs=dag_plan.inputs,
                meta={
                    "role": "schedule",
                    "dag": dag_plan.to_meta(),
                    "tick_plan": tick_plan.to_meta(),
                    "schedule_hooks": [dump(h) for h in sched_hooks],
                    OWNER_KEY: state.owner,
                    "hook_components": dict(hook_components),
                },
                executor=executor,
            )
        )
        uuid = record.uuid
        run = self._statuses.adopt(record, role="schedule", root=uuid)
        state.outbox.publish(state.store.events(run_uuid=uuid))
        state.dirty_roots.add(uuid)
        sched = ScheduleState(
            uuid=uuid,
            name=op.name,
            plan=tick_plan,
            schedule=schedule,
            inputs=dict(dag_plan.inputs),
            hooks=sched_hooks,
            base_dir=dag_plan.base_dir,
            next_at=first_tick(schedule, self._now()),
            root=uuid,
        )
        state.schedules[uuid] = sched
        self._persist(sched)
        self._statuses.set(run, Status.COMPILED, "Created", f"{schedule.kind} schedule")
        claim = state.store.claim(uuid, status=Status.ON_SCHEDULE, expected={Status.COMPILED}, reason="Scheduling",
                                  message=_next_message(sched))  # fmt: skip
        self._statuses.apply(run, claim)
        state.dirty_schedules.add(uuid)
        return uuid

    def start_in_dag(self, run: RunState) -> None:
        """An op of a DAG with a ``schedule``, claimed ``on_schedule``: its run is the schedule; each tick's run
        is compiled as the op would be (the DAG's inputs, its upstream ops). Its DAG waits for it to end."""
        state = self._state
        assert run.plan is not None
        assert run.dag_uuid is not None
        schedule = run.plan.operation.schedule
        assert schedule is not None
        sched = ScheduleState(
            uuid=run.uuid,
            name=run.name,
            plan=_tick_plan(run.plan),
            schedule=schedule,
            inputs={},
            hooks=tuple(run.plan.operation.hooks or ()),
            base_dir=state.dags[run.dag_uuid].plan.base_dir,
            next_at=first_tick(schedule, self._now()),
            root=run.root,
            dag_uuid=run.dag_uuid,
        )
        state.schedules[run.uuid] = sched
        self._persist(sched)
        state.dirty_schedules.add(run.uuid)

    def resume(self, run: RunState, record: RunRecord, live: list[str]) -> None:
        """A schedule run adopted by a restarted engine (``recovery``): its state from its ``meta``; ``live``
        are its children not final (adopted by the caller). A tick that came due meanwhile fires once."""
        state = self._state
        meta = record.meta
        saved = meta.get(SCHEDULE_KEY) or {}
        children = state.store.children(record.uuid)
        next_at = saved.get("next_at")
        if run.role == "op":  # an op of a DAG (its DAG is adopted already)
            assert run.plan is not None
            assert run.dag_uuid is not None
            plan, inputs = _tick_plan(run.plan), {}
            hooks = tuple(run.plan.operation.hooks or ())
            base_dir, dag_uuid = state.dags[run.dag_uuid].plan.base_dir, run.dag_uuid
        else:
            plan, inputs = OpPlan.from_meta(meta["tick_plan"]), dict(record.inputs)
            hooks = tuple(Hook.model_validate(h) for h in meta.get("schedule_hooks") or ())
            base_dir, dag_uuid = DagPlan.from_meta(meta["dag"]).base_dir, None
        sched = ScheduleState(
            uuid=record.uuid,
            name=record.name,
            plan=plan,
            schedule=parse_schedule(saved["spec"]),
            inputs=inputs,
            hooks=hooks,
            base_dir=base_dir,
            root=run.root,
            dag_uuid=dag_uuid,
            next_at=datetime.fromisoformat(next_at) if next_at else None,
            fired=int(saved.get("fired", 0)),
            last=saved.get("last"),
            active=set(live),
            failed=sum(c.status in (Status.FAILED, Status.UPSTREAM_FAILED) for c in children),
            stopped=sum(c.status == Status.STOPPED for c in children),
            closed_reason=saved.get("closed"),
        )
        if record.status == Status.STOPPING:
            sched.stop_requested = True
            sched.next_at = None
        state.schedules[record.uuid] = sched
        if record.status == Status.COMPILED:
            self._statuses.apply(run, state.store.claim(record.uuid, status=Status.ON_SCHEDULE,
                                                        expected={Status.COMPILED}, reason="Scheduling"))  # fmt: skip
        state.dirty_schedules.add(record.uuid)

    # -- deciding -----------------------------------------------------------------------------------

    def evaluate(self, sched: ScheduleState) -> None:
        """Take in the ticks' runs that ended, fire the tick that is due, end the schedule when done."""
        state = self._state
        run = state.runs[sched.uuid]
        if run.is_final:
            return
        for uuid in [u for u in sched.active if state.runs[u].is_final]:
            sched.active.discard(uuid)
            status = state.runs[uuid].status
            sched.failed += status in (Status.FAILED, Status.UPSTREAM_FAILED)
            sched.stopped += status == Status.STOPPED
        if state.closing:
            return  # a shutdown that keeps runs: the next engine goes on from the stored state
        if sched.next_at is not None and not sched.stop_requested:
            self._fire_if_due(sched)
        state.timers.cancel(("schedule", sched.uuid))
        if sched.next_at is None and not sched.active:
            self._finish(sched, run)
            return
        self._show(sched, run)
        if sched.next_at is None:
            return
        delay = (sched.next_at - self._now()).total_seconds()
        if delay > 0:  # else a due tick waits for the previous tick's run (``dependsOnPast``), which wakes it
            state.timers.schedule(("schedule", sched.uuid), min(delay, self._recheck), sched.uuid)

    def _show(self, sched: ScheduleState, run: RunState) -> None:
        """The schedule run is ``running`` while a tick's run is not final, ``on_schedule`` between ticks
        (Polyaxon's status of a run waiting for its schedule)."""
        if sched.stop_requested or run.status == Status.STOPPING:
            return
        if sched.active:
            count = len(sched.active)
            message = f"tick {sched.fired} running" if count == 1 else f"{count} ticks running"
            target, reason = Status.RUNNING, "TickRunning"
        else:
            target, reason, message = Status.ON_SCHEDULE, "Scheduling", _next_message(sched)
        if run.status != target:
            self._statuses.set(run, target, reason, message)

    def _fire_if_due(self, sched: ScheduleState) -> None:
        assert sched.next_at is not None
        now = self._now()
        if sched.next_at > now:
            return
        if sched.depends_on_past and sched.last is not None:
            status = self._status_of(sched.last)
            if not is_final(status):
                return  # fires once the previous tick's run ends (it marks the schedule dirty)
            if status not in _GOOD:
                sched.next_at = None
                sched.closed_reason = (f"the previous tick's run ended {status.value}: with `dependsOnPast` no "
                                       "tick starts after it")  # fmt: skip
                self._persist(sched)
                return
        self._fire(sched, now)

    def _status_of(self, uuid: str) -> Status:
        run = self._state.runs.get(uuid)
        return run.status if run is not None else self._state.store.get_run(uuid).status

    def _fire(self, sched: ScheduleState, now: datetime) -> None:
        """Create the tick's run and advance the schedule (one transaction: the turn's), then submit it."""
        state = self._state
        assert sched.next_at is not None
        at = sched.next_at
        sched.fired += 1
        index = sched.fired
        done = sched.max_runs is not None and sched.fired >= sched.max_runs
        sched.next_at = None if done else next_tick(sched.schedule, at, now)
        dag = DagPlan(name=sched.name, inputs=sched.inputs, base_dir=sched.base_dir)
        record = state.store.create_run(
            NewRun(
                name=f"{sched.name}-{index}",
                kind=sched.plan.kind,
                dag_uuid=sched.uuid,
                meta={
                    "role": "tick",
                    "plan": sched.plan.to_meta(),
                    "dag": dag.to_meta(),
                    TICK_KEY: {"index": index, "at": at.isoformat()},
                },
                executor=state.runs[sched.uuid].executor,
            )
        )
        sched.last = record.uuid
        self._persist(sched)
        tick = self._statuses.adopt(record, role="tick", plan=sched.plan, root=sched.root or sched.uuid)
        state.outbox.publish(state.store.events(run_uuid=record.uuid))
        sched.active.add(record.uuid)
        self._submit(tick)
        if tick.is_final:  # it failed to compile: decided at once
            state.dirty_schedules.add(sched.uuid)

    def _persist(self, sched: ScheduleState) -> None:
        self._state.store.set_meta(
            sched.uuid,
            {
                SCHEDULE_KEY: {
                    "spec": schedule_to_meta(sched.schedule),
                    "next_at": sched.next_at.isoformat() if sched.next_at is not None else None,
                    "fired": sched.fired,
                    "last": sched.last,
                    "closed": sched.closed_reason,
                }
            },
        )

    def _finish(self, sched: ScheduleState, run: RunState) -> None:
        fired = sched.fired
        if sched.stop_requested:
            status, reason, message = Status.STOPPED, REASON_SCHEDULE_STOPPED, f"stopped after {fired} ticks"
        elif sched.closed_reason is not None:
            status, reason, message = Status.FAILED, REASON_PAST_TICK_FAILED, sched.closed_reason
        elif sched.failed:
            status, reason, message = Status.FAILED, "TicksFailed", f"{sched.failed} of {fired} ticks failed"
        elif fired and sched.stopped == fired:
            status, reason, message = Status.STOPPED, "TicksStopped", f"all {fired} ticks were stopped"
        else:
            status, reason, message = Status.SUCCEEDED, "ScheduleDone", f"{fired} ticks done"
        self._statuses.finish(run, status, reason, message)

    # -- stopping -----------------------------------------------------------------------------------

    def stop_run(self, run: RunState, reason: str, message: str) -> bool:
        """``Stopping.stop_run`` of a schedule run: stop it; False for any other run."""
        sched = self._state.schedules.get(run.uuid)
        if sched is None:
            return False
        self.stop(sched, reason, message)
        return True

    def stop(self, sched: ScheduleState, reason: str, message: str) -> None:
        """No tick fires any more, the ticks' runs still live are stopped, then it ends ``stopped``."""
        state = self._state
        run = state.runs[sched.uuid]
        if run.is_final:
            return
        sched.stop_requested = True
        sched.next_at = None
        state.timers.cancel(("schedule", sched.uuid))
        self._persist(sched)
        self._statuses.set(run, Status.STOPPING, reason, message)
        for uuid in list(sched.active):
            self._stop_run(state.runs[uuid], REASON_SCHEDULE_STOPPED, f"schedule {sched.name} stopped")
        state.dirty_schedules.add(sched.uuid)


def _tick_plan(op: OpPlan) -> OpPlan:
    """The op a tick runs: no schedule (it is one run), no operation hooks (they are the schedule's)."""
    operation = op.operation.model_copy(update={"schedule": None, "hooks": None})
    component = op.component.model_copy(update={"schedule": None})
    return make_op_plan(name=op.name, operation=operation, component=component, upstream=op.upstream)


def _next_message(sched: ScheduleState) -> str:
    if sched.next_at is None:
        return "no tick to fire"
    return f"next tick at {sched.next_at.isoformat()}"
