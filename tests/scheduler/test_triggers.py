"""Trigger policies are decided as soon as the outcome is certain (DESIGN §3)."""

from __future__ import annotations

import pytest

from polynb.lifecycle import Status
from polynb.scheduler.triggers import Decision, TriggerPolicy, decide

S, F, UF, SK, ST, R = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.UPSTREAM_FAILED,
    Status.SKIPPED,
    Status.STOPPED,
    Status.RUNNING,
)


def d(policy: str | None, *statuses: Status | None) -> Decision:
    return decide(policy, {f"u{i}": s for i, s in enumerate(statuses)})


def test_no_upstream_starts_under_every_policy() -> None:
    for policy in TriggerPolicy:
        assert decide(policy, {}) == Decision.START


def test_default_policy_is_all_succeeded() -> None:
    assert d(None, S, R) == Decision.WAIT
    assert d(None, S, S) == Decision.START
    assert d(None, F, R) == Decision.UPSTREAM_FAILED


def test_all_succeeded_fails_as_soon_as_one_upstream_ends_otherwise() -> None:
    assert d("all_succeeded", R, None, F) == Decision.UPSTREAM_FAILED
    assert d("all_succeeded", R, SK) == Decision.UPSTREAM_FAILED
    assert d("all_succeeded", ST, R) == Decision.UPSTREAM_FAILED


def test_all_succeeded_starts_when_every_upstream_succeeded() -> None:
    assert d("all_succeeded", S, R) == Decision.WAIT
    assert d("all_succeeded", S, S, S) == Decision.START


def test_one_succeeded_starts_at_the_first_success_while_others_run() -> None:
    assert d("one_succeeded", R, S, None) == Decision.START


def test_one_succeeded_waits_after_a_failure_while_another_upstream_may_succeed() -> None:
    assert d("one_succeeded", F, R) == Decision.WAIT


def test_one_succeeded_fails_only_when_every_upstream_is_final_without_success() -> None:
    assert d("one_succeeded", F, SK, UF) == Decision.UPSTREAM_FAILED


def test_all_failed_counts_only_failed() -> None:
    assert d("all_failed", F, F) == Decision.START
    assert d("all_failed", F, R) == Decision.WAIT
    assert d("all_failed", F, S) == Decision.UPSTREAM_FAILED
    assert d("all_failed", F, UF) == Decision.UPSTREAM_FAILED


def test_one_failed_starts_at_the_first_failure_and_gives_up_when_all_final() -> None:
    assert d("one_failed", R, F) == Decision.START
    assert d("one_failed", S, R) == Decision.WAIT
    assert d("one_failed", S, S) == Decision.UPSTREAM_FAILED


def test_all_done_waits_for_every_upstream_and_never_fails() -> None:
    assert d("all_done", F, R) == Decision.WAIT
    assert d("all_done", F, SK, ST, UF, S) == Decision.START


def test_one_done_starts_at_the_first_final_status() -> None:
    assert d("one_done", R, None) == Decision.WAIT
    assert d("one_done", R, F) == Decision.START


@pytest.mark.parametrize("policy", list(TriggerPolicy))
def test_pending_upstreams_keep_every_policy_waiting(policy: TriggerPolicy) -> None:
    assert d(policy, None, R) == Decision.WAIT
