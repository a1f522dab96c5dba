"""Approvals and custom events from another process (``polynb approve|invalidate RUN``, ``polynb emit``).

They travel like ``polynb stop``: over the control socket of the engine that owns the run (``control``), which
records them in the store (``control.answer_event``), in its own turn, so the decision they trigger is made at
once and exactly once.

* An approval of a run whose engine is gone is written to the store directly: the next engine that adopts
  the run (``polynb attach``) reads its events back into ``emitted`` and starts it.
* A custom event (``project_custom_event`` / ``org_custom_event``) goes to every live engine on this host
  that runs a DAG; each records it on its DAGs that are not final (what ``{ref: dag, ...}`` awaits). An event
  emitted while no DAG runs is not recorded anywhere: there is nothing it could start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from polynb.lifecycle import CUSTOM_EVENT_KINDS, FINAL
from polynb.scheduler.control import ControlError, request
from polynb.scheduler.ownership import OWNER_KEY, new_owner, owner_alive, shown_pid
from polynb.scheduler.readiness import APPROVED_EVENT, INVALIDATED_EVENT
from polynb.store import RunRecord, Store, root_of

logger = logging.getLogger(__name__)


# -- client side ------------------------------------------------------------------------------------------


def awaits_approval(record: RunRecord) -> bool:
    """Does this run's stored plan say ``isApproved: false`` (the operation's, else its component's)?"""
    plan = record.meta.get("plan")
    if not isinstance(plan, Mapping):
        return False
    for part in ("operation", "component"):
        spec = plan.get(part)
        value = spec.get("isApproved") if isinstance(spec, Mapping) else None
        if value is not None:
            return value is False
    return False


def approval_targets(store: Store, run: RunRecord) -> list[RunRecord]:
    """What approving ``run`` approves: the run itself, or for a DAG every op of it waiting for an approval."""
    if run.kind != "dag":
        return [run]
    return [r for r in store.children(run.uuid) if r.status.value == "created" and awaits_approval(r)]


def approve(
    store: Store, run: RunRecord, *, approved: bool = True, actor: str | None = None
) -> Literal["engine", "store"]:
    """Approve (or invalidate) ``run`` from any process; return how it was delivered."""
    if run.status in FINAL:
        verb = "approve" if approved else "invalidate"
        raise ControlError(f"{run.name} ({run.uuid}) is {run.status.value} already: nothing to {verb}")
    root = root_of(store, run)
    owner = root.meta.get(OWNER_KEY)
    me = new_owner()
    if owner_alive(owner, me=me):
        assert owner is not None
        if owner.get("host") != me["host"]:
            raise ControlError(f"run {root.uuid} is managed by an engine on host {owner.get('host')}; approve it there")
        body = {"cmd": "approve", "run": run.uuid, "approved": approved, "actor": actor}
        try:
            answer = request(owner, body)
        except OSError as exc:
            raise ControlError(f"the engine in process {shown_pid(owner)} does not take commands ({exc})") from None
        if not answer.get("ok"):
            raise ControlError(str(answer.get("error") or "the engine refused the request"))
        return "engine"
    kind = APPROVED_EVENT if approved else INVALIDATED_EVENT
    store.append_event(run.uuid, kind, {"actor": actor} if actor else {})
    return "store"


def emit(store: Store, kind: str, payload: Mapping[str, Any], *, skip_pid: int | None = None) -> list[int]:
    """Send a custom event to every live engine on this host that runs a DAG (but those of process
    ``skip_pid``, which the caller reached directly); the seqs recorded."""
    if kind not in CUSTOM_EVENT_KINDS:
        raise ControlError(f"{kind}: only {', '.join(sorted(CUSTOM_EVENT_KINDS))} can be emitted")
    me = new_owner()
    seen: set[tuple[Any, Any]] = set()
    seqs: list[int] = []
    for run in store.unfinished_runs():
        if run.kind != "dag" or run.dag_uuid is not None:
            continue
        owner = run.meta.get(OWNER_KEY)
        if not isinstance(owner, Mapping) or owner.get("host") != me["host"] or not owner_alive(owner, me=me):
            continue
        key = (owner.get("pid"), owner.get("start"))
        if key in seen or owner.get("pid") == skip_pid:
            continue
        seen.add(key)
        try:
            answer = request(owner, {"cmd": "emit", "kind": kind, "payload": dict(payload)})
        except OSError as exc:
            logger.warning("the engine in process %s does not take commands (%s)", shown_pid(owner), exc)
            continue
        if not answer.get("ok"):
            raise ControlError(str(answer.get("error") or "the engine refused the event"))
        seqs.extend(int(s) for s in answer.get("seqs", ()))
    return seqs
