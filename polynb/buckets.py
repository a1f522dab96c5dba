"""Buckets (``s3``, ``gcs``, ``wasb`` connections) read from this machine through fsspec: listing the objects
under a connection's ``schema.bucket`` (``s3://name/prefix``), for ``polynb watch`` (a new object is a
``connection_dataset_version`` event) and ``polynb connections check`` (the bucket answers).

Credentials come as in Polyaxon's connections, from environment variables: the connection's ``env`` first,
then this process's environment (a connection's ``secret`` is the cluster's: nothing here can read it).
``s3`` reads ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_REGION``/``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` (an S3-compatible
server: MinIO, Ceph, moto); without a key, boto's own chain (``~/.aws/credentials``, an instance role).
``gcs`` reads ``GOOGLE_APPLICATION_CREDENTIALS`` and ``GOOGLE_CLOUD_PROJECT`` (``gcsfs``, not a dependency);
``wasb`` (``wasbs://container@account.blob.core.windows.net/prefix``) reads ``AZURE_STORAGE_ACCOUNT_KEY``,
``AZURE_STORAGE_CONNECTION_STRING`` or ``AZURE_STORAGE_SAS_TOKEN`` (or Polyaxon's ``AZURE_ACCOUNT_KEY``,
``AZURE_CONNECTION_STRING``; ``adlfs``, not a dependency).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

BUCKET_KINDS: Final = ("s3", "gcs", "wasb")
"""Connection kinds that are buckets (Polyaxon's ``V1BucketConnection``)."""

_PROTOCOLS: Final = {"s3": "s3", "gcs": "gcs", "wasb": "abfs"}
"""The fsspec protocol listing each kind (``s3fs``, ``gcsfs``, ``adlfs``)."""
_PACKAGES: Final = {"s3": "s3fs", "gcs": "gcsfs", "wasb": "adlfs"}
_SCHEMES: Final = {"s3": ("s3", "s3a"), "gcs": ("gs", "gcs"), "wasb": ("wasb", "wasbs", "abfs", "abfss", "az")}

S3_CONNECT_TIMEOUT: Final = 10
S3_READ_TIMEOUT: Final = 60


class BucketError(Exception):
    """The bucket could not be listed (it is missing, the server does not answer, the credentials are refused)."""


@dataclass(frozen=True, slots=True)
class BucketObject:
    key: str
    """The object's key in its bucket (``prefix/file.csv``)."""
    url: str
    """``s3://bucket/prefix/file.csv``."""
    size: int
    etag: str | None
    last_modified: datetime | None


@dataclass
class Bucket:
    """One bucket connection, as this machine can reach it."""

    name: str
    kind: str
    url: str
    """``schema.bucket`` as written."""
    scheme: str
    bucket: str
    prefix: str
    """Under the bucket, without slashes at either end ('' for the whole bucket)."""
    options: dict[str, Any] = field(default_factory=dict)
    """fsspec's storage options (credentials, endpoint)."""
    secret: bool = False
    """The connection names a secret (the cluster's credentials, which this machine cannot read)."""
    _fs: Any = field(default=None, repr=False)

    @property
    def root(self) -> str:
        """The listed path, as fsspec names it (``bucket/prefix``)."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    @property
    def endpoint(self) -> str | None:
        return self.options.get("endpoint_url")

    def filesystem(self) -> Any:
        if self._fs is None:
            import fsspec

            try:
                cls = fsspec.get_filesystem_class(_PROTOCOLS[self.kind])
            except (ImportError, ValueError) as exc:
                raise BucketError(f"{self.kind} buckets need the `{_PACKAGES[self.kind]}` package: {exc}") from None
            # Our own instance (no cache shared with other connections) that lists the bucket anew each time.
            fs = cls(skip_instance_cache=True, use_listings_cache=False, **self.options)
            if self.kind == "s3":
                fs.retries = 1  # the watch's loop backs off; s3fs's own retries would only delay the warning
            self._fs = fs
        return self._fs

    def objects(self) -> list[BucketObject]:
        """Every object under the prefix (folders' marker objects left out)."""
        fs = self.filesystem()
        try:
            found = fs.find(self.root, detail=True)
        except Exception as exc:  # any failure of the listing (network, auth, missing bucket) is the bucket's
            raise BucketError(self._describe(exc)) from None
        objects = []
        for path, info in found.items():
            if info.get("type") == "directory" or str(path).endswith("/"):
                continue
            key = str(path).split("/", 1)[1] if "/" in str(path) else str(path)
            url = f"{self.scheme}://{self.bucket}/{key}"
            size = int(info.get("size") or 0)
            objects.append(BucketObject(key, url, size, _etag(info), _modified(info)))
        return objects

    def check(self) -> str:
        """What answered (raises :class:`BucketError` when the bucket cannot be listed)."""
        fs = self.filesystem()
        try:
            fs.ls(self.bucket, detail=False)
        except Exception as exc:
            raise BucketError(self._describe(exc)) from None
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"{self.scheme}://{self.bucket}{where} answers"

    def describe(self, exc: Exception) -> str:
        """One line saying what failed on this bucket (the bucket, the endpoint, why)."""
        return self._describe(exc)

    def _describe(self, exc: Exception) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        what = f"{self.scheme}://{self.root}{where}"
        text = str(exc).strip() or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            return f"{what}: no such bucket ({text})"
        if isinstance(exc, PermissionError) or "credentials" in text.lower():
            hint = " (the connection's secret is on the cluster: give the keys in its env here)" if self.secret else ""
            return f"{what}: credentials refused or missing: {text}{hint}"
        return f"{what}: {text}"


def bucket_of(connection: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Bucket:
    """The bucket of one ``connections:`` entry; ``ValueError`` says what is wrong with its ``schema.bucket``."""
    name, kind = str(connection.get("name")), str(connection.get("kind"))
    if kind not in BUCKET_KINDS:
        raise ValueError(f"connection {name}: a {kind} connection is not a bucket ({', '.join(BUCKET_KINDS)})")
    written = (connection.get("schema") or {}).get("bucket")
    if not isinstance(written, str) or not written.strip():
        raise ValueError(f"connection {name}: a {kind} connection needs `schema.bucket` (e.g. s3://name/prefix)")
    parts = urllib.parse.urlsplit(written.strip())
    scheme = parts.scheme or _SCHEMES[kind][0]
    if scheme not in _SCHEMES[kind]:
        raise ValueError(
            f"connection {name}: bucket {written}: the URL of a {kind} bucket starts with "
            + " or ".join(f"{s}://" for s in _SCHEMES[kind])
        )
    if parts.scheme:
        host, path = parts.netloc, parts.path
    else:
        host, _, path = written.strip().partition("/")
    env = {**(os.environ if environ is None else environ), **_connection_env(connection)}
    options: dict[str, Any]
    if kind == "wasb":
        container, _, account_host = host.partition("@")
        account = account_host.split(".", 1)[0]
        host = container
        options = _azure_options(account, env)
    elif kind == "gcs":
        options = {k: v for k, v in (("token", env.get("GOOGLE_APPLICATION_CREDENTIALS")),
                                     ("project", env.get("GOOGLE_CLOUD_PROJECT"))) if v}  # fmt: skip
    else:
        options = _s3_options(env)
    if not host:
        raise ValueError(f"connection {name}: bucket {written} names no bucket")
    return Bucket(name=name, kind=kind, url=written, scheme=scheme, bucket=host, prefix=path.strip("/"),
                  options=options, secret=bool(connection.get("secret")))  # fmt: skip


def has_credentials(connection: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> bool:
    """Whether this machine has credentials for the bucket (its env, this process's, the SDK's usual files)."""
    env = {**(os.environ if environ is None else environ), **_connection_env(connection)}
    kind = connection.get("kind")
    home = Path(env.get("HOME") or Path.home())
    if kind == "s3":
        files = [Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")]
        return any(env.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"))\
            or any(f.is_file() for f in files)  # fmt: skip
    if kind == "gcs":
        adc = home / ".config" / "gcloud" / "application_default_credentials.json"
        return bool(env.get("GOOGLE_APPLICATION_CREDENTIALS")) or adc.is_file()
    return any(env.get(k) for k in ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_ACCOUNT_KEY", "AZURE_STORAGE_CONNECTION_STRING",
                                    "AZURE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN"))  # fmt: skip


def _connection_env(connection: Mapping[str, Any]) -> dict[str, str]:
    return {str(e["name"]): str(e.get("value", "")) for e in connection.get("env") or () if isinstance(e, Mapping)}


def _s3_options(env: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for option, variable in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"),
                             ("token", "AWS_SESSION_TOKEN"), ("profile", "AWS_PROFILE")):  # fmt: skip
        if env.get(variable):
            options[option] = env[variable]
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    options["config_kwargs"] = {"connect_timeout": S3_CONNECT_TIMEOUT, "read_timeout": S3_READ_TIMEOUT,
                                "retries": {"max_attempts": 1}}  # fmt: skip
    return options


def _azure_options(account: str, env: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"account_name": account} if account else {}
    for option, variables in (("account_key", ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_ACCOUNT_KEY")),
                              ("connection_string", ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_CONNECTION_STRING")),
                              ("sas_token", ("AZURE_STORAGE_SAS_TOKEN",))):  # fmt: skip
        value = next((env[v] for v in variables if env.get(v)), None)
        if value:
            options[option] = value
    return options


def _etag(info: Mapping[str, Any]) -> str | None:
    value = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    return str(value).strip('"') if value else None


def _modified(info: Mapping[str, Any]) -> datetime | None:
    value = info.get("LastModified") or info.get("last_modified") or info.get("updated") or info.get("mtime")
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None
