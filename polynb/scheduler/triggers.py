"""Trigger policies: may an op start, given the statuses of the upstreams the policy looks at?

Pure decision logic. Each policy is decided **as soon as its outcome is certain**, not only when every
upstream is final (DESIGN §3): ``one_succeeded`` starts at the first success, ``all_succeeded`` gives up at
the first upstream that ends otherwise. Final statuses are sticky, so a certain outcome never changes.

Polyaxon counts only ``failed`` (not ``upstream_failed``) for the ``*_failed`` policies; so do we.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def decide(policy: TriggerPolicy | str | None, statuses: Mapping[str, Status | str | None]) -> Decision:
    """Decide ``policy`` over the current statuses of the upstreams (``None``: run not created yet).

    No upstream at all means nothing to wait for: the op may start whatever the policy.
    """
    policy = parse_policy(policy)
    values = [Status(s) if s is not None else None for s in statuses.values()]
    if not values:
        return Decision.START
    final = [s for s in values if s is not None and is_final(s)]
    all_final = len(final) == len(values)
    target = {
        TriggerPolicy.ALL_SUCCEEDED: Status.SUCCEEDED,
        TriggerPolicy.ONE_SUCCEEDED: Status.SUCCEEDED,
        TriggerPolicy.ALL_FAILED: Status.FAILED,
        TriggerPolicy.ONE_FAILED: Status.FAILED,
    }.get(policy)

    if policy == TriggerPolicy.ALL_DONE:
        return Decision.START if all_final else Decision.WAIT
    if policy == TriggerPolicy.ONE_DONE:
        return Decision.START if final else Decision.WAIT
    if policy in (TriggerPolicy.ALL_SUCCEEDED, TriggerPolicy.ALL_FAILED):
        if any(s != target for s in final):
            return Decision.UPSTREAM_FAILED
        return Decision.START if all_final else Decision.WAIT
    # one_succeeded / one_failed
    if any(s == target for s in final):
        return Decision.START
    return Decision.UPSTREAM_FAILED if all_final else Decision.WAIT


def describe_failure(policy: TriggerPolicy | str | None, statuses: Mapping[str, Status | str | None]) -> str:
    """A human message for an ``upstream_failed`` decision: the policy and what the upstreams ended as."""
    policy = parse_policy(policy)
    parts = ", ".join(f"{name}={status}" for name, status in sorted(statuses.items()) if status is not None)
    return f"trigger policy {policy.value} cannot be met: {parts}"
