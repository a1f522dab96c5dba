"""Trigger policies: may an op start, given the statuses of the upstreams the policy looks at?

Pure decision logic. Each policy is decided **as soon as its outcome is certain**, not only when every
upstream is final (DESIGN §3): ``one_succeeded`` starts at the first success, ``all_succeeded`` gives up at
the first upstream that ends otherwise. Final statuses are sticky, so a certain outcome never changes.

Polyaxon counts only ``failed`` (not ``upstream_failed``) for the ``*_failed`` policies; so do we.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from polynb.lifecycle import Status, is_final
from polynb.spec.models import TriggerPolicy as TriggerPolicy

DEFAULT_POLICY = TriggerPolicy.ALL_SUCCEEDED


class Decision(StrEnum):
    """The outcome of a trigger policy for one op."""

    WAIT = "wait"
    START = "start"
    UPSTREAM_FAILED = "upstream_failed"


def parse_policy(value: object) -> TriggerPolicy:
    """The policy named by ``value`` (a str or a str-valued enum); ``None`` means the default."""
    if value is None:
        return DEFAULT_POLICY
    return TriggerPolicy(str(getattr(value, "value", value)))


@dataclass(slots=True)
class Counts:
    """Where the upstreams a policy looks at stand. Every policy depends on these four numbers only, so
    the engine keeps them per op and updates them in O(1) when an upstream's status moves."""

    total: int = 0
    final: int = 0
    succeeded: int = 0
    failed: int = 0

    def add(self, status: Status | None, sign: int = 1) -> None:
        """Count one upstream in ``status`` (``sign=-1`` takes it back out); ``total`` is left alone."""
        if status is None or not is_final(status):
            return
        self.final += sign
        if status == Status.SUCCEEDED:
            self.succeeded += sign
        elif status == Status.FAILED:
            self.failed += sign


def count(statuses: Mapping[str, Status | str | None]) -> Counts:
    """The counts of the upstreams' current statuses (``None``: run not created yet, not final)."""
    counts = Counts(total=len(statuses))
    for status in statuses.values():
        counts.add(Status(status) if status is not None else None)
    return counts


def decide(policy: TriggerPolicy | str | None, statuses: Mapping[str, Status | str | None]) -> Decision:
    """Decide ``policy`` over the current statuses of the upstreams (``None``: run not created yet).

    No upstream at all means nothing to wait for: the op may start whatever the policy.
    """
    return decide_counts(policy, count(statuses))


def decide_counts(policy: TriggerPolicy | str | None, counts: Counts) -> Decision:
    """``decide`` over the upstreams' counts (the rule itself; ``decide`` counts, then calls this)."""
    policy = parse_policy(policy)
    if counts.total == 0:
        return Decision.START
    all_final = counts.final == counts.total
    if policy == TriggerPolicy.ALL_DONE:
        return Decision.START if all_final else Decision.WAIT
    if policy == TriggerPolicy.ONE_DONE:
        return Decision.START if counts.final else Decision.WAIT
    if policy in (TriggerPolicy.ALL_SUCCEEDED, TriggerPolicy.ALL_FAILED):
        on_target = counts.succeeded if policy == TriggerPolicy.ALL_SUCCEEDED else counts.failed
        if counts.final != on_target:  # an upstream ended otherwise
            return Decision.UPSTREAM_FAILED
        return Decision.START if all_final else Decision.WAIT
    # one_succeeded / one_failed
    if (counts.succeeded if policy == TriggerPolicy.ONE_SUCCEEDED else counts.failed) > 0:
        return Decision.START
    return Decision.UPSTREAM_FAILED if all_final else Decision.WAIT


def describe_failure(policy: TriggerPolicy | str | None, statuses: Mapping[str, Status | str | None]) -> str:
    """A human message for an ``upstream_failed`` decision: the policy and what the upstreams ended as."""
    policy = parse_policy(policy)
    parts = ", ".join(f"{name}={status}" for name, status in sorted(statuses.items()) if status is not None)
    return f"trigger policy {policy.value} cannot be met: {parts}"
