"""``connection_dataset_version`` from a bucket (an ``s3``, ``gcs`` or ``wasb`` connection): a new object under
``schema.bucket``'s prefix, listed through fsspec (``polynb.buckets``) every ``poll`` seconds.

An object is named for good by its key and its ETag (its size and time where a store gives no ETag): a new
object is an event, and so is an object written again with other content; the same object listed again is
not (the watch's cursor in the store drops the ids it has). An object is whole once listed (a PUT is atomic),
so there is no half-written file to leave out, only the folders' marker objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from polynb.buckets import Bucket, BucketError, BucketObject, bucket_of
from polynb.scheduler.sources.external import Source, SourceError, SourceEvent


class BucketSource(Source):
    """Polled, as any remote source: every ``poll`` seconds, backed off after errors (``SourceLoop``)."""

    kind = "connection_dataset_version"

    def __init__(self, name: str, schema: Mapping[str, Any], poll: float | None, *, bucket: Bucket) -> None:
        super().__init__(name, schema, poll)
        self.bucket = bucket

    @classmethod
    def of(cls, connection: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> BucketSource:
        bucket = bucket_of(connection, environ)
        poll = connection.get("poll")
        return cls(bucket.name, connection.get("schema") or {}, float(poll) if poll is not None else None,
                   bucket=bucket)  # fmt: skip

    def poll(self, last_id: str | None) -> list[SourceEvent]:
        try:
            objects = self.bucket.objects()
        except BucketError as exc:
            raise SourceError(str(exc)) from None
        never = datetime.min.replace(tzinfo=UTC)
        objects.sort(key=lambda o: (o.last_modified or never, o.key))
        return [self.event(object_id(o), self._payload(o)) for o in objects]

    def _payload(self, obj: BucketObject) -> dict[str, Any]:
        prefix = self.bucket.prefix
        relative = obj.key[len(prefix) + 1 :] if prefix and obj.key.startswith(prefix + "/") else obj.key
        return {
            "path": obj.url,
            "key": obj.key,
            "relative_path": relative,
            "bucket": self.bucket.url,
            "size": obj.size,
            "etag": obj.etag,
            "last_modified": obj.last_modified.isoformat() if obj.last_modified else None,
        }


def object_id(obj: BucketObject) -> str:
    """``key@etag``: the same key written again with other content is another event."""
    if obj.etag:
        return f"{obj.key}@{obj.etag}"
    when = obj.last_modified.isoformat() if obj.last_modified else ""
    return f"{obj.key}@{obj.size}:{when}"
