"""Connections from the config file's ``connections:`` (Polyaxon's agent shape): what an op that names them in
``run.connections`` gets on each executor, and what can be checked about them from this machine.

On Kubernetes a connection's ``secret``/``configMap`` is a volume at its ``mountPath`` (only ``items`` when given)
or, without a ``mountPath``, the container's ``envFrom``; its ``env`` is added to the container's environment;
a ``host_path``/``volume_claim`` with a ``mountPath`` in its schema is mounted there. Locally there is no secret or
config map to read: a connection with one is refused for the local executor (with the reason), its ``env`` is
added, and a ``host_path`` connection's directory is given to the process as ``POLYNB_CONNECTION_<NAME>_PATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from polynb.buckets import BUCKET_KINDS, BucketError, bucket_of, has_credentials

CheckStatus = Literal["ok", "failed", "unchecked"]

_GIT_TIMEOUT: Final = 20.0


@dataclass(frozen=True)
class Check:
    """What ``polynb connections check`` found about one connection, and why."""

    name: str
    kind: str
    status: CheckStatus
    detail: str


def by_name(connections: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c["name"]): c for c in connections}


def summary(connection: Mapping[str, Any]) -> str:
    """One line saying where the connection points and what it brings (for ``polynb connections list``)."""
    schema = connection.get("schema") or {}
    target = next((str(schema[k]) for k in ("claimName", "hostPath", "bucket", "url") if schema.get(k)), "")
    parts = [target] if target else []
    if schema.get("mountPath"):
        parts.append(f"at {schema['mountPath']}")
    for key, label in (("secret", "secret"), ("configMap", "configMap")):
        ref = connection.get(key)
        if ref:
            where = f" at {ref['mountPath']}" if ref.get("mountPath") else " as env"
            parts.append(f"{label} {ref['name']}{where}")
    env = connection.get("env") or ()
    if env:
        parts.append("env " + ",".join(str(e["name"]) for e in env))
    return "; ".join(parts)


def check(connection: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Check:
    """What can be known from here: a host path exists and is a directory, a git repository answers
    ``git ls-remote``, a bucket can be listed with the credentials this machine has. A claim, a secret, or a
    bucket with no credentials here live on the cluster: those are ``unchecked`` and the detail says what the op
    will need."""
    env = os.environ if environ is None else environ
    name, kind = str(connection["name"]), str(connection["kind"])
    schema = connection.get("schema") or {}
    if kind == "host_path":
        path = Path(str(schema["hostPath"])).expanduser()
        if not path.exists():
            return Check(name, kind, "failed", f"{path}: no such directory")
        if not path.is_dir():
            return Check(name, kind, "failed", f"{path}: not a directory")
        if not os.access(path, os.R_OK | os.X_OK):
            return Check(name, kind, "failed", f"{path}: not readable by this user")
        return Check(name, kind, "ok", f"{path} is a readable directory")
    if kind == "git":
        return _check_git(name, str(schema["url"]), {**env, **connection_env(connection)})
    if kind in BUCKET_KINDS:
        return _check_bucket(connection, env)
    if kind == "volume_claim":
        return Check(name, kind, "unchecked", f"claim {schema['claimName']} is checked on the cluster at submission")
    return Check(name, kind, "unchecked", "nothing to check from here")


def _check_bucket(connection: Mapping[str, Any], env: Mapping[str, str]) -> Check:
    # Listed from here with the credentials this machine has (the connection's env, then this process's); with
    # none, the bucket is the cluster's business: its secret, or the pod's own identity.
    name, kind = str(connection["name"]), str(connection["kind"])
    secret = connection.get("secret")
    if not has_credentials(connection, env):
        if secret:
            return Check(name, kind, "unchecked", f"credentials from secret {secret['name']} on the cluster")
        return Check(name, kind, "unchecked", "no secret: the op must find credentials itself (workload identity)")
    try:
        answered = bucket_of(connection, env).check()
    except (BucketError, ValueError) as exc:
        return Check(name, kind, "failed", str(exc))
    return Check(name, kind, "ok", answered + (f" (ops get secret {secret['name']} on the cluster)" if secret else ""))


def _check_git(name: str, url: str, env: Mapping[str, str]) -> Check:
    # ls-remote reads the refs only: it proves the url answers (and the credentials, if any, work) without cloning.
    quiet = {**env, "GIT_TERMINAL_PROMPT": "0"}
    # With POLYAXON_GIT_CREDENTIALS (the connection's env, or this process's) git asks the helper, which reads them
    # from its environment: they are in no argument.
    helper = ["-c", "credential.helper=", "-c", GIT_CREDENTIAL_HELPER] if env.get(GIT_CREDENTIALS) else []
    try:
        done = subprocess.run(["git", *helper, "ls-remote", "--heads", "--", url], capture_output=True, text=True,
                              env=quiet, timeout=_GIT_TIMEOUT, check=False)  # fmt: skip
    except FileNotFoundError:
        return Check(name, "git", "unchecked", "git is not installed here")
    except subprocess.TimeoutExpired:
        return Check(name, "git", "failed", f"{url}: no answer within {_GIT_TIMEOUT:g} s")
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return Check(name, "git", "failed", f"{url}: {lines[-1] if lines else f'git exited {done.returncode}'}")
    return Check(name, "git", "ok", f"{url} answers")


def local_refusal(connection: Mapping[str, Any]) -> str | None:
    """Why the local executor cannot give an op this connection (None: it can)."""
    parts = [k for k in ("secret", "configMap") if connection.get(k)]
    if parts:
        return (f"connection {connection['name']} has a {' and a '.join(parts)}, which only Kubernetes can provide "
                "(run the op with --executor kubernetes, or give the values in the connection's env)")  # fmt: skip
    if connection.get("kind") == "volume_claim":
        return f"connection {connection['name']} is a volume claim, which only Kubernetes can mount"
    return None


_NOT_ENV: Final = re.compile(r"[^A-Z0-9_]")


def path_variable(name: str) -> str:
    """The variable naming a host-path connection's directory for a local process."""
    return f"POLYNB_CONNECTION_{_NOT_ENV.sub('_', name.upper())}_PATH"


def local_env(connections: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The environment the local executor adds for these connections (each already accepted by
    :func:`local_refusal`): their ``env``, and each host path's directory."""
    env: dict[str, str] = {}
    for connection in connections:
        schema = connection.get("schema") or {}
        if connection.get("kind") == "host_path":
            env[path_variable(str(connection["name"]))] = str(Path(str(schema["hostPath"])).expanduser())
        for var in connection.get("env") or ():
            env[str(var["name"])] = str(var.get("value", ""))
    return env


def cluster_env_refusal(k8s: Mapping[str, Any], where: str) -> str | None:
    """Why the local executor cannot run a container whose Kubernetes fields read the cluster's objects."""
    if k8s.get("envFrom"):
        return f"{where}: `envFrom` needs Kubernetes (secrets and config maps are the cluster's): run it there"
    names = [
        str(e.get("name")) for e in k8s.get("env") or () if isinstance(e, Mapping) and e.get("valueFrom") is not None
    ]
    if names:
        return f"{where}: env {', '.join(names)}: valueFrom needs Kubernetes: run it there"
    return None


GIT_CREDENTIAL_HELPER: Final = (
    'credential.helper=!f() { test "$1" = get || exit 0; echo "username=${POLYAXON_GIT_CREDENTIALS%%:*}"; '
    'echo "password=${POLYAXON_GIT_CREDENTIALS#*:}"; }; f'
)
"""A ``git -c`` setting: a credential helper (a fixed shell function) answering git with the user and token of
``POLYAXON_GIT_CREDENTIALS`` from its environment, so the secret is in no argument, url or log line."""
INIT_SOURCE_KINDS: Final = ("git", "s3", "gcs", "wasb", "host_path")
"""Connections an init entry's ``connection`` may name: a repository to clone, a bucket or a folder to copy from."""
GIT_CREDENTIALS: Final = "POLYAXON_GIT_CREDENTIALS"
"""``user:token`` for an https git url (Polyaxon's name), from the connection's env or secret; git reads it through
the credential helper above, so it is in no command line, shell string or log."""


def init_source_problem(connection: Mapping[str, Any], init_kind: str) -> str | None:
    """Why an init entry of ``init_kind`` (``git``, ``artifacts``, ``paths``, or ``''`` for none) cannot read
    ``connection`` (None: it can)."""
    name, kind = connection["name"], str(connection.get("kind"))
    if kind not in INIT_SOURCE_KINDS:
        return f"connection {name} is of kind {kind}; an init entry reads one of: {', '.join(INIT_SOURCE_KINDS)}"
    if kind == "git" and init_kind not in ("git", ""):
        return f"connection {name} is a git repository: write `git:` (revision, flags) or nothing with it"
    if kind != "git" and init_kind not in ("artifacts", "paths", ""):
        what = "a folder" if kind == "host_path" else f"a bucket ({kind})"
        return f"connection {name} is {what}: write `artifacts:` (files, dirs), `paths:` or nothing with it"
    return None


def local_init_refusal(connection: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str | None:
    """Why the local executor cannot read ``connection`` in an init entry: credentials only the cluster has
    (its secret), or a bucket this machine has no credentials for."""
    refused = local_refusal(connection)
    if refused is not None:
        return refused
    if connection.get("kind") in BUCKET_KINDS and not has_credentials(connection, environ):
        return (f"connection {connection['name']}: no credentials for its bucket here (give the keys in its env, "
                "or export them where polynb runs)")  # fmt: skip
    return None


def connection_env(connection: Mapping[str, Any]) -> dict[str, str]:
    """A connection's own ``env`` (plain name/value pairs)."""
    return {str(e["name"]): str(e.get("value", "")) for e in connection.get("env") or () if isinstance(e, Mapping)}
