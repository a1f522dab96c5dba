"""Hook triggers and the main run's default context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polynb.lifecycle import FINAL, Status
from polynb.scheduler.hooks import DEFAULT_CONTEXT_KEYS, default_context, trigger_matches


@pytest.mark.parametrize("status", sorted(FINAL))
def test_done_and_missing_trigger_match_every_final_status(status: Status) -> None:
    assert trigger_matches("done", status)
    assert trigger_matches(None, status)


@pytest.mark.parametrize("trigger", ["succeeded", "failed", "stopped", "skipped", "upstream_failed"])
def test_a_status_trigger_matches_only_that_status(trigger: str) -> None:
    for status in FINAL:
        assert trigger_matches(trigger, status) == (status == trigger)


def test_hooks_never_match_a_non_final_status() -> None:
    assert not trigger_matches("done", Status.RUNNING)


def test_default_context_has_the_main_run_facts() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ctx = default_context(
        name="train",
        uuid="a" * 32,
        kind="job",
        status=Status.SUCCEEDED,
        inputs={"lr": 0.1},
        outputs={"loss": 0},
        created_at=t0,
        started_at=t0 + timedelta(seconds=2),
        finished_at=t0 + timedelta(seconds=5),
    )
    assert tuple(ctx) == DEFAULT_CONTEXT_KEYS
    assert ctx["status"] == "succeeded"
    assert ctx["wait_time"] == 2.0
    assert ctx["duration"] == 3.0
    assert ctx["outputs"] == {"loss": 0}
