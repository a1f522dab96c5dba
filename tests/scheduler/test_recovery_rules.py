"""What a restarted engine does with each unfinished run: never submit twice."""

from __future__ import annotations

from polynb.lifecycle import Status
from polynb.scheduler.recovery import Recovery, classify


def test_pending_runs_are_scheduled_again() -> None:
    for status in (Status.CREATED, Status.COMPILED):
        assert classify(status, has_handle=False) == Recovery.PENDING


def test_retrying_run_gets_its_next_attempt() -> None:
    assert classify(Status.RETRYING, has_handle=False) == Recovery.RESUBMIT


def test_submitted_runs_are_reattached() -> None:
    for status in (Status.QUEUED, Status.SCHEDULED, Status.RUNNING, Status.STOPPING, Status.UNKNOWN):
        assert classify(status, has_handle=True) == Recovery.REATTACH


def test_claimed_run_without_handle_is_never_resubmitted() -> None:
    assert classify(Status.QUEUED, has_handle=False) == Recovery.INTERRUPTED
    assert classify(Status.RUNNING, has_handle=False) == Recovery.INTERRUPTED


def test_stopping_run_that_never_started_is_just_stopped() -> None:
    assert classify(Status.STOPPING, has_handle=False) == Recovery.STOP_PENDING


def test_final_runs_need_nothing() -> None:
    assert classify(Status.SUCCEEDED, has_handle=True) == Recovery.NOTHING
