"""Event triggers, skipOnUpstreamSkip and the trigger policy combined (DESIGN §3)."""

from __future__ import annotations

from polynb.lifecycle import Status
from polynb.scheduler.readiness import (
    REASON_EVENT_NOT_EMITTED,
    REASON_UPSTREAM_SKIPPED,
    Action,
    EventWait,
    UpstreamState,
    evaluate,
    requirements,
)

RUNNING = "run_status_running"


def st(status: Status | None, *kinds: str) -> UpstreamState:
    return UpstreamState(status, frozenset(kinds))


def tensorboard_like(**kwargs: object) -> object:
    return requirements(
        upstream={"experiment"},
        dependencies=(),
        events=[EventWait("experiment", frozenset({RUNNING}))],
        **kwargs,  # type: ignore[arg-type]
    )


def test_event_op_starts_when_upstream_emits_the_awaited_kind_without_waiting_for_it_to_finish() -> None:
    req = requirements(upstream={"experiment"}, dependencies=(), events=[EventWait("experiment", frozenset({RUNNING}))])
    assert req.policy_upstream == frozenset()
    assert evaluate(req, {"experiment": st(Status.QUEUED, "run_status_queued")}).action == Action.WAIT
    verdict = evaluate(req, {"experiment": st(Status.RUNNING, "run_status_queued", RUNNING)})
    assert verdict.action == Action.START


def test_event_op_is_skipped_naming_upstream_status_and_kinds_when_the_event_never_came() -> None:
    req = requirements(
        upstream={"experiment"},
        dependencies=(),
        events=[EventWait("experiment", frozenset({RUNNING, "run_status_starting"}))],
    )
    verdict = evaluate(req, {"experiment": st(Status.FAILED, "run_status_failed", "run_status_done")})
    assert verdict.action == Action.SKIP
    assert verdict.reason == REASON_EVENT_NOT_EMITTED
    assert "experiment" in verdict.message
    assert "failed" in verdict.message
    assert "run_status_running" in verdict.message
    assert "run_status_starting" in verdict.message


def test_kinds_within_one_trigger_are_alternatives() -> None:
    req = requirements(upstream=(), dependencies=(), events=[EventWait("a", frozenset({RUNNING, "run_status_failed"}))])
    assert evaluate(req, {"a": st(Status.FAILED, "run_status_failed", "run_status_done")}).action == Action.START


def test_every_event_trigger_must_fire() -> None:
    req = requirements(
        upstream=(),
        dependencies=(),
        events=[EventWait("a", frozenset({RUNNING})), EventWait("b", frozenset({RUNNING}))],
    )
    assert evaluate(req, {"a": st(Status.RUNNING, RUNNING), "b": st(Status.QUEUED)}).action == Action.WAIT
    assert evaluate(req, {"a": st(Status.RUNNING, RUNNING), "b": st(Status.RUNNING, RUNNING)}).action == (Action.START)


def test_done_event_fires_on_any_final_status() -> None:
    req = requirements(upstream=(), dependencies=(), events=[EventWait("a", frozenset({"run_status_done"}))])
    assert evaluate(req, {"a": st(Status.FAILED, "run_status_failed", "run_status_done")}).action == Action.START


def test_event_op_also_waits_for_the_policy_over_its_other_upstreams() -> None:
    req = requirements(
        upstream={"experiment", "prepare"},
        dependencies=("prepare",),
        events=[EventWait("experiment", frozenset({RUNNING}))],
    )
    assert req.policy_upstream == frozenset({"prepare"})
    running = st(Status.RUNNING, RUNNING)
    assert evaluate(req, {"experiment": running, "prepare": st(Status.RUNNING)}).action == Action.WAIT
    assert evaluate(req, {"experiment": running, "prepare": st(Status.SUCCEEDED)}).action == Action.START
    failed = evaluate(req, {"experiment": running, "prepare": st(Status.FAILED)})
    assert failed.action == Action.UPSTREAM_FAILED


def test_explicit_dependency_on_an_event_upstream_is_still_waited_for() -> None:
    req = requirements(upstream={"a"}, dependencies=("a",), events=[EventWait("a", frozenset({RUNNING}))])
    assert req.policy_upstream == frozenset({"a"})
    assert evaluate(req, {"a": st(Status.RUNNING, RUNNING)}).action == Action.WAIT


def test_skip_on_upstream_skip_turns_a_skipped_upstream_into_skipped() -> None:
    req = requirements(upstream={"a", "b"}, dependencies=("a", "b"), skip_on_upstream_skip=True, events=())
    verdict = evaluate(req, {"a": st(Status.SKIPPED), "b": st(Status.RUNNING)})
    assert verdict.action == Action.SKIP
    assert verdict.reason == REASON_UPSTREAM_SKIPPED
    assert "a" in verdict.message


def test_without_skip_on_upstream_skip_a_skipped_upstream_is_not_a_success() -> None:
    req = requirements(upstream={"a"}, dependencies=("a",), events=())
    assert evaluate(req, {"a": st(Status.SKIPPED)}).action == Action.UPSTREAM_FAILED


def test_policy_upstream_failed_is_decided_while_events_are_still_pending() -> None:
    req = requirements(upstream={"a", "b"}, dependencies=("b",), events=[EventWait("a", frozenset({RUNNING}))])
    assert evaluate(req, {"a": st(Status.QUEUED), "b": st(Status.FAILED)}).action == Action.UPSTREAM_FAILED


def test_trigger_policy_applies_to_non_event_upstreams() -> None:
    req = requirements(upstream={"a", "b"}, dependencies=("a", "b"), events=(), trigger="one_succeeded")
    assert evaluate(req, {"a": st(Status.SUCCEEDED), "b": st(Status.RUNNING)}).action == Action.START
