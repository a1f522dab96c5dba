"""The engine's deadline heap: ordering, replacement and lazy cancellation."""

from __future__ import annotations

from polynb.scheduler.timers import Timers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timers_fire_in_deadline_order() -> None:
    clock = Clock()
    timers = Timers(clock)
    timers.schedule("b", 2.0, "B")
    timers.schedule("a", 1.0, "A")
    assert timers.next_timeout() == 1.0
    clock.now += 5
    assert timers.pop_due() == [("a", "A"), ("b", "B")]
    assert timers.next_timeout() is None


def test_cancelled_and_replaced_timers_do_not_fire() -> None:
    clock = Clock()
    timers = Timers(clock)
    timers.schedule("a", 1.0, "old")
    timers.schedule("a", 3.0, "new")
    timers.schedule("c", 2.0, "C")
    timers.cancel("c")
    assert timers.next_timeout() == 3.0
    clock.now += 2
    assert timers.pop_due() == []
    clock.now += 2
    assert timers.pop_due() == [("a", "new")]
    assert len(timers) == 0
