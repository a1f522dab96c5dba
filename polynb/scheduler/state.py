"""The engine's in-memory view of the runs it manages. Only the engine thread touches it.

The store is the source of truth; this is a cache of what the scheduling decisions need (statuses, the
event kinds each run emitted, plans, which runs hold a concurrency slot), rebuilt from the store on restart:
one :class:`~polynb.scheduler.run_state.RunState` per run, one :class:`DagState` per DAG run.
:class:`EngineState` gathers it with what every part of the engine shares (store, executors, timers,
listeners); the engine's collaborators (``statuses``, ``submission``, ``stopping``, ...) take it explicitly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from polynb.executors.base import Executor
from polynb.lifecycle import Status
from polynb.scheduler.events import Listeners
from polynb.scheduler.outbox import Outbox
from polynb.scheduler.plan import DagPlan
from polynb.scheduler.run_state import RunState
from polynb.scheduler.schedule_state import ScheduleState
from polynb.scheduler.sweep_state import SweepState
from polynb.scheduler.tallies import DagIndex, RootTally
from polynb.scheduler.timers import Timers
from polynb.store import Store


@dataclass(eq=False)
class DagState:
    uuid: str
    plan: DagPlan
    ops: dict[str, str] = field(default_factory=dict)
    """op name -> run uuid"""
    ready: deque[str] = field(default_factory=deque)
    """compiled op runs waiting for a concurrency slot, in the order they became ready"""
    stopping: bool = False
    timed_out: bool = False
    """Its ``termination.timeout`` stopped it: it ends ``failed`` (reason ``Timeout``) whatever its ops."""
    between_attempts: bool = False
    """``retrying``: an attempt failed and its ``maxRetries`` runs it again (``termination``)."""
    retry_due: bool = False
    """The retry delay is over: the next attempt starts once the failed one's ops are all final."""
    index: DagIndex | None = None
    """set once every op is adopted; see ``tallies``"""
    early_seen: set[str] = field(default_factory=set)
    """ops whose final status ``earlyStopping`` has read (each once)"""
    connection_events: dict[str, dict[str, dict[str, Any]]] | None = None
    """connection -> kind -> the first payload recorded on the DAG in this attempt (``connection_waits``; None:
    not read yet)"""
    attempt_seq: int = 0
    """The DAG run's events up to this seq belong to its earlier attempts (``maxRetries``): ``ref: dag`` and
    connection waits read only later ones, so a new attempt's ops wait for an event after it began, as the first
    attempt's wait for one after they began to wait (0: the first attempt, every event counts)."""
    attempt_emitted: set[str] = field(default_factory=set)
    """The kinds emitted to the DAG run since ``attempt_seq`` (kept once ``attempt_seq`` is set)."""

    def own_emitted(self, run: RunState) -> set[str]:
        """What ``ref: dag`` triggers see: the kinds emitted to the DAG run (``run``) in its current attempt."""
        return self.attempt_emitted if self.attempt_seq else run.emitted

    def begin_attempt(self, seq: int, kinds: set[str]) -> None:
        """A new attempt began at event ``seq`` (``kinds``: what was emitted to the DAG run since, on recovery)."""
        self.attempt_seq = seq
        self.attempt_emitted = set(kinds)
        self.connection_events = None

    early_stop_message: str | None = None
    """Set when ``earlyStopping`` stopped it: it ends with reason ``EarlyStopping`` (``early_stopping``)."""


@dataclass(frozen=True, slots=True)
class Settled:
    """What ``Engine.wait`` looks at for one top-level run, published by the engine thread."""

    status: Status | None
    """The run's final status, or None while it is not final."""
    services_done: bool
    hooks_done: bool


@dataclass(eq=False)
class EngineState:
    """Everything the engine thread knows and shares: the store, the executors, the runs it manages and
    what the last message changed. One per engine; only the engine thread reads or writes it."""

    store: Store
    executors: dict[str, Executor]
    default_executor: str
    owner: dict[str, Any]
    """This engine, as recorded on the top-level runs it owns (``ownership``)."""
    retry_delay: float
    timers: Timers = field(default_factory=Timers)
    listeners: Listeners = field(default_factory=Listeners)
    outbox: Outbox = field(init=False)
    """Executor calls and events waiting for the commit of the writes they follow (``outbox``)."""
    runs: dict[str, RunState] = field(default_factory=dict)
    dags: dict[str, DagState] = field(default_factory=dict)
    roots: dict[str, RootTally] = field(default_factory=dict)
    """per top-level run: its services and hooks not final yet (what ``Engine.wait`` needs)"""
    dirty_dags: set[str] = field(default_factory=set)
    """DAGs to re-evaluate before the engine waits for the next message"""
    sweeps: dict[str, SweepState] = field(default_factory=dict)
    """matrix runs by uuid (``sweeps``)"""
    dirty_sweeps: set[str] = field(default_factory=set)
    """sweeps to re-evaluate (a trial of theirs is final) before the engine waits for the next message"""
    schedules: dict[str, ScheduleState] = field(default_factory=dict)
    """schedule runs by uuid (``schedules``)"""
    dirty_schedules: set[str] = field(default_factory=set)
    """schedules to re-evaluate (a tick is due, or one of their ticks' runs is final)"""
    dirty_roots: set[str] = field(default_factory=set)
    """top-level runs whose ``Settled`` state must be published to waiters"""
    adopted: set[str] = field(default_factory=set)
    """top-level runs this engine adopted from one that is gone (``recovery``): at a shutdown that stops runs,
    released for the next engine instead (their engine left them running, or died; it is not ours to end them)"""
    shutting_down: bool = False
    """``shutdown(stop_running=True)``: everything is being stopped; no hook, retry or new op starts."""
    closing: bool = False
    """No new claims: the engine is shutting down (runs not claimed yet stay for the next engine)."""
    stop_grace: float | None = None
    """While ``Engine.stop`` is being made: the grace it gives the processes of the runs it stops (None: each
    executor's own)."""

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.listeners)

    def stop_later(self, run: RunState) -> None:
        """Ask ``run``'s executor to stop it once its ``stopping`` is committed."""
        executor, uuid, grace = self.executor(run), run.uuid, run.stop_grace
        self.outbox.post(lambda: executor.stop(uuid, grace=grace), f"stopping run {uuid}")

    def executor(self, run: RunState) -> Executor:
        try:
            return self.executors[run.executor]
        except KeyError:
            raise RuntimeError(f"executor {run.executor!r} is not configured in this engine") from None

    def dag_of(self, run: RunState) -> DagState | None:
        """The DAG ``run`` is an op of (None for DAG runs, single runs and hooks)."""
        if run.role != "op" or run.dag_uuid is None:
            return None
        return self.dags.get(run.dag_uuid)

    def index_of(self, run: RunState) -> DagIndex | None:
        """The index of the DAG ``run`` is an op of (None for DAG runs, single runs and hooks)."""
        dag = self.dag_of(run)
        return dag.index if dag is not None else None
