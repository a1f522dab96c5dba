"""When a schedule ticks: the tick sequence of cron, interval and datetime schedules, bounded by ``startAt``
and ``endAt``, and missed ticks coalesced (pure functions of a time: no clock, no waiting)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from polynb.scheduler.schedule_ticks import first_tick, next_tick, parse_schedule, schedule_to_meta, ticks

CREATED = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sched(**fields: Any) -> Any:
    return parse_schedule(fields)


def test_cron_ticks_are_the_times_the_expression_matches_from_creation() -> None:
    assert ticks(sched(kind="cron", cron="*/15 * * * *"), CREATED, 3) == [
        at("2026-03-01 12:15"), at("2026-03-01 12:30"), at("2026-03-01 12:45"),
    ]  # fmt: skip
    assert ticks(sched(kind="cron", cron="0 2 * * mon-fri"), CREATED, 3) == [
        at("2026-03-02 02:00"),
        at("2026-03-03 02:00"),
        at("2026-03-04 02:00"),
    ]  # fmt: skip  (2026-03-01 is a Sunday)
    assert ticks(sched(kind="cron", cron="@monthly"), CREATED, 2) == [at("2026-04-01 00:00"), at("2026-05-01 00:00")]


def test_cron_start_at_is_a_tick_when_it_matches_and_end_at_bounds_the_ticks() -> None:
    daily = sched(kind="cron", cron="0 2 * * *", startAt="2026-06-01T02:00:00Z", endAt="2026-06-03T02:00:00Z")
    assert ticks(daily, CREATED, 10) == [at("2026-06-01 02:00"), at("2026-06-02 02:00"), at("2026-06-03 02:00")]


def test_interval_ticks_from_start_at_or_creation_every_frequency() -> None:
    assert ticks(sched(kind="interval", frequency=90), CREATED, 3) == [
        CREATED, CREATED + timedelta(seconds=90), CREATED + timedelta(seconds=180),
    ]  # fmt: skip
    hourly = sched(kind="interval", frequency="PT1H", startAt="2026-06-01 00:00", endAt="2026-06-01 02:30")
    assert ticks(hourly, CREATED, 10) == [at("2026-06-01 00:00"), at("2026-06-01 01:00"), at("2026-06-01 02:00")]


def test_a_datetime_schedule_ticks_once_at_start_at() -> None:
    assert ticks(sched(kind="datetime", startAt="2026-06-01T10:00:00+02:00"), CREATED, 5) == [at("2026-06-01 08:00")]


def test_missed_ticks_are_coalesced_the_next_is_the_first_not_in_the_past() -> None:
    every_minute = sched(kind="interval", frequency=60)
    late = CREATED + timedelta(seconds=150)  # ticks at +60 and +120 were missed while +0 fired late
    assert next_tick(every_minute, CREATED, late) == CREATED + timedelta(seconds=180)
    cron = sched(kind="cron", cron="0 * * * *")
    assert next_tick(cron, at("2026-03-01 13:00"), at("2026-03-01 16:20")) == at("2026-03-01 17:00")


def test_a_schedule_starting_after_its_end_has_no_tick_and_meta_round_trips() -> None:
    assert first_tick(sched(kind="cron", cron="0 0 1 1 *", endAt="2026-06-01T00:00:00Z"), CREATED) is None
    spec = sched(kind="interval", frequency=3600, maxRuns=3, dependsOnPast=True, startAt="2026-06-01 00:00")
    assert parse_schedule(schedule_to_meta(spec)) == spec
