"""Which source watches a connection of each kind (``polynb watch``; Polyaxon's ``V1ConnectionKind`` names)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polynb.buckets import BUCKET_KINDS
from polynb.scheduler.sources.buckets import BucketSource
from polynb.scheduler.sources.external import FolderSource, GitSource, RegistrySource, Source

SOURCE_KINDS: dict[str, type[Source]] = {"git": GitSource, "host_path": FolderSource, "registry": RegistrySource}
"""Connection kinds that can be watched, besides the buckets (``s3``, ``gcs``, ``wasb``: :class:`BucketSource`)."""


def source_for(connection: Mapping[str, Any]) -> Source:
    """The source watching one ``connections:`` entry; ``ValueError`` names what is wrong with it."""
    name, kind = str(connection.get("name")), str(connection.get("kind"))
    if kind in BUCKET_KINDS:
        return BucketSource.of(connection)
    cls = SOURCE_KINDS.get(kind)
    if cls is None:
        watchable = ", ".join([*SOURCE_KINDS, *BUCKET_KINDS])
        raise ValueError(f"connection {name}: kind `{kind}` cannot be watched (watchable: {watchable})")
    poll = connection.get("poll")
    return cls(name, connection.get("schema") or {}, float(poll) if poll is not None else None)
