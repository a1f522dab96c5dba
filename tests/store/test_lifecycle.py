"""The status rules shared by the scheduler, the executors and the store."""

from __future__ import annotations

import itertools

import pytest

from polynb.lifecycle import (
    FINAL,
    RUNNING_VALUES,
    STORABLE,
    SUBMITTABLE_VALUES,
    Status,
    can_transition,
    event_kind,
    is_final,
)

ALL = list(Status)


def test_the_twenty_polyaxon_statuses() -> None:
    assert [s.value for s in Status] == [
        "created", "resuming", "on_schedule", "compiled", "queued", "scheduled", "starting", "running",
        "processing", "stopping", "failed", "stopped", "succeeded", "skipped", "warning", "unschedulable",
        "upstream_failed", "retrying", "unknown", "done",
    ]  # fmt: skip


def test_final_statuses_and_done_pseudo_status() -> None:
    assert {s.value for s in FINAL} == {"failed", "upstream_failed", "stopped", "skipped", "succeeded"}
    assert all(is_final(s) for s in FINAL)
    assert not is_final(Status.DONE)
    assert not is_final(Status.STOPPING)
    assert Status.DONE not in STORABLE
    assert len(STORABLE) == 19


def test_running_values_and_submittable_values() -> None:
    assert {s.value for s in RUNNING_VALUES} == {"scheduled", "starting", "processing", "running"}
    assert Status.RETRYING in SUBMITTABLE_VALUES
    assert not SUBMITTABLE_VALUES & (RUNNING_VALUES | FINAL | {Status.QUEUED, Status.STOPPING})


@pytest.mark.parametrize("old", sorted(FINAL))
def test_a_final_status_is_never_left(old: Status) -> None:
    assert not any(can_transition(old, new) for new in ALL)


@pytest.mark.parametrize("new", ALL)
def test_from_stopping_only_a_final_status(new: Status) -> None:
    assert can_transition(Status.STOPPING, new) == (new in FINAL)


@pytest.mark.parametrize("status", ALL)
def test_the_same_status_again_is_not_a_transition(status: Status) -> None:
    assert not can_transition(status, status)


def test_done_is_never_a_target_and_created_only_the_first_status() -> None:
    assert not any(can_transition(old, Status.DONE) for old in [None, *ALL])
    assert not any(can_transition(old, Status.CREATED) for old in ALL)
    assert can_transition(None, Status.CREATED)
    assert not can_transition(None, Status.RUNNING)


def test_ordinary_moves_are_allowed() -> None:
    path = ["created", "compiled", "queued", "scheduled", "starting", "running", "stopping", "stopped"]
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))
    assert can_transition(Status.RUNNING, Status.RETRYING)
    assert can_transition(Status.RETRYING, Status.QUEUED)
    assert can_transition(Status.CREATED, Status.UPSTREAM_FAILED)


def test_event_kind_names() -> None:
    assert event_kind(Status.RUNNING) == "run_status_running"
    assert event_kind("done") == "run_status_done"
    with pytest.raises(ValueError, match="initializing"):
        event_kind("initializing")
