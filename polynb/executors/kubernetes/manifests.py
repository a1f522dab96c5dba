"""Kubernetes objects for a compiled op: a batch/v1 Job per job op, a Pod plus a Service per service op.

Pure functions of the op and a :class:`ManifestConfig`; no I/O (but polynb's own sources, read once for the
runtime bundle). The shape (see ``docs/kubernetes.md``):

* ``restartPolicy: Never`` (a job's ``environment.restartPolicy: OnFailure`` is kept) and ``backoffLimit: 0``
  on Jobs: retries are the scheduler's;
* with ``security_profile: restricted`` every container gets the container-level ``securityContext`` that
  PodSecurity ``restricted`` demands (its own keys win), polynb's own init containers a non-root uid too;
* the run's folder, ``outputs/`` and ``outputs/tensorboard/`` exist before any init entry and the main container
  start (as on the local executor): the first init entry makes them when it runs in the tools image, else an
  init container of their own, first in the pod (:func:`~polynb.executors.kubernetes.init.folders_container`);
* init entries become init containers in order (:mod:`polynb.executors.kubernetes.init`), then the sidecars as
  *native sidecars* (init containers with ``restartPolicy: Always``, Kubernetes >= 1.29: started after the
  init entries, stopped after the main container) or, with ``native_sidecars=False``, plain containers
  (which must then exit by themselves, or the Job never completes);
* a service op is a bare Pod, not a Deployment: a Deployment would restart a crashed TensorBoard behind the
  scheduler's back, and the scheduler owns retries. Its Service is owned by the Pod (garbage-collected
  with it);
* every container mounts the artifacts volume (an ``emptyDir``, or the ``artifacts_claim`` PVC) at
  :data:`ARTIFACTS_ROOT`, and gets ``POLYAXON_RUN_UUID``, ``POLYAXON_RUN_OUTPUTS_PATH``,
  ``POLYAXON_RUN_ARTIFACTS_PATH`` (these win over the container's own ``env``);
* every container mounts the runtime bundle (:mod:`~polynb.executors.kubernetes.bundle`: ``polynb.tracking``,
  the step runner, the hub's and the examples' programs) read-only at ``/polynb-runtime``, which ends its
  ``PYTHONPATH``, so stock images run them; a ``%%polyaxon_python`` step's main container also mounts its code
  (:mod:`~polynb.executors.kubernetes.stepcode`);
* outputs come back in the main container's termination message: the op writes its outputs as a JSON
  object to ``/dev/termination-log`` (``$POLYNB_TERMINATION_LOG``, at most
  ``$POLYNB_TERMINATION_LOG_LIMIT`` bytes: 4 KiB, less in a pod of more than 3 containers, init containers
  included); with
  ``FallbackToLogsOnError`` a failed container's message is the tail of its log instead; with a bucket
  store (``$POLYNB_OUTPUTS_VIA_STORE``) outputs that do not fit stay in ``outputs.json``, which the engine reads
  from the bucket (:mod:`~polynb.executors.kubernetes.store_outputs`);
* ``termination.timeout`` -> ``activeDeadlineSeconds`` (plus ``deadline_slack``, a backstop: the
  scheduler's own timeout stops the run first and reports ``Timeout``); ``termination.ttl`` ->
  ``ttlSecondsAfterFinished`` on Jobs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from polynb.compiler.types import CompiledOp, ContainerSpec, OpKind, Placement
from polynb.executors.base import EVENTS_AWAITED_LABEL
from polynb.executors.kubernetes import bundle as runtime
from polynb.executors.kubernetes import names
from polynb.executors.kubernetes.connections import connection_mounts
from polynb.executors.kubernetes.init import FOLDERS_CONTAINER, folders_container, init_container, run_folders
from polynb.executors.kubernetes.settings import BucketStore, KubernetesSettings
from polynb.executors.kubernetes.status import termination_limit
from polynb.executors.kubernetes.stepcode import MOUNT_PATH as STEP_MOUNT
from polynb.executors.kubernetes.stepcode import STEP_SCRIPT_ENV, StepCode
from polynb.executors.kubernetes.stepcode import VOLUME as STEP_VOLUME
from polynb.executors.kubernetes.storesync import StoreContainers, store_containers
from polynb.runtime.tracking import EVENTS_STDOUT_ENV, OUTPUTS_VIA_STORE_ENV

ARTIFACTS_ROOT: Final = "/plx-context/artifacts"
ARTIFACTS_VOLUME: Final = "polynb-artifacts"
TERMINATION_LOG: Final = "/dev/termination-log"
MAIN_DEFAULT: Final = "main"

_OWN_CONTAINER_KEYS: Final = frozenset({"name", "image", "command", "args", "env"})
_ENVIRONMENT_KEYS: Final = {
    # Polyaxonfile ``environment`` name -> pod spec name (labels/annotations go to metadata).
    "nodeSelector": "nodeSelector",
    "affinity": "affinity",
    "tolerations": "tolerations",
    "nodeName": "nodeName",
    "serviceAccountName": "serviceAccountName",
    "serviceAccount": "serviceAccountName",
    "hostAliases": "hostAliases",
    "securityContext": "securityContext",
    "hostNetwork": "hostNetwork",
    "hostPID": "hostPID",
    "dnsPolicy": "dnsPolicy",
    "dnsConfig": "dnsConfig",
    "schedulerName": "schedulerName",
    "priorityClassName": "priorityClassName",
    "priority": "priority",
}


_DEFAULTS: Final = KubernetesSettings()
"""The defaults are the settings' (manifests are also made without an executor, in tests)."""


@dataclass(frozen=True, slots=True)
class ManifestConfig:
    """What the executor decides for every run (see :class:`~.executor.KubernetesExecutor`)."""

    namespace: str
    kernel_label: str
    kernel_id: str
    default_image: str = _DEFAULTS.default_image
    tools_image: str = _DEFAULTS.tools_image
    git_image: str = _DEFAULTS.git_image
    artifacts_claim: str | None = None
    native_sidecars: bool = _DEFAULTS.native_sidecars
    deadline_slack: int = _DEFAULTS.deadline_slack
    service_port_base: int = _DEFAULTS.service_port_base
    security_profile: str = _DEFAULTS.security_profile
    artifacts_store: BucketStore | None = None
    store_image: str = "polynb:latest"
    """The executor gives ``store_image`` or :func:`~.storesync.default_store_image`."""
    store_sync_interval: float = _DEFAULTS.store_sync_interval
    store_grace: int = _DEFAULTS.store_grace


RESTRICTED: Final[dict[str, Any]] = {
    # What PodSecurity `restricted` demands of every container
    # (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted).
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
NOBODY: Final = 65534
"""The uid of polynb's own containers under ``restricted``: the stock images they use run as root, which
``runAsNonRoot`` refuses at container start (CreateContainerConfigError) unless a non-zero uid is given."""
_FOLDERS_RESOURCES: Final = ("cpu", "memory")
_QUANTITY: Final = re.compile(r"[+-]?[0-9.]+[eEinumkKMGTP]*[-+]?[0-9]*")
"""A resource quantity as the API server checks it (its message quotes this pattern)."""
JOB_RESTART_POLICIES: Final = ("Never", "OnFailure")
"""What a Job's pod template accepts (Kubernetes refuses ``Always``); ``polynb check`` refuses the rest."""


def restricted_context(own: Any, *, generated: bool) -> dict[str, Any]:
    """A container's ``securityContext`` under the ``restricted`` profile: its own keys win, the missing
    ones are filled in (a generated container also gets a non-root uid)."""
    merged: dict[str, Any] = {**RESTRICTED, **(own if isinstance(own, dict) else {})}
    if generated:
        merged.setdefault("runAsUser", NOBODY)
    return merged


# ------------------------------------------------------------------------------------------ placement


def service_name(run_uuid: str) -> str:
    """The Service of a service run: from the uuid alone, so ``place()`` can give ``base_url`` before the
    op is compiled (the op's name is in the Service's annotations and labels)."""
    return f"svc-{run_uuid[:12].lower()}"


def service_host(run_uuid: str, namespace: str) -> str:
    """The in-cluster DNS name of a service run's Service."""
    return f"{service_name(run_uuid)}.{namespace}.svc"


def placement(run_uuid: str, kind: OpKind, port_count: int, cfg: ManifestConfig) -> Placement:
    """Paths inside the pod and the service's ports (a pod has its own network: any port is free).

    ``base_url`` is the in-cluster URL of the Service; out of the cluster the executor reports the URL of
    its port-forward once the service is ready.
    """
    run_dir = f"{ARTIFACTS_ROOT}/{run_uuid}"
    ports = tuple(range(cfg.service_port_base, cfg.service_port_base + port_count)) if port_count else ()
    return Placement(
        artifacts_path=ARTIFACTS_ROOT,
        run_artifacts_path=run_dir,
        run_outputs_path=f"{run_dir}/outputs",
        ports=ports,
        base_url=f"http://{service_host(run_uuid, cfg.namespace)}:{ports[0]}/" if ports else None,
        host="0.0.0.0",  # noqa: S104 - the bind address inside the pod: the Service must reach it
    )


# ------------------------------------------------------------------------------------------ metadata


def run_labels(op: CompiledOp, cfg: ManifestConfig, attempt: int) -> dict[str, str]:
    user, _ = names.split_labels({**_environment_labels(op), **op.labels})
    labels = {
        **user,
        names.MANAGED_BY: names.MANAGED_BY_VALUE,
        names.APP_NAME: names.label_value(names.slug(op.name) or "op"),
        names.RUN: names.label_value(op.uuid),
        names.KERNEL: cfg.kernel_label,
        names.ATTEMPT: str(attempt),
        names.KIND: op.kind,
        names.ROLE: "run",
    }
    if op.dag_uuid:
        labels[names.DAG] = names.label_value(op.dag_uuid)
    return labels


def run_annotations(op: CompiledOp, cfg: ManifestConfig) -> dict[str, str]:
    _, other = names.split_labels({**_environment_labels(op), **op.labels})
    annotations = {str(k): str(v) for k, v in (op.environment.get("annotations") or {}).items()}
    annotations.update({names.NAME_ANNOTATION: op.name, names.KERNEL_ANNOTATION: cfg.kernel_id})
    if op.dag_uuid:
        annotations[names.DAG_ANNOTATION] = op.dag_uuid
    if other:
        annotations[names.LABELS_ANNOTATION] = json.dumps(other, sort_keys=True)
    return annotations


def _environment_labels(op: CompiledOp) -> dict[str, str]:
    return {str(k): str(v) for k, v in (op.environment.get("labels") or {}).items()}


def _metadata(op: CompiledOp, cfg: ManifestConfig, attempt: int, name: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "labels": run_labels(op, cfg, attempt),
        "annotations": run_annotations(op, cfg),
    }
    if name is not None:
        meta["name"] = name
        meta["namespace"] = cfg.namespace
    return meta


# ------------------------------------------------------------------------------------------ containers


def main_container_name(op: CompiledOp) -> str:
    return names.dns_label(op.container.name or MAIN_DEFAULT, prefix="c")


def _env_list(own: dict[str, str], run_env: dict[str, str], extra: list[Any]) -> list[dict[str, Any]]:
    merged = {**own, **run_env}  # the run's variables win: tracking depends on them
    # The bundle ends PYTHONPATH: the container's own entries come first. (An image with polynb installed keeps
    # its own: the bundle's `polynb` is a namespace portion, which a regular package anywhere on sys.path beats.)
    merged["PYTHONPATH"] = ":".join(p for p in (own.get("PYTHONPATH"), runtime.MOUNT_PATH) if p)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in merged.items()]
    env += [e for e in extra if isinstance(e, dict) and e.get("name") not in merged]
    return env


def _container(
    base: dict[str, Any], run_env: dict[str, str], mounts: list[dict[str, Any]], k8s: dict[str, Any]
) -> dict[str, Any]:
    container = {k: v for k, v in base.items() if not k.startswith("_") and v is not None}
    extra_env = list(k8s.get("env") or ())
    for key, value in k8s.items():
        if key not in _OWN_CONTAINER_KEYS:
            container[key] = value
    container["env"] = _env_list(base.get("_env") or {}, run_env, extra_env)
    own_mounts = [m for m in container.get("volumeMounts") or () if isinstance(m, dict)]
    taken = {m.get("mountPath") for m in own_mounts}
    container["volumeMounts"] = [m for m in mounts if m["mountPath"] not in taken] + own_mounts
    return container


def _spec_container(spec: ContainerSpec, name: str, cfg: ManifestConfig) -> dict[str, Any]:
    return {
        "name": name,
        "image": spec.image or cfg.default_image,
        "command": list(spec.command) or None,
        "args": list(spec.args) or None,
        "workingDir": spec.working_dir if spec.working_dir and spec.working_dir.startswith("/") else None,
        "_env": dict(spec.env),
    }


def pod_spec(op: CompiledOp, cfg: ManifestConfig, step: StepCode | None = None) -> dict[str, Any]:
    """The pod spec of a run (raises ``ValueError`` for an init entry that cannot run here); ``step``: the code
    of a ``%%polyaxon_python`` step, mounted in the main container (its ConfigMap is the executor's to create)."""
    run_dir = f"{ARTIFACTS_ROOT}/{op.uuid}"
    bundle = runtime.runtime_bundle()
    store = _store_sidecars(op, cfg)
    entries = [
        init_container(
            entry,
            i,
            run_dir=run_dir,
            artifacts_root=ARTIFACTS_ROOT,
            tools_image=cfg.tools_image,
            git_image=cfg.git_image,
            default_image=op.container.image or cfg.default_image,
            store_image=cfg.store_image,
            bucket_store=cfg.artifacts_store.connection if cfg.artifacts_store is not None else None,
        )
        for i, entry in enumerate(op.init)
    ]
    # The run's folders exist before any init entry and the main container start: the first entry makes them
    # when it runs in the tools image, else an init container of their own does (one more in the pod).
    folded = bool(entries) and bool(entries[0].get("_makes_folders"))
    if folded:
        entries[0]["command"] = [*entries[0]["command"], *run_folders(run_dir)]
    # Init containers count in the kubelet's 12 KiB of termination messages per pod (status_manager.go).
    containers = (0 if folded else 1) + len(op.init) + len(op.sidecars) + 1 + len(store.sidecars)
    run_env = {
        "POLYAXON_RUN_UUID": op.uuid,
        "POLYAXON_RUN_OUTPUTS_PATH": op.placement.run_outputs_path,
        "POLYAXON_RUN_ARTIFACTS_PATH": op.placement.run_artifacts_path,
        "POLYNB_TERMINATION_LOG": TERMINATION_LOG,
        "POLYNB_TERMINATION_LOG_LIMIT": str(termination_limit(containers)),
    }
    if op.labels.get(EVENTS_AWAITED_LABEL) == "true":
        # An op awaits this run's events: every container (init entries, sidecars, main) also writes them on
        # stdout, which the executor follows container by container (the engine cannot read the pod's events
        # file); their ``seq`` is one count per pod (the file's, under its lock).
        run_env[EVENTS_STDOUT_ENV] = "1"
    if cfg.artifacts_store is not None:
        # The sync sidecar puts outputs.json in the bucket before the run is final: outputs that do not fit in
        # the termination message are read from there (store_outputs.py).
        run_env[OUTPUTS_VIA_STORE_ENV] = "1"
    mounts: list[dict[str, Any]] = [
        {"name": ARTIFACTS_VOLUME, "mountPath": ARTIFACTS_ROOT},
        {"name": runtime.VOLUME, "mountPath": runtime.MOUNT_PATH, "readOnly": True},
    ]
    used: set[str] = set()

    def unique(name: str) -> str:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = names.dns_label(f"{name}-{n}", prefix="c")
        used.add(candidate)
        return candidate

    used.update(c["name"] for c in store.sidecars)  # the store's names are fixed (the executor finds them by name)
    used.add(FOLDERS_CONTAINER)
    main_name = unique(main_container_name(op))
    init: list[dict[str, Any]] = [] if folded else [_folders_container(op, cfg, run_dir)]
    init_volumes: list[dict[str, Any]] = []
    for entry, base in zip(op.init, entries, strict=True):
        base["name"] = unique(base["name"])
        container = _container(base, run_env, mounts, base.get("_k8s") or {})
        # A failed entry's log tail is its termination message, which the run's failure quotes (InitFailed: a
        # clone that cannot reach its host says so), as for the main container.
        container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
        # The connection the entry reads (a repository's or a bucket's credentials): its secret and env, in this
        # init container only.
        read = base.get("_connection") or entry.spec.get("connection")
        if read:
            reads = connection_mounts([read])
            if reads.env_from:
                container["envFrom"] = [*(container.get("envFrom") or ()), *reads.env_from]
            own_env = {e.get("name") for e in container["env"]}
            container["env"] += [e for e in reads.env if e["name"] not in own_env]
            container["volumeMounts"] += reads.mounts
            init_volumes += [v for v in reads.volumes if v not in init_volumes]
        if cfg.security_profile == "restricted":
            container["securityContext"] = restricted_context(
                container.get("securityContext"), generated=entry.kind != "container"
            )
        init.append(container)
    sidecars = []
    for syncer in store.sidecars:
        syncer["volumeMounts"] = [{"name": ARTIFACTS_VOLUME, "mountPath": ARTIFACTS_ROOT}, *syncer["volumeMounts"]]
        syncer["restartPolicy"] = "Always"
        if cfg.security_profile == "restricted":
            syncer["securityContext"] = restricted_context(None, generated=False)
        sidecars.append(syncer)
    for i, side in enumerate(op.sidecars):
        base = _spec_container(side, unique(names.dns_label(side.name or f"sidecar-{i}", prefix="c")), cfg)
        sidecar = _container(base, run_env, mounts, side.k8s)
        if cfg.native_sidecars:
            sidecar["restartPolicy"] = "Always"
        if cfg.security_profile == "restricted":
            sidecar["securityContext"] = restricted_context(sidecar.get("securityContext"), generated=False)
        sidecars.append(sidecar)
    main_env, main_mounts = run_env, mounts
    if step is not None:
        main_env = {**main_env, STEP_SCRIPT_ENV: step.script}
        main_mounts = [*mounts, {"name": STEP_VOLUME, "mountPath": STEP_MOUNT, "readOnly": True}]
    linked = connection_mounts(op.connections)
    main = _container(_spec_container(op.container, main_name, cfg), main_env, [*main_mounts, *linked.mounts],
                      op.container.k8s)  # fmt: skip
    if linked.env_from:
        main["envFrom"] = [*(main.get("envFrom") or ()), *linked.env_from]
    own = {e.get("name") for e in main["env"]}
    main["env"] += [e for e in linked.env if e["name"] not in own]
    if cfg.security_profile == "restricted":
        main["securityContext"] = restricted_context(main.get("securityContext"), generated=False)
    main.setdefault("terminationMessagePath", TERMINATION_LOG)
    main.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    if op.kind == "service" and op.placement.ports and "ports" not in op.container.k8s:
        main["ports"] = [{"containerPort": p, "name": f"p{i}"} for i, p in enumerate(op.placement.ports)]
    spec: dict[str, Any] = {"restartPolicy": restart_policy(op)}
    if cfg.native_sidecars:
        init += sidecars
        spec["containers"] = [main]
    else:
        spec["containers"] = [main, *sidecars]
    if init:
        spec["initContainers"] = init
    artifacts: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": cfg.artifacts_claim}} if cfg.artifacts_claim else {"emptyDir": {}}
    )
    ours = [{"name": ARTIFACTS_VOLUME, **artifacts}, bundle.volume(), *([step.volume()] if step else []),
            *linked.volumes]  # fmt: skip
    ours += [v for v in store.volumes if v["name"] not in {o["name"] for o in ours}]
    ours += [v for v in init_volumes if v["name"] not in {o["name"] for o in ours}]
    taken = {v["name"] for v in ours}
    spec["volumes"] = [*ours, *(dict(v) for v in op.volumes if v.get("name") not in taken)]
    env = op.environment
    for key, target in _ENVIRONMENT_KEYS.items():
        if env.get(key) is not None:
            spec[target] = env[key]
    if env.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [s if isinstance(s, dict) else {"name": str(s)} for s in env["imagePullSecrets"]]
    deadline = active_deadline(op, cfg)
    if deadline is not None and op.kind == "service":
        spec["activeDeadlineSeconds"] = deadline
    if store.sidecars:
        # The store's last sync runs after the main container ended (or the pod was deleted): give it time.
        spec["terminationGracePeriodSeconds"] = cfg.store_grace
    return spec


def _folders_container(op: CompiledOp, cfg: ManifestConfig, run_dir: str) -> dict[str, Any]:
    """The init container making the run's folders, for a pod whose first init entry cannot.

    It mounts the artifacts volume only, and asks for the main container's CPU and memory: a ResourceQuota on
    them refuses a pod any of whose containers, init containers included, names none, and an init container's
    requests add nothing to the pod's (the largest init container's, or the sum of the others' if more). It runs
    as the pod's ``runAsUser`` when the pod sets one (the main container's user, as a rule), else as 65534 where
    a non-root user is demanded (the ``restricted`` profile, or the pod's ``runAsNonRoot``: the tools image runs
    as root)."""
    container = folders_container(run_dir, tools_image=cfg.tools_image)
    container["volumeMounts"] = [{"name": ARTIFACTS_VOLUME, "mountPath": ARTIFACTS_ROOT}]
    own = op.container.k8s.get("resources")
    if isinstance(own, dict):
        resources = {
            # (a value Kubernetes refuses is left to the main container, where the user wrote it)
            group: {k: v for k, v in amounts.items() if k in _FOLDERS_RESOURCES and _QUANTITY.fullmatch(str(v))}
            for group, amounts in own.items()
            if group in ("requests", "limits") and isinstance(amounts, dict)
        }
        if any(resources.values()):
            container["resources"] = {group: amounts for group, amounts in resources.items() if amounts}
    pod = op.environment.get("securityContext")
    pod = pod if isinstance(pod, dict) else {}
    if cfg.security_profile == "restricted":
        container["securityContext"] = restricted_context(None, generated="runAsUser" not in pod)
    elif pod.get("runAsNonRoot") and "runAsUser" not in pod:
        container["securityContext"] = {"runAsUser": NOBODY}  # the tools image runs as root: refused otherwise
    return container


def _store_sidecars(op: CompiledOp, cfg: ManifestConfig) -> StoreContainers:
    if cfg.artifacts_store is None:
        return StoreContainers()
    if not cfg.native_sidecars:
        raise ValueError(store_needs_native_sidecars(cfg.artifacts_store))
    return store_containers(
        op, cfg.artifacts_store, image=cfg.store_image, interval=cfg.store_sync_interval, artifacts_root=ARTIFACTS_ROOT
    )


def store_needs_native_sidecars(store: BucketStore) -> str:
    return (
        f"the artifacts store {store.name!r} is a bucket, synced by a sidecar that must stop after the main"
        " container: that needs native sidecars (Kubernetes >= 1.29), but native_sidecars is off"
    )


def restart_policy(op: CompiledOp) -> str:
    """``environment.restartPolicy`` of a job when Kubernetes accepts it for a Job (``Never``, ``OnFailure``:
    with ``backoffLimit: 0`` the Job fails at the container's first failure either way, so the scheduler's
    ``maxRetries`` stay the only retries); ``Never`` otherwise (``polynb check`` refuses the others, and a
    service, a bare Pod here, is never restarted behind the scheduler's back)."""
    wanted = op.environment.get("restartPolicy")
    return str(wanted) if op.kind == "job" and wanted in JOB_RESTART_POLICIES else "Never"


def active_deadline(op: CompiledOp, cfg: ManifestConfig) -> int | None:
    timeout = op.termination.timeout
    return math.ceil(timeout) + cfg.deadline_slack if timeout else None


# ------------------------------------------------------------------------------------------ objects


def job_manifest(op: CompiledOp, cfg: ManifestConfig, attempt: int, step: StepCode | None = None) -> dict[str, Any]:
    name = names.resource_name(op.name, op.uuid, attempt)
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {"metadata": _metadata(op, cfg, attempt, None), "spec": pod_spec(op, cfg, step)},
    }
    deadline = active_deadline(op, cfg)
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if op.termination.ttl is not None:
        spec["ttlSecondsAfterFinished"] = math.ceil(op.termination.ttl)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(op, cfg, attempt, name), "spec": spec}


def service_pod_manifest(
    op: CompiledOp, cfg: ManifestConfig, attempt: int, step: StepCode | None = None
) -> dict[str, Any]:
    name = names.resource_name(op.name, op.uuid, attempt)
    meta = _metadata(op, cfg, attempt, name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec(op, cfg, step)}


def service_manifest(op: CompiledOp, cfg: ManifestConfig, attempt: int, pod: dict[str, Any]) -> dict[str, Any]:
    """The ClusterIP Service of a service run, named as the run's base name and owned by its pod."""
    meta = _metadata(op, cfg, attempt, service_name(op.uuid))
    pod_meta = pod["metadata"]
    meta["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod_meta["name"],
            "uid": pod_meta["uid"],
            "blockOwnerDeletion": True,
        }
    ]
    ports = [{"name": f"p{i}", "port": p, "targetPort": p, "protocol": "TCP"} for i, p in enumerate(op.placement.ports)]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": {names.RUN: names.label_value(op.uuid), names.ATTEMPT: str(attempt)},
            "ports": ports,
        },
    }
