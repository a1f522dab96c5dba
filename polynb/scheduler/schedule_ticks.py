"""When a ``schedule`` ticks: pure functions of the schedule and a time (no clock, no engine).

Times are timezone-aware UTC; a naive ``startAt``/``endAt`` is read as UTC (as Polyaxon's server stores
times). ``cron`` is evaluated in UTC by ``croniter``.

* ``interval``: ``startAt`` (or the time the schedule was created), then every ``frequency``;
* ``cron``: the times the expression matches, from ``startAt`` (or creation) on, ``startAt`` included;
* ``datetime``: ``startAt``, once.

A tick later than ``endAt`` never fires (one at ``endAt`` does); after ``maxRuns`` ticks none does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from pydantic import TypeAdapter

from polynb.spec.base import DEFERRED
from polynb.spec.schedule import CronSchedule, DateTimeSchedule, IntervalSchedule, Schedule

_DATETIME = TypeAdapter(datetime, config=DEFERRED)
_TIMEDELTA = TypeAdapter(timedelta, config=DEFERRED)
_SCHEDULE: TypeAdapter[CronSchedule | IntervalSchedule | DateTimeSchedule] = TypeAdapter(Schedule, config=DEFERRED)


def utc(value: Any) -> datetime:
    """A datetime field (as written: str or datetime) as an aware UTC datetime; naive means UTC."""
    moment = _DATETIME.validate_python(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_schedule(data: dict[str, Any]) -> CronSchedule | IntervalSchedule | DateTimeSchedule:
    """A schedule from what :func:`schedule_to_meta` stored (a restarted engine reads it back)."""
    return _SCHEDULE.validate_python(data)


def schedule_to_meta(schedule: CronSchedule | IntervalSchedule | DateTimeSchedule) -> dict[str, Any]:
    return schedule.model_dump(mode="json", by_alias=True, exclude_none=True)


def first_tick(schedule: CronSchedule | IntervalSchedule | DateTimeSchedule, created: datetime) -> datetime | None:
    """The schedule's first tick (None if it has none: it starts after its ``endAt``)."""
    start = utc(schedule.start_at) if schedule.start_at is not None else created
    if not isinstance(schedule, CronSchedule):
        return _bounded(schedule, start)
    # croniter gives the next match strictly after its base; a 5-field expression matches whole minutes, so a
    # base one second earlier makes ``startAt`` itself a tick when it matches.
    tick = _next_cron(schedule.cron, start - timedelta(seconds=1))
    return _bounded(schedule, tick)


def next_tick(
    schedule: CronSchedule | IntervalSchedule | DateTimeSchedule, previous: datetime, now: datetime
) -> datetime | None:
    """The tick after ``previous`` that is not before ``now`` (ticks missed in between are coalesced into
    none: the one due now has just fired), or None when the schedule has no more ticks."""
    if isinstance(schedule, DateTimeSchedule):
        return None
    if isinstance(schedule, IntervalSchedule):
        step = _TIMEDELTA.validate_python(schedule.frequency)
        tick = previous + step
        if tick <= now:
            tick += step * ((now - tick) // step + 1)
        return _bounded(schedule, tick)
    tick = _next_cron(schedule.cron, max(previous, now))
    return _bounded(schedule, tick)


def ticks(
    schedule: CronSchedule | IntervalSchedule | DateTimeSchedule, created: datetime, count: int
) -> list[datetime]:
    """The first ``count`` ticks of a schedule that always fires on time (what ``polynb`` runs when no
    tick waits): for docs and tests."""
    out: list[datetime] = []
    tick = first_tick(schedule, created)
    while tick is not None and len(out) < count:
        out.append(tick)
        tick = next_tick(schedule, tick, tick)
    return out


def _next_cron(expression: str, after: datetime) -> datetime:
    moment: datetime = croniter(expression, after).get_next(datetime)
    return moment.astimezone(UTC)


def _bounded(schedule: CronSchedule | IntervalSchedule | DateTimeSchedule, tick: datetime) -> datetime | None:
    end = getattr(schedule, "end_at", None)
    if end is not None and tick > utc(end):
        return None
    return tick
