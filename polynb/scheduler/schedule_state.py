"""One schedule as the engine sees it (only the engine thread touches it); ``schedules`` decides on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from polynb.scheduler.plan import OpPlan
from polynb.spec.models import Hook
from polynb.spec.schedule import CronSchedule, DateTimeSchedule, IntervalSchedule

SCHEDULE_KIND = "schedule"
"""The kind of a schedule's run (Polyaxon's pipeline kind): a top-level schedule, or an op of a DAG with one."""
SCHEDULE_KEY = "schedule"
"""``meta`` key of a schedule run: its spec, ``next_at`` (ISO, or None), ``fired``, ``last`` (a run uuid)."""
TICK_KEY = "tick"
"""``meta`` key of a tick's run: ``{"index": n, "at": ISO time of the tick}`` (``globals.schedule_at``)."""


@dataclass(eq=False)
class ScheduleState:
    uuid: str
    name: str
    plan: OpPlan
    """The op each tick runs: the schedule taken off, the component's hooks only."""
    schedule: CronSchedule | IntervalSchedule | DateTimeSchedule
    inputs: dict[str, Any]
    hooks: tuple[Hook, ...]
    """The operation's hooks: they run for the schedule run."""
    base_dir: str | None
    next_at: datetime | None
    """The next tick, or None when no tick fires any more (``endAt`` passed, ``maxRuns`` reached, a stop)."""
    fired: int = 0
    """Ticks fired so far (each made one child run)."""
    last: str | None = None
    """The run of the last tick (what ``dependsOnPast`` looks at)."""
    active: set[str] = field(default_factory=set)
    """tick runs not final yet"""
    failed: int = 0
    stopped: int = 0
    closed_reason: str | None = None
    """Why no tick fires any more before its time (a stop, ``dependsOnPast`` after a failed tick)."""
    stop_requested: bool = False
    root: str = ""
    """The top-level run its ticks' runs belong to: itself, or the DAG the scheduled op is in."""
    dag_uuid: str | None = None
    """The DAG whose op is scheduled (its ticks are compiled as that op: the DAG's inputs, its upstream ops);
    None for a top-level schedule."""

    @property
    def max_runs(self) -> int | None:
        value = getattr(self.schedule, "max_runs", None)
        return value if isinstance(value, int) else None

    @property
    def depends_on_past(self) -> bool:
        return getattr(self.schedule, "depends_on_past", None) is True
