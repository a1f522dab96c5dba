"""Hook selection and the default context a hook receives from its main run.

Pure logic. A hook runs after its main run's final status (after the last retry) when its ``trigger``
matches that status (``done`` or no trigger: any final status) and its ``conditions`` hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from polynb.lifecycle import Status, is_final

HOOK_TRIGGERS: frozenset[Status] = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.STOPPED, Status.SKIPPED, Status.UPSTREAM_FAILED, Status.DONE}
)

DEFAULT_CONTEXT_KEYS = ("name", "uuid", "kind", "status", "inputs", "outputs", "duration", "wait_time")


def trigger_matches(trigger: object, status: Status | str) -> bool:
    """Whether a hook with ``trigger`` (a status name, an enum of one, or None) runs for a final ``status``."""
    status = Status(status)
    if not is_final(status):
        return False
    if trigger is None:
        return True
    value = Status(str(getattr(trigger, "value", trigger)))
    return value == Status.DONE or value == status


class _NamedHook(Protocol):
    @property
    def hub_ref(self) -> str: ...
    @property
    def trigger(self) -> object: ...


def _trigger_name(hook: _NamedHook) -> str:
    trigger = hook.trigger
    return str(getattr(trigger, "value", trigger)) if trigger is not None else Status.DONE.value


def hook_run_name(main_name: str, hooks: Sequence[_NamedHook], index: int) -> str:
    """The name of the run of ``hooks[index]`` of the run ``main_name``: distinct among its hooks, and stable.

    ``<main>-<hub>`` (``hubRef`` without its tag, ``/`` as ``-``) when one hook uses that component; when several
    do, ``-on-<trigger>`` follows, and when they share the trigger too, their 1-based rank among those
    (``train-webhook-on-failed-2``). Only the op's hook list decides it, so a run keeps its name whichever hooks
    fire and whichever engine creates it.
    """

    def hub(hook: _NamedHook) -> str:
        return hook.hub_ref.split(":")[0].replace("/", "-")

    hook = hooks[index]
    name = f"{main_name}-{hub(hook)}"
    same_hub = [h for h in hooks if hub(h) == hub(hook)]
    if len(same_hub) == 1:
        return name
    trigger = _trigger_name(hook)
    name = f"{name}-on-{trigger}"
    if Counter(_trigger_name(h) for h in same_hub)[trigger] == 1:
        return name
    rank = sum(1 for h in hooks[:index] if hub(h) == hub(hook) and _trigger_name(h) == trigger) + 1
    return f"{name}-{rank}"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def default_context(
    *,
    name: str,
    uuid: str,
    kind: str,
    status: Status | str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    created_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
) -> dict[str, Any]:
    """The main run's context passed to a hook (as context-only params) unless ``disableDefaults``.

    ``wait_time`` is created → started, ``duration`` started → finished (created → finished for a run that
    never started), both in seconds, like Polyaxon's ``set_started_at``/``set_finished_at``.
    """
    return {
        "name": name,
        "uuid": uuid,
        "kind": kind,
        "status": Status(status).value,
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "duration": seconds_between(started_at or created_at, finished_at),
        "wait_time": seconds_between(created_at, started_at),
    }
