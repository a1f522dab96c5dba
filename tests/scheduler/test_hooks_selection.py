"""Hook triggers and the main run's default context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polynb.lifecycle import FINAL, Status
from polynb.scheduler.hooks import DEFAULT_CONTEXT_KEYS, default_context, hook_run_name, trigger_matches
from polynb.spec.models import Hook


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


def _hooks(*specs: tuple[str, str | None]) -> list[Hook]:
    return [Hook(hub_ref=ref, trigger=trigger) for ref, trigger in specs]


def test_a_hook_alone_on_its_component_is_named_after_it() -> None:
    hooks = _hooks(("notify:v1", "failed"), ("acme/slack", None), ("webhook", "done"))
    assert [hook_run_name("train", hooks, i) for i in range(3)] == ["train-notify", "train-acme-slack", "train-webhook"]


def test_hooks_sharing_a_component_are_told_apart_by_trigger_then_rank() -> None:
    hooks = _hooks(
        ("webhook", "succeeded"), ("webhook", "failed"), ("notify", "done"), ("webhook", "done"),
        ("webhook", "failed"), ("webhook", None),
    )  # fmt: skip
    names = [hook_run_name("m-ok", hooks, i) for i in range(len(hooks))]
    assert names == [
        "m-ok-webhook-on-succeeded",
        "m-ok-webhook-on-failed-1",
        "m-ok-notify",
        "m-ok-webhook-on-done-1",
        "m-ok-webhook-on-failed-2",
        "m-ok-webhook-on-done-2",  # no trigger is `done`
    ]
    assert len(set(names)) == len(names)
    # Stable: the same list gives the same names, whichever hook is named first.
    assert [hook_run_name("m-ok", hooks, i) for i in reversed(range(len(hooks)))] == names[::-1]
