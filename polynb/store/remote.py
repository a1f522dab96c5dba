"""Where a run is in a bucket artifacts store: the one place that says it (the local executor's sync, the log
archive, reads from another ``POLYNB_HOME``).

Today's layout, the same as a host path's: ``<schema.bucket>/<run uuid>/{outputs,logs,...}``. A run created
while a bucket was the ``artifactsStore`` records it in its meta (:data:`ARTIFACTS_STORE_KEY`): the store's
connection name, kind and URL as they were then, never its credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from polynb.store.paths import check_uuid

ARTIFACTS_STORE_KEY: Final = "artifacts_store"
"""The run meta key of the bucket store the run is synced to: ``{"name", "kind", "url", "every"}``."""


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """A bucket artifacts store as a run records it."""

    name: str
    """The connection's name (for messages, and to find its credentials in the configuration)."""
    kind: str
    """``s3``, ``gcs`` or ``wasb``."""
    url: str
    """The connection's ``schema.bucket`` (``s3://name/prefix``)."""
    every: float
    """Seconds between two syncs while the run runs."""

    def run_url(self, uuid: str) -> str:
        """The run's folder in the store: ``<url>/<uuid>``."""
        return run_url(self.url, uuid)

    def to_meta(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "url": self.url, "every": self.every}


def run_url(store_url: str, uuid: str) -> str:
    """``<store_url>/<uuid>`` (one slash between, whatever the URL ends with)."""
    return f"{store_url.rstrip('/')}/{check_uuid(uuid)}"


def recorded_store(meta: Mapping[str, Any]) -> StoreRecord | None:
    """The bucket store recorded in a run's meta, None for a run kept only on this machine."""
    value = meta.get(ARTIFACTS_STORE_KEY)
    if not isinstance(value, Mapping) or not isinstance(value.get("url"), str):
        return None
    every = value.get("every")
    return StoreRecord(
        name=str(value.get("name") or ""),
        kind=str(value.get("kind") or "s3"),
        url=str(value["url"]),
        every=float(every) if isinstance(every, int | float) and every > 0 else 5.0,
    )


@dataclass(frozen=True)
class StoreAccess:
    """A run's recorded store with the connection entry that reaches it from here (its ``env``: endpoint,
    keys), as the sync process gets it (``POLYNB_STORE_CONNECTION`` and its environment)."""

    record: StoreRecord
    connection: Mapping[str, Any]

    def env(self) -> dict[str, str]:
        """The connection's ``env`` as variables (they come before this process's own in the sync)."""
        entries = self.connection.get("env") or ()
        return {str(e["name"]): str(e.get("value", "")) for e in entries if isinstance(e, Mapping) and "name" in e}


def access(record: StoreRecord, configured: Mapping[str, Any] | None) -> StoreAccess:
    """``record`` reached with the configured connection of the same name (its env), else with this machine's
    environment only (the configuration changed since the run was created)."""
    if configured is not None and configured.get("name") == record.name:
        return StoreAccess(record, configured)
    return StoreAccess(record, {"name": record.name, "kind": record.kind, "schema": {"bucket": record.url}})
