"""Hook selection and the default context a hook receives from its main run.

Pure logic. A hook runs after its main run's final status (after the last retry) when its ``trigger``
matches that status (``done`` or no trigger: any final status) and its ``conditions`` hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
