"""Run statuses and the rules for moving between them (Polyaxon's ``V1Statuses`` and ``LifeCycle``).

Shared by the scheduler, the executors and the store, so it imports nothing from polynb.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Polyaxon's 20 statuses. ``DONE`` is a pseudo-status for triggers, hooks and events: never stored."""

    CREATED = "created"
    RESUMING = "resuming"
    ON_SCHEDULE = "on_schedule"
    COMPILED = "compiled"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    STARTING = "starting"
    RUNNING = "running"
    PROCESSING = "processing"
    STOPPING = "stopping"
    FAILED = "failed"
    STOPPED = "stopped"
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    WARNING = "warning"
    UNSCHEDULABLE = "unschedulable"
    UPSTREAM_FAILED = "upstream_failed"
    RETRYING = "retrying"
    UNKNOWN = "unknown"
    DONE = "done"


PIPELINE_KINDS: frozenset[str] = frozenset({"dag", "matrix", "schedule"})
"""Kinds of the runs whose children (``dag_uuid``) are runs under them: a DAG's ops, a sweep's trials, a
schedule's ticks (Polyaxon's ``has_pipeline`` kinds polynb runs)."""

FINAL: frozenset[Status] = frozenset(
    {Status.FAILED, Status.UPSTREAM_FAILED, Status.STOPPED, Status.SKIPPED, Status.SUCCEEDED}
)
"""Final ("done") statuses: once a run has one, it never changes again."""

PENDING_VALUES: frozenset[Status] = frozenset({Status.CREATED, Status.ON_SCHEDULE, Status.RESUMING})
COMPILABLE_VALUES: frozenset[Status] = PENDING_VALUES | {Status.RETRYING}
ALL_PENDING_VALUES: frozenset[Status] = COMPILABLE_VALUES | {Status.COMPILED, Status.QUEUED}
RUNNING_VALUES: frozenset[Status] = frozenset({Status.SCHEDULED, Status.STARTING, Status.PROCESSING, Status.RUNNING})
"""Statuses during which the run holds resources; the first one reached sets ``started_at``."""
WARNING_VALUES: frozenset[Status] = frozenset({Status.UNSCHEDULABLE, Status.WARNING, Status.UNKNOWN})

SUBMITTABLE_VALUES: frozenset[Status] = COMPILABLE_VALUES | {Status.COMPILED}
"""Statuses from which a run may be claimed for submission to an executor (see ``Store.claim``)."""

STORABLE: frozenset[Status] = frozenset(Status) - {Status.DONE}


def is_final(status: Status | str) -> bool:
    """True for a final status. ``done`` is not one: it is the pseudo-status that stands for all of them."""
    return status in FINAL


STATUS_EVENT_PREFIX = "run_status_"
"""Status events are ``run_status_<status>``; every other event kind (artifacts, alerts, ...) has no status."""


def event_kind(status: Status | str) -> str:
    """The event emitted when a run reaches ``status``: ``run_status_<status>``."""
    return STATUS_EVENT_PREFIX + Status(status).value


DONE_EVENT = event_kind(Status.DONE)
"""Logged with a run's final status: what ``run_status_done`` triggers and hooks wait for."""


def is_status_event(kind: str) -> bool:
    """A status event (``run_status_done`` included)."""
    return kind.startswith(STATUS_EVENT_PREFIX)


def status_of_event(kind: str) -> str:
    """``run_status_running`` -> ``running`` (``done`` for the done event); other kinds are returned as they are."""
    return kind.removeprefix(STATUS_EVENT_PREFIX)


REASON_STOPPED = "StopRequested"
"""The reason of every status a stop asked by a user or a program writes (``stopping``, ``stopped``)."""


def can_transition(old: Status | str | None, new: Status | str) -> bool:
    """Whether a run in ``old`` (None: not created yet) may move to ``new``.

    Polyaxon's guard: a final status is never overwritten; from ``stopping`` only a final status is
    accepted; the same status again is not a transition; ``created`` is only ever the first status;
    ``done`` is never a run's status.
    """
    new = Status(new)
    if new == Status.DONE:
        return False
    if old is None:
        return new == Status.CREATED
    old = Status(old)
    if old == new or old in FINAL or new == Status.CREATED:
        return False
    return not (old == Status.STOPPING and new not in FINAL)


# -- event kinds beyond statuses: where each comes from (docs/semantics.md, "Events") ----------------------

RUN_EVENT_SOURCES: dict[str, str] = {
    "run_new_artifacts": "polynb.tracking.log_artifact() inside the op",
    "model_version_new_metric": "polynb.tracking.log_metrics() / log_model_version() inside the op",
    "alert_info": "polynb.tracking.alert('info', ...) inside the op",
    "alert_warning": "polynb.tracking.alert('warning', ...) inside the op",
    "alert_critical": "polynb.tracking.alert('critical', ...) inside the op",
    "run_approved_actor": "polynb approve RUN, handle.approve() or the widget's Approve button",
    "run_invalidated_actor": "polynb invalidate RUN or handle.invalidate()",
    "project_custom_event": "polynb.tracking.emit() inside the op; polynb.emit() / polynb emit for `ref: dag`",
    "org_custom_event": "polynb.tracking.emit(org=True) inside the op; polynb.emit(org=True) for `ref: dag`",
    "connection_git_commit": "a git connection (a local repository or a remote) under `polynb watch`",
    "connection_dataset_version": (
        "a host_path connection (a new file in the folder) or a bucket (s3, gcs, wasb: a new object under its "
        "prefix) under `polynb watch`"
    ),
    "connection_registry_image": "a registry connection (a new tag of an image) under `polynb watch`",
}
"""Non-status kinds that have a source, and what produces them."""

CUSTOM_EVENT_KINDS = frozenset({"project_custom_event", "org_custom_event"})
"""Kinds a trigger may await on ``ref: dag``: emitted from a notebook cell or a terminal to the running DAG."""

CONNECTION_EVENT_KINDS = frozenset({"connection_git_commit", "connection_dataset_version", "connection_registry_image"})
"""Kinds a watched connection emits (``ref: connections.NAME``): a pipeline whose top-level ``events`` await them
runs once per event under ``polynb watch``."""
CONNECTION_REF_PREFIX = "connections."
CONNECTION_KIND_EVENTS: dict[str, str] = {
    "git": "connection_git_commit",
    "host_path": "connection_dataset_version",
    "s3": "connection_dataset_version",
    "gcs": "connection_dataset_version",
    "wasb": "connection_dataset_version",
    "registry": "connection_registry_image",
}
"""The kind of event each watchable connection kind emits (``polynb.scheduler.sources.kinds`` watches them)."""
CONNECTION_PAYLOAD_KEYS: dict[str, frozenset[str]] = {
    "connection_git_commit": frozenset({"connection", "sha", "branch", "url", "message"}),
    "connection_dataset_version": frozenset(
        {"connection", "path", "relative_path", "folder", "key", "bucket", "size", "etag", "last_modified"}
    ),
    "connection_registry_image": frozenset({"connection", "image", "tag", "registry", "reference"}),
}
"""What each connection kind's events carry (docs/semantics.md, "Reactive pipelines"): an input named like one
of these (or ``event``, the whole payload) is given its value by the event, under ``polynb watch`` and in a DAG."""

UNSUPPORTED_EVENT_KINDS: dict[str, str] = {}
"""Kinds ``polynb check`` refuses, with the reason: none today (every kind of Polyaxon's V1EventKind has a
source); kept so a kind added upstream is refused with a reason until it has one."""
