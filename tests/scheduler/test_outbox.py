"""What the outbox lets happen when a turn commits part of its writes early (a fan-out's first ops): the
submissions of what is committed go at once; nothing posted after a commit that fails ever happens; events
reach listeners at the end of the turn, those of committed writes whatever failed after them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from polynb.scheduler.events import Listeners
from polynb.scheduler.outbox import Outbox
from polynb.store import EventRecord


def event(seq: int) -> EventRecord:
    return EventRecord(seq, datetime(2026, 1, 1, tzinfo=UTC), "a" * 32, None, "run_status_queued", {})


def test_a_commit_within_a_turn_acts_on_what_it_made_durable_and_nothing_after_a_failed_one() -> None:
    listeners = Listeners()
    heard: list[int] = []
    listeners.add(lambda e: heard.append(e.seq))
    outbox = Outbox(listeners)
    done: list[str] = []
    commits: list[bool] = []

    def commit() -> bool:
        if len(commits) == 1:
            raise OSError("disk full")
        commits.append(True)
        return True

    outbox.holding, outbox.commit = True, commit
    outbox.publish([event(1)])
    outbox.post(lambda: done.append("submit m0"), "submitting m0")
    outbox.act_if_waited(0.0)
    assert (done, heard) == (["submit m0"], [])  # submitted at once; its event waits for the end of the turn

    outbox.publish([event(2)])
    outbox.post(lambda: done.append("submit m1"), "submitting m1")
    with pytest.raises(OSError, match="disk full"):
        outbox.act_if_waited(0.0)
    outbox.holding, outbox.commit = False, None
    outbox.deliver()
    assert (done, heard) == (["submit m0"], [1])  # m1's claim was never durable: never submitted, never heard


def test_nothing_is_committed_early_before_an_action_waited_or_inside_an_atomic_block() -> None:
    outbox = Outbox(Listeners())
    done: list[str] = []
    calls: list[int] = []

    def commit() -> bool:
        calls.append(1)
        return False  # inside an atomic block: not now

    outbox.holding, outbox.commit = True, commit
    outbox.act_if_waited(0.0)  # nothing posted yet
    outbox.post(lambda: done.append("submit"), "submitting")
    outbox.act_if_waited(3600.0)  # has not waited that long
    assert calls == [] and done == []
    outbox.act_if_waited(0.0)
    assert calls == [1] and done == []  # the commit was refused: the submission still waits
    outbox.holding, outbox.commit = False, None
    outbox.deliver()
    assert done == ["submit"]
