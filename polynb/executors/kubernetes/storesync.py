"""A bucket as the artifacts store on Kubernetes: the sidecars that sync a run's artifacts folder with it.

With ``artifactsStore`` naming an ``s3``/``gcs``/``wasb`` connection (:class:`~.settings.BucketStore`), every pod
gets a *native sidecar* (an init container with ``restartPolicy: Always``, Kubernetes >= 1.29,
https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/) running

    python -m polynb.runtime.store_sync up --source <artifacts root>/<uuid> --target <bucket>/<uuid> --every N

(under a few lines of ``sh`` that relay the kubelet's SIGTERM, and make the last sync of a sync killed while it
was still starting: :data:`SYNC_SCRIPT`) in the *store image* (one with polynb installed: ``docker/Dockerfile``).
It starts before the main container and the kubelet stops it (SIGTERM) after the main container has ended; it
then makes one last full sync and exits, within the pod's ``terminationGracePeriodSeconds`` (``store_grace``).
A TensorBoard pod also gets one ``store_sync down --every N`` sidecar per run it shows, pulling
``<bucket>/<uuid>/outputs/tensorboard`` into the folder its ``tensorboard`` init links
(``<artifacts root>/<uuid>/outputs/tensorboard``) while the run trains.

Credentials reach the sidecars as Polyaxon's agent gives them to ops: the connection's ``secret`` as ``envFrom``
(or as files at its ``mountPath``), its ``env`` as variables, and ``POLYNB_STORE_CONNECTION`` (the entry's
``name``, ``kind`` and ``schema`` as JSON). Every value is an argument or a variable, never part of a shell line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from polynb.compiler.types import CompiledOp
from polynb.executors.kubernetes.connections import connection_mounts
from polynb.executors.kubernetes.settings import BucketStore

UP: Final = "store-sync"
"""The name of the sidecar syncing a run's folder up (the first native sidecar: the kubelet stops it last)."""
DOWN: Final = "store-pull"
CONNECTION_ENV: Final = "POLYNB_STORE_CONNECTION"
PULLED_READS: Final = ("init tensorboard", "init artifacts", "init paths")
"""Reads of another run's artifacts (:mod:`polynb.compiler.artifact_reads`, ``op 'x': <what>``) that a pod serves
from a bucket store: the ``down`` sidecars pull TensorBoard's, ``artifacts``/``paths`` init containers fetch theirs
(:mod:`.init`). Any other read still needs the artifacts claim."""
IMAGE_REPOSITORY: Final = "polynb"
"""The default store image is ``polynb:<version>``: ``docker build -f docker/Dockerfile -t polynb:<version> .``"""


SYNC_SCRIPT: Final = (
    # $1 direction, $2 source, $3 target, $4 seconds: values are arguments, never part of this line.
    # The kubelet's SIGTERM (after the main container ends) is relayed to the sync, which then syncs once more.
    # A SIGTERM that comes while Python is still starting (a short op) would kill it before its handler is
    # set (exit 143) and lose the last sync: then one last sync runs here. As PID 1, sh must trap TERM to see it.
    'stopping=0; child=; trap \'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null\' TERM INT; '
    'python -m polynb.runtime.store_sync "$1" --source "$2" --target "$3" --every "$4" & child=$!; '
    '[ "$stopping" = 1 ] && kill -TERM "$child" 2>/dev/null; '
    'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done; '
    'if [ "$code" = 143 ] && [ "$stopping" = 1 ]; then '
    'echo "store_sync: stopped while starting; one last sync" >&2; '
    'exec python -m polynb.runtime.store_sync "$1" --source "$2" --target "$3"; fi; '
    'exit "$code"'
)


def default_store_image() -> str:
    """``polynb:<this polynb's version>`` (the tag ``docker/Dockerfile`` is built with, see docs/kubernetes.md)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("polynb")
    except PackageNotFoundError:  # a source tree that was never installed: name the image anyway
        installed = "latest"
    return f"{IMAGE_REPOSITORY}:{installed.replace('+', '-')}"


def run_url(store: BucketStore, run_uuid: str) -> str:
    """Where a run's artifacts folder lives in the store (the layout is the local one: ``<root>/<uuid>/...``)."""
    return f"{store.url}/{run_uuid}"


@dataclass
class StoreContainers:
    """The store's sidecars of one pod (without ``restartPolicy``, mounts of the artifacts volume, security
    context: the manifest builder adds those) and the volumes their credentials need."""

    sidecars: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)


def tensorboard_runs(op: CompiledOp) -> list[str]:
    """The uuids the op's ``tensorboard`` init entries link (other runs: its own is not pulled)."""
    found: list[str] = []
    for step in op.init:
        if step.kind != "tensorboard":
            continue
        uuids = step.spec.get("uuids") or []
        for uuid in [u.strip() for u in uuids.split(",")] if isinstance(uuids, str) else [str(u) for u in uuids]:
            if uuid and uuid != op.uuid and uuid not in found:
                found.append(uuid)
    return found


def store_containers(
    op: CompiledOp, store: BucketStore, *, image: str, interval: float, artifacts_root: str
) -> StoreContainers:
    """The sync sidecars of ``op``'s pod: one ``up`` for its own folder, one ``down`` per run it shows in
    TensorBoard."""
    connection = store.connection
    linked = connection_mounts([connection])
    env: list[dict[str, Any]] = [
        *linked.env,
        {"name": CONNECTION_ENV, "value": json.dumps(_public(connection), sort_keys=True)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    every = f"{interval:g}"

    def sidecar(name: str, direction: str, source: str, target: str) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": name,
            "image": image,
            "command": ["sh", "-c", SYNC_SCRIPT, name, direction, source, target, every],
            "env": [dict(e) for e in env],
            "volumeMounts": [dict(m) for m in linked.mounts],
            # A failed last sync shows in the pod's status with the log's tail (the reason on stderr).
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        if linked.env_from:
            container["envFrom"] = [dict(e) for e in linked.env_from]
        return container

    out = StoreContainers(volumes=list(linked.volumes))
    out.sidecars.append(sidecar(UP, "up", f"{artifacts_root}/{op.uuid}", run_url(store, op.uuid)))
    for i, uuid in enumerate(tensorboard_runs(op)):
        folder = f"{uuid}/outputs/tensorboard"
        out.sidecars.append(sidecar(f"{DOWN}-{i}", "down", f"{store.url}/{folder}", f"{artifacts_root}/{folder}"))
    return out


def pulled(read: str) -> bool:
    """Whether a pod pulls what ``read`` (an artifact read as the scheduler words it) needs from the bucket."""
    return any(read.endswith(f": {what}") for what in PULLED_READS)


def credential_secrets(store: BucketStore) -> list[str]:
    """The Secrets the store's sidecars read (they must exist before any pod is created)."""
    secret = store.connection.get("secret") or {}
    return [str(secret["name"])] if secret.get("name") else []


def store_container_names(spec: dict[str, Any]) -> Iterable[str]:
    """The names of the store's sidecars in a pod spec."""
    for container in spec.get("initContainers") or ():
        name = str(container.get("name") or "")
        if name == UP or name.startswith(f"{DOWN}-"):
            yield name


def _public(connection: dict[str, Any]) -> dict[str, Any]:
    """What ``POLYNB_STORE_CONNECTION`` carries: what the entry says of the bucket, no credentials (its ``env``
    values are variables of their own)."""
    return {k: connection[k] for k in ("name", "kind", "schema") if k in connection}
