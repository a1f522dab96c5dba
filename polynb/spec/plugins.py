"""``plugins`` and ``cache``: Polyaxon's per-run switches, parsed and checked field by field.

polynb applies none of the plugins: ``polynb check`` says so for each switch set (a warning where the run is
the same without it, such as ``collectLogs``: polynb always keeps logs), and ``polynb run`` refuses the ones
whose absence changes what the run can do (``docker``, ``tmux``, ``sandbox``, ``ssh``, ``notifications``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from polynb.spec.base import Model, TemplatedSection, int_or_template, is_ref_field

Statuses = Literal["created", "resuming", "on_schedule", "compiled", "queued", "scheduled", "starting", "running",
                   "processing", "stopping", "failed", "stopped", "succeeded", "skipped", "warning", "unschedulable",
                   "upstream_failed", "retrying", "unknown", "done"]  # fmt: skip


def _bool_or_ref(value: Any) -> Any:
    if value is None or isinstance(value, bool) or is_ref_field(value):
        return value
    raise ValueError(f"expected a boolean (true or false), got {value!r}")


class Notification(Model):
    """Send a message through ``connections`` when the run reaches ``trigger``."""

    connections: list[str]
    trigger: Statuses | None = None


class SidecarSettings(Model):
    """Polyaxon's own sidecar (it streams logs and outputs to its API server)."""

    image: str | None = None
    image_tag: str | None = None
    image_pull_policy: str | None = None
    resources: dict[str, Any] | None = None
    sleep_interval: int | None = None
    sync_interval: int | None = None
    monitor_logs: bool | None = None
    monitor_spec: bool | None = None


_SWITCHES = ("auth", "docker", "shm", "tmux", "sandbox", "ssh", "mount_artifacts_store", "collect_artifacts",
             "collect_logs", "collect_resources", "sync_statuses", "auto_resume", "external_host")  # fmt: skip


class Plugins(TemplatedSection):
    auth: bool | str | None = None
    docker: bool | str | None = None
    shm: bool | str | None = None
    tmux: bool | str | None = None
    sandbox: bool | str | None = None
    ssh: bool | str | None = None
    mount_artifacts_store: bool | str | None = None
    collect_artifacts: bool | str | None = None
    collect_logs: bool | str | None = None
    collect_resources: bool | str | None = None
    sync_statuses: bool | str | None = None
    auto_resume: bool | str | None = None
    log_level: str | None = None
    external_host: bool | str | None = None
    sidecar: SidecarSettings | None = None
    notifications: list[Notification] | None = None

    _switches = field_validator(*_SWITCHES, mode="before")(_bool_or_ref)


REFUSED_PLUGINS = {
    "docker": "polynb mounts no Docker socket into runs",
    "tmux": "polynb starts no tmux session in runs",
    "sandbox": "polynb runs no sandbox bootstrap",
    "ssh": "polynb runs no SSH server in runs",
    "notifications": "polynb sends no notifications through connections; use a notifier hook (hubRef: slack...)",
}
"""Plugins whose absence changes what a run can do: ``polynb run`` refuses a run that sets them."""

IGNORED_PLUGINS = {
    "auth": "runs get no Polyaxon API token (polynb has no API server)",
    "shm": "the local executor gives runs the host's /dev/shm",
    "mount_artifacts_store": "runs write to the artifacts path polynb gives them",
    "collect_artifacts": "polynb keeps every run's artifacts",
    "collect_logs": "polynb keeps every run's logs",
    "collect_resources": "polynb records no resource metrics",
    "sync_statuses": "polynb records every status",
    "auto_resume": "polynb does not resume runs from their last checkpoint",
    "external_host": "services are served on the host polynb gives them",
    "log_level": "polynb does not set the run's log level",
    "sidecar": "polynb runs no Polyaxon sidecar",
}
"""Plugins polynb does not apply but whose absence leaves the run's results the same: a warning."""

ALREADY_ON = frozenset({"shm", "mount_artifacts_store", "collect_artifacts", "collect_logs", "sync_statuses"})
"""Plugins that ask for what polynb does anyway when true (a warning when false); the others warn when true."""


class Cache(TemplatedSection):
    """Reuse a previous run's outputs when its cache key matches (``compiler.cache``)."""

    disable: bool | str | None = None
    ttl: int | str | None = None
    io: list[str] | str | None = None
    sections: list[Literal["containers", "init", "connections"]] | str | None = None

    _disable = field_validator("disable", mode="before")(_bool_or_ref)
    _ttl = field_validator("ttl", mode="before")(lambda v: None if v is None else int_or_template(v, "`ttl`"))

    @field_validator("io", "sections", mode="before")
    @classmethod
    def _list_or_ref(cls, value: Any) -> Any:
        if isinstance(value, str) and not is_ref_field(value):
            raise ValueError(f"expected a list, or a `{{{{ ... }}}}` reference, got {value!r}")
        return value
