"""Is a pending op ready to start, to be skipped, to be marked upstream_failed, or must it keep waiting?

Pure decision logic combining, in this order (each rule is final once it fires, DESIGN §3):

1. **Event triggers** — the op waits until *every* trigger has fired; the kinds of one trigger are
   alternatives. A trigger whose upstream reached a final status without emitting any awaited kind can
   never fire: the op is ``skipped``, with a reason naming the upstream, its final status and the kinds.
2. **skipOnUpstreamSkip** — a skipped upstream (any kind of edge) makes the op ``skipped``.
3. **Trigger policy** — decided over the *policy upstreams* only (see ``OpRequirements``), as soon as
   the outcome is certain (``triggers.decide``).

How an event-triggered op combines with its other upstreams (our decision, documented in the
``polynb.scheduler`` package docstring): the op starts when every event trigger has fired **and** the
trigger policy over its non-event upstreams allows. An upstream referenced by an event trigger is *not*
a policy upstream, even when a param also refers to it (``globals.uuid`` of the experiment is there as
soon as it exists), unless it is listed in ``dependencies``: an explicit dependency is always waited for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from polynb.lifecycle import Status, is_final
from polynb.scheduler.triggers import Counts, Decision, TriggerPolicy, decide_counts, describe_failure, parse_policy

REASON_EVENT_NOT_EMITTED = "UpstreamEventNotEmitted"
REASON_UPSTREAM_SKIPPED = "UpstreamSkipped"
REASON_UPSTREAM_FAILED = "UpstreamFailed"
REASON_TRIGGERED = "TriggerMet"
REASON_INVALIDATED = "Invalidated"
APPROVED_EVENT = "run_approved_actor"
INVALIDATED_EVENT = "run_invalidated_actor"


@dataclass(frozen=True, slots=True)
class EventWait:
    """One event trigger: fires when ``ref`` emits any of ``kinds`` (``run_status_*`` event names)."""

    ref: str
    kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class OpRequirements:
    """What an op waits for, extracted once from its spec."""

    upstream: frozenset[str]
    """Every upstream: dependencies, param refs and event refs."""
    policy_upstream: frozenset[str]
    """Upstreams the trigger policy is decided over."""
    events: tuple[EventWait, ...] = ()
    trigger: TriggerPolicy = TriggerPolicy.ALL_SUCCEEDED
    skip_on_upstream_skip: bool = False
    approval: str | None = None
    """``isApproved: false``: the op's own name; it waits for its own ``run_approved_actor`` event (and is
    ``skipped`` on ``run_invalidated_actor``) once everything else allows it to start."""


@dataclass(frozen=True, slots=True)
class UpstreamState:
    """What the scheduler knows of one upstream run: its status and every event kind it emitted."""

    status: Status | None
    emitted: frozenset[str] = field(default_factory=frozenset)


class Action(StrEnum):
    WAIT = "wait"
    START = "start"
    SKIP = "skipped"
    UPSTREAM_FAILED = "upstream_failed"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str = ""
    message: str = ""


WAIT = Verdict(Action.WAIT)


def requirements(
    *,
    upstream: Iterable[str],
    dependencies: Iterable[str],
    events: Iterable[EventWait],
    trigger: object = None,
    skip_on_upstream_skip: bool | None = False,
    approval: str | None = None,
) -> OpRequirements:
    """Build an op's requirements; see the module docstring for which upstreams the policy covers."""
    events = tuple(events)
    upstream_set = frozenset(upstream) | {e.ref for e in events}
    event_refs = {e.ref for e in events}
    explicit = frozenset(dependencies)
    policy_upstream = frozenset(u for u in upstream_set if u in explicit or u not in event_refs)
    return OpRequirements(
        upstream=upstream_set,
        policy_upstream=policy_upstream,
        events=events,
        trigger=parse_policy(trigger),
        skip_on_upstream_skip=bool(skip_on_upstream_skip),
        approval=approval,
    )


def fired(wait: EventWait, state: UpstreamState | None) -> bool:
    return state is not None and not wait.kinds.isdisjoint(state.emitted)


def missed(wait: EventWait, state: UpstreamState | None) -> bool:
    """True when the upstream is final and never emitted an awaited kind: the trigger can never fire."""
    return (
        state is not None
        and state.status is not None
        and is_final(state.status)
        and wait.kinds.isdisjoint(state.emitted)
    )


@dataclass(slots=True)
class Tally:
    """What the verdict needs of an op's upstreams besides its few event refs, as counts: the policy
    upstreams' :class:`Counts` and how many upstreams were skipped. The engine keeps one per pending op and
    updates it in O(1) per upstream status change, so a 1,000-upstream fan-in is not rescanned per event."""

    policy: Counts
    skipped: int = 0

    @classmethod
    def of(cls, req: OpRequirements, states: Mapping[str, UpstreamState]) -> Tally:
        tally = cls(Counts(total=len(req.policy_upstream)))
        for name in req.upstream:
            state = states.get(name)
            tally.moved(req, name, None, state.status if state is not None else None)
        return tally

    def moved(self, req: OpRequirements, name: str, old: Status | None, new: Status | None) -> None:
        """Upstream ``name`` went from ``old`` to ``new`` (``None``: not created)."""
        if name in req.policy_upstream:
            self.policy.add(old, -1)
            self.policy.add(new)
        if name in req.upstream:
            self.skipped += (new == Status.SKIPPED) - (old == Status.SKIPPED)


StateOf = Callable[[str], "UpstreamState | None"]
"""What is known of one upstream by name (``None``: not created yet)."""


def evaluate(req: OpRequirements, states: Mapping[str, UpstreamState]) -> Verdict:
    """The verdict for a pending op given what is known of its upstreams (missing: not created yet)."""
    return evaluate_tallied(req, Tally.of(req, states), states.get)


def evaluate_tallied(req: OpRequirements, tally: Tally, state_of: StateOf) -> Verdict:
    """``evaluate`` with the upstreams already counted: ``tally`` must match what ``state_of`` says.

    Only the event refs are looked up on every call; the other upstreams only when a verdict needs a
    message naming them (a skipped upstream, a failed policy), which happens once per op.
    """
    if req.approval is not None:
        own = state_of(req.approval)
        if own is not None and INVALIDATED_EVENT in own.emitted:
            return Verdict(Action.SKIP, REASON_INVALIDATED, "invalidated while waiting for an approval")
    for wait in req.events:
        state = state_of(wait.ref)
        if state is not None and state.status is not None and missed(wait, state):
            kinds = ", ".join(sorted(wait.kinds))
            return Verdict(
                Action.SKIP,
                REASON_EVENT_NOT_EMITTED,
                f"upstream {wait.ref} ended {state.status.value} without emitting {kinds}",
            )

    if req.skip_on_upstream_skip and tally.skipped:
        for name in sorted(req.upstream):
            state = state_of(name)
            if state is not None and state.status == Status.SKIPPED:
                return Verdict(
                    Action.SKIP, REASON_UPSTREAM_SKIPPED, f"upstream {name} was skipped (skipOnUpstreamSkip)"
                )

    decision = decide_counts(req.trigger, tally.policy)
    if decision == Decision.UPSTREAM_FAILED:
        statuses = {name: _status(state_of(name)) for name in req.policy_upstream}
        return Verdict(Action.UPSTREAM_FAILED, REASON_UPSTREAM_FAILED, describe_failure(req.trigger, statuses))
    if decision == Decision.WAIT:
        return WAIT
    if not all(fired(w, state_of(w.ref)) for w in req.events):
        return WAIT
    if req.approval is not None:
        own = state_of(req.approval)
        if own is None or APPROVED_EVENT not in own.emitted:
            return WAIT
    return Verdict(Action.START, REASON_TRIGGERED, _start_message(req))


def _status(state: UpstreamState | None) -> Status | None:
    return state.status if state is not None else None


def _start_message(req: OpRequirements) -> str:
    parts = []
    if req.events:
        parts.append("events " + "; ".join(f"{w.ref}: {'|'.join(sorted(w.kinds))}" for w in req.events))
    if req.policy_upstream:
        parts.append(f"{req.trigger.value} over {', '.join(sorted(req.policy_upstream))}")
    if req.approval is not None:
        parts.append("approved")
    return "ready: " + (", ".join(parts) if parts else "no upstream")
