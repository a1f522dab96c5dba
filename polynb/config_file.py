"""polynb's own configuration file: ``$POLYNB_CONFIG``, else ``$POLYNB_HOME/config.yaml`` (optional).

Today it has one section, ``kubernetes:``, whose keys are those of
:class:`~polynb.executors.kubernetes.settings.KubernetesSettings`::

    kubernetes:
      namespace: ml
      artifacts_claim: polynb-artifacts   # a ReadWriteMany PVC: TensorBoard sees the experiments' outputs
      security_profile: restricted
      keep_finished: false

and ``connections:``, Polyaxon's connection entries (``name``, ``kind``, ``schema``) that ``polynb watch``
watches for ``{ref: connections.NAME, kinds: [...]}`` events (``polynb.scheduler.sources``)::

    connections:
      - {name: repo, kind: git, schema: {url: /src/project, revision: main}}
      - {name: incoming, kind: host_path, schema: {hostPath: /data/incoming}}
      - {name: images, kind: registry, schema: {url: "http://127.0.0.1:5000", image: team/trainer}, poll: 30}
      - {name: landing, kind: s3, schema: {bucket: "s3://team-data/landing"}, poll: 30}   # polynb.buckets

``artifactsStore`` names the connection where runs' artifacts go: a ``volume_claim`` is the Kubernetes artifacts
claim, a ``host_path`` the local executor's artifacts root (:func:`local_artifacts_root`).

The kubernetes section sits at the bottom of the settings' precedence (defaults < this file < ``POLYNB_K8S_*`` < the
command line, the magics or ``polynb.run(kubernetes=...)``; :mod:`polynb.executors.kubernetes.sources`).
Every problem is reported as ``file:line:col: path: message``, like a Polyaxonfile's, and nothing runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from polynb.buckets import BUCKET_KINDS, BucketError, bucket_of, has_credentials
from polynb.spec.errors import SpecError, SpecErrors
from polynb.spec.yaml_loader import Document, parse
from polynb.store.paths import polynb_home
from polynb.store.remote import StoreAccess, StoreRecord

CONFIG_ENV: Final = "POLYNB_CONFIG"
FILENAME: Final = "config.yaml"

Seconds = StrictFloat | StrictInt


class KubernetesSection(BaseModel):
    """The ``kubernetes:`` section; each key is the setting of the same name (unset: not given here)."""

    model_config = ConfigDict(extra="forbid")

    namespace: StrictStr | None = None
    context: StrictStr | None = None
    kubeconfig: StrictStr | None = None
    default_image: StrictStr | None = None
    tools_image: StrictStr | None = None
    git_image: StrictStr | None = None
    store_image: StrictStr | None = None
    store_grace: StrictInt | None = None
    artifacts_claim: StrictStr | None = None
    security_profile: Literal["default", "restricted"] | None = None
    keep_finished: StrictBool | None = None
    native_sidecars: StrictBool | None = None
    port_forward: StrictBool | None = None
    service_port_base: StrictInt | None = None
    deadline_slack: StrictInt | None = None
    pod_start_timeout: Seconds | None = None
    failed_create_timeout: Seconds | None = None
    image_pull_grace: Seconds | None = None
    heartbeat_interval: Seconds | None = None
    lease_seconds: Seconds | None = None
    sweep: StrictBool | None = None


CONNECTION_KINDS: Final = ("volume_claim", "host_path", "s3", "gcs", "wasb", "git", "registry", "custom")
"""Polyaxon's ``V1ConnectionKind`` names that polynb knows (the agent's ``connections:`` kinds)."""

ConnectionKind = Literal["volume_claim", "host_path", "s3", "gcs", "wasb", "git", "registry", "custom"]


class ResourceRef(BaseModel):
    """A connection's ``secret`` or ``configMap``: Polyaxon's ``V1ConnectionResource``. With ``mountPath`` its keys
    are files there (``items``: only those keys); without, they are the container's environment (``envFrom``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: StrictStr
    mount_path: StrictStr | None = Field(default=None, alias="mountPath")
    items: list[StrictStr] | None = None
    default_mode: StrictInt | None = Field(default=None, alias="defaultMode")


class ConnectionEnv(BaseModel):
    """One ``env`` entry of a connection: a plain ``name``/``value`` (Kubernetes' ``EnvVar`` without
    ``valueFrom``, which the local executor could not honour)."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr
    value: StrictStr = ""


class ConnectionSection(BaseModel):
    """One ``connections:`` entry: Polyaxon's ``V1Connection`` keys (``schema`` holds the kind's own keys, as
    Polyaxon's ``schema_``), plus ``poll``: seconds between two looks at a remote source (polynb's own)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: StrictStr
    kind: ConnectionKind
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    secret: ResourceRef | None = None
    config_map: ResourceRef | None = Field(default=None, alias="configMap")
    env: list[ConnectionEnv] | None = None
    description: StrictStr | None = None
    tags: list[StrictStr] | None = None
    poll: Seconds | None = None


class ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kubernetes: KubernetesSection | None = None
    connections: list[ConnectionSection] | None = None
    artifacts_store: StrictStr | None = Field(default=None, alias="artifactsStore")
    artifacts_sync_interval: StrictFloat | None = Field(default=None, alias="artifactsSyncInterval", gt=0)


DEFAULT_SYNC_INTERVAL: Final = 5.0
"""Seconds between two syncs of a running op's folder to a bucket ``artifactsStore`` (``artifactsSyncInterval``)."""


@dataclass(frozen=True)
class ConfigFile:
    """A loaded configuration file (or none: ``path`` None and nothing set)."""

    path: str | None = None
    kubernetes: Mapping[str, Any] = field(default_factory=dict)
    """The keys the file sets in its ``kubernetes:`` section (only those)."""
    connections: tuple[Mapping[str, Any], ...] = ()
    """The ``connections:`` entries, as written (``schema``, ``configMap``, ``mountPath`` under those names)."""
    artifacts_store: str | None = None
    """``artifactsStore``: the name of the connection where runs' outputs and logs go (None: the default)."""
    artifacts_sync_interval: float = DEFAULT_SYNC_INTERVAL
    """``artifactsSyncInterval``: seconds between two syncs of a running op's folder to a bucket store."""
    document: Document | None = field(default=None, repr=False)

    def where(self, *path: str | int) -> str:
        """``file:line:col`` of a key (``"kubernetes", "namespace"``; ``"artifactsStore"``), for messages about
        its value."""
        if self.document is None or self.path is None:
            return self.path or "<no config file>"
        line, column = self.document.position(path)
        return f"{self.path}:{line}:{column}"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the configuration file is looked for (it need not exist)."""
    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = env.get("POLYNB_HOME", "").strip()
    return (Path(home).expanduser() if home else polynb_home()) / FILENAME


def load_config(environ: Mapping[str, str] | None = None) -> ConfigFile:
    """The configuration file, or an empty :class:`ConfigFile` when there is none.

    ``$POLYNB_CONFIG`` naming a missing file is an error (it was asked for); a missing
    ``$POLYNB_HOME/config.yaml`` is not. Raises ``SpecErrors`` (with positions) for a bad file."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if env.get(CONFIG_ENV, "").strip():
            raise SpecErrors([SpecError(str(path), 0, 0, "(root)", f"no such file (from ${CONFIG_ENV})")]) from None
        return ConfigFile()
    except OSError as exc:
        raise SpecErrors([SpecError(str(path), 0, 0, "(root)", f"cannot read it: {exc.strerror}")]) from None
    return parse_config(raw, str(path))


def parse_config(text: str | bytes, filename: str) -> ConfigFile:
    """A configuration file's text; an empty (or comments-only) file sets nothing."""
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if not any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines()):
        return ConfigFile(path=filename)
    document = parse(text, filename)
    try:
        model = ConfigModel.model_validate(document.data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            unexpected = error["type"] == "extra_forbidden"
            message = "unknown key" + _known(loc) if unexpected else error["msg"]
            errors.append(document.error(loc, message, key=unexpected))
        raise SpecErrors(errors) from None
    section = model.kubernetes
    values = {} if section is None else section.model_dump(exclude_unset=True)
    connections = tuple(c.model_dump(by_alias=True, exclude_none=True) for c in model.connections or ())
    errors = _cross_checks(model, document)
    if errors:
        raise SpecErrors(errors)
    interval = float(model.artifacts_sync_interval or DEFAULT_SYNC_INTERVAL)
    return ConfigFile(path=filename, kubernetes=values, connections=connections, artifacts_store=model.artifacts_store,
                      artifacts_sync_interval=interval, document=document)  # fmt: skip


# What each kind needs in its ``schema`` to be usable (Polyaxon's ``V1ClaimConnection``, ``V1HostPathConnection``,
# ``V1BucketConnection``, ``V1GitConnection``); ``registry`` and ``custom`` need nothing. A ``mountPath`` is
# needed only where the connection is mounted (``polynb.connections``).
_REQUIRED_SCHEMA: Final = {
    "volume_claim": ("claimName",),
    "host_path": ("hostPath",),
    "s3": ("bucket",),
    "gcs": ("bucket",),
    "wasb": ("bucket",),
    "git": ("url",),
}
_STORE_KINDS: Final = ("volume_claim", "host_path", "s3", "gcs", "wasb")


def _cross_checks(model: ConfigModel, document: Document) -> list[SpecError]:
    """What one entry's model cannot see: unique names, each kind's schema keys, ``artifactsStore``'s target."""
    errors: list[SpecError] = []
    seen: dict[str, int] = {}
    for i, connection in enumerate(model.connections or ()):
        if connection.name in seen:
            errors.append(document.error(("connections", i, "name"),
                                         f"a second connection named {connection.name} "
                                         f"(the first is connections[{seen[connection.name]}])"))  # fmt: skip
        seen.setdefault(connection.name, i)
        needed = _REQUIRED_SCHEMA.get(connection.kind, ())
        missing = [key for key in needed if not connection.schema_.get(key)]
        if missing:
            at = ("connections", i, "schema") if "schema_" in connection.model_fields_set else ("connections", i)
            errors.append(
                document.error(at, f"a {connection.kind} connection needs {', '.join(missing)} in its schema")
            )
    store = model.artifacts_store
    if store is not None:
        kinds = {c.name: c.kind for c in model.connections or ()}
        if store not in kinds:
            known = ", ".join(sorted(kinds)) or "none"
            errors.append(document.error(("artifactsStore",), f"no connection named {store} (connections: {known})"))
        elif kinds[store] not in _STORE_KINDS:
            errors.append(document.error(("artifactsStore",), f"connection {store} is a {kinds[store]} connection; "
                                         f"an artifacts store is one of: {', '.join(_STORE_KINDS)}"))  # fmt: skip
    return errors


def local_artifacts_root(config: ConfigFile) -> Path | None:
    """The local executor's artifacts root: the folder of the ``host_path`` connection that ``artifactsStore``
    names (a relative ``hostPath`` is relative to the configuration file's folder), created if missing; None
    when there is no such store (runs then go to ``$POLYNB_HOME/artifacts``).

    Raises ``SpecErrors`` at the connection's ``hostPath`` when the folder cannot be created or written: a run
    refuses before anything of it starts rather than fail in its first init step."""
    name = config.artifacts_store
    found = next(((i, c) for i, c in enumerate(config.connections) if c.get("name") == name), None)
    if name is None or found is None or found[1].get("kind") != "host_path":
        return None
    index, connection = found
    written = str((connection.get("schema") or {}).get("hostPath") or "")
    folder = Path(written).expanduser()
    if not folder.is_absolute() and config.path is not None:
        folder = Path(config.path).absolute().parent / folder
    problem = _unusable(folder)
    if problem is None:
        return folder
    message = f"connection {name} (the artifactsStore): {folder} {problem}"
    at = ("connections", index, "schema", "hostPath")
    if config.document is None:  # a ConfigFile made in code: no positions
        raise SpecErrors([SpecError(config.path or "<no config file>", 0, 0, "connections", message)])
    raise SpecErrors([config.document.error(at, message)])


def local_artifacts_store(config: ConfigFile, environ: Mapping[str, str] | None = None) -> StoreAccess | None:
    """The bucket (``s3``, ``gcs``, ``wasb`` connection) that ``artifactsStore`` names, which local runs are synced
    to; None when the store is not a bucket.

    Checked at submission, so nothing of a run starts against a store it could not reach: this machine must have
    credentials for the bucket (the connection's ``env``, this process's environment, the SDK's files) and the
    bucket must answer a listing. Raises ``SpecErrors`` naming the connection, at its ``schema.bucket``."""
    name = config.artifacts_store
    found = next(((i, c) for i, c in enumerate(config.connections) if c.get("name") == name), None)
    if name is None or found is None or found[1].get("kind") not in BUCKET_KINDS:
        return None
    index, connection = found
    kind = str(connection["kind"])
    url = str((connection.get("schema") or {}).get("bucket") or "")
    problem: str | None = None
    try:
        bucket = bucket_of(connection, environ)
    except ValueError as exc:
        problem = str(exc)
    else:
        if not has_credentials(connection, environ):
            secret = " (its secret is on the cluster: local runs need the keys here)" * bool(connection.get("secret"))
            problem = f"no credentials for {url} on this machine{secret}: {_CREDENTIALS[kind]}"
        else:
            try:
                bucket.check()
            except BucketError as exc:
                problem = str(exc)
    if problem is not None:
        message = f"connection {name} (the artifactsStore): {problem}"
        if config.document is None:
            raise SpecErrors([SpecError(config.path or "<no config file>", 0, 0, "connections", message)])
        raise SpecErrors([config.document.error(("connections", index, "schema", "bucket"), message)])
    record = StoreRecord(name=str(name), kind=kind, url=url, every=config.artifacts_sync_interval)
    return StoreAccess(record, connection)


_CREDENTIALS: Final = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the connection's env or the shell",
    "gcs": "set GOOGLE_APPLICATION_CREDENTIALS in the connection's env or the shell",
    "wasb": "set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN",
}


def _unusable(folder: Path) -> str | None:
    """Why runs cannot write in ``folder`` (made if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "is not a folder"
    except OSError as exc:
        return f"cannot be created: {exc.strerror or exc}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def _known(loc: tuple[Any, ...]) -> str:
    if len(loc) == 3 and loc[0] == "connections":
        return f"; expected one of: {_aliases(ConnectionSection)}"
    if len(loc) == 4 and loc[0] == "connections" and loc[2] in ("secret", "configMap"):
        return f"; expected one of: {_aliases(ResourceRef)}"
    if len(loc) == 5 and loc[0] == "connections" and loc[2] == "env":
        return f"; expected one of: {_aliases(ConnectionEnv)} (valueFrom needs Kubernetes: use a secret or configMap)"
    if len(loc) == 2 and loc[0] == "kubernetes":
        return f"; expected one of: {_aliases(KubernetesSection)}"
    return f"; expected one of: {_aliases(ConfigModel)}"


def _aliases(model: type[BaseModel]) -> str:
    return ", ".join(sorted(f.alias or name for name, f in model.model_fields.items()))
