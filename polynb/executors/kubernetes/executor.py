"""The Kubernetes executor: a batch/v1 Job per job op, a Pod plus a Service per service op.

Statuses come from ONE list + watch of the namespace's pods by the selector
``app.kubernetes.io/managed-by=polynb,polynb.io/kernel=<kernel>`` (:mod:`~polynb.executors.kubernetes.watch`),
whatever the number of runs; a pod event becomes an :class:`ExecutorUpdate` through the pure rules of
:mod:`~polynb.executors.kubernetes.status` (``running`` = the main container started). A job op costs three
requests from create to cleanup (create the Job; once it is final, read its main container's log into
``$POLYNB_HOME/artifacts/<uuid>/logs/`` and delete the Job with its pods); outputs arrive inside the watch
event (the main container's termination message). ``termination.ttl`` or ``keep_finished`` keep the objects.

Faults the cluster recovers from are ``warning`` for a while, then ``failed`` (``image_pull_grace``,
``failed_create_timeout``, measured on the injectable ``clock``); 403s say whether RBAC, a quota or
PodSecurity refused (:mod:`~polynb.executors.kubernetes.forbidden`).

Names are deterministic (:func:`~polynb.executors.kubernetes.names.resource_name`): submitting an attempt twice
meets ``409 AlreadyExists``, and the existing object is adopted when its ``polynb.io/run`` label is this
run's. A resubmission after a final status (a scheduler retry) is the next attempt (``-a2``, ...).

A run some op awaits events of (``log_artifact`` & co.) has its containers' logs followed while it runs (init
entries, sidecars and main: one follower each, :mod:`~polynb.executors.kubernetes.events`); its final status is
delivered once those logs have ended, after its events.

Kernel ownership, heartbeat and sweep: :mod:`~polynb.executors.kubernetes.kernel`. Manifests:
:mod:`~polynb.executors.kubernetes.manifests`. See ``docs/kubernetes.md`` for the user's side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import socket
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from polynb.compiler.types import CompiledOp, OpKind, Placement
from polynb.executors.base import EVENTS_AWAITED_LABEL, EventSink, ExecutorUpdate, SubmitRefusedError, UpdateCallback
from polynb.executors.kubernetes import bundle, names, sources, stepcode, store_outputs, storesync
from polynb.executors.kubernetes import kernel as k8s_kernel
from polynb.executors.kubernetes import manifests as k8s_manifests
from polynb.executors.kubernetes.client import Api, K8sError, Stream, path
from polynb.executors.kubernetes.config import ClusterConfig, load
from polynb.executors.kubernetes.events import EventFollower, strip_marker
from polynb.executors.kubernetes.forbidden import explain as explain_forbidden
from polynb.executors.kubernetes.init import FOLDERS_CONTAINER
from polynb.executors.kubernetes.logs import Resume, split_timestamp
from polynb.executors.kubernetes.manifests import ManifestConfig
from polynb.executors.kubernetes.portforward import Connect, PodLookup, PortForward, official_connect
from polynb.executors.kubernetes.settings import BucketStore, KubernetesSettings
from polynb.executors.kubernetes.status import (
    FATAL_WAITING,
    IMAGE_PULL,
    Observed,
    interpret_disruption,
    interpret_job,
    interpret_pod,
    interpret_restarted,
)
from polynb.executors.kubernetes.watch import PodInformer
from polynb.log_archive import LogArchive
from polynb.runtime.tracking import EVENTS_STDOUT_ENV
from polynb.store.paths import artifacts_dir

log = logging.getLogger(__name__)

BACKGROUND: Final = "Background"
MAX_ATTEMPTS: Final = 100
LOG_WAIT: Final = 5.0
"""Seconds between re-checks while a log waits for its container (woken at once by any pod event)."""
DEFAULT_STOP_GRACE: Final = 10.0
"""Seconds a stopped run's pod gets before it is killed, when the stop names none."""
EVENTS_DRAIN: Final = 60.0
"""Seconds a final run's followed log may take to end (the API server ends it with the container) before it
is cut and the final status delivered anyway."""


RECONFIGURE_FIXED: Final = (
    "namespace",
    "context",
    "kubeconfig",
    "in_cluster",
    "kernel_id",
    "port_forward",
    "watch_timeout",
    "heartbeat_interval",
    "lease_seconds",
)
"""Settings :meth:`KubernetesExecutor.reconfigure` cannot change (None in the new settings: not asked)."""


FORWARD_PORTS: Final = (20000, 10000)
"""Where a service's local port-forward port is chosen first: ``first + hash(uuid) % count``, below Linux's
ephemeral range, so a restarted kernel gets the same port (and its Lab tab, ``/proxy/<port>/``, keeps
working) unless another process took it."""


def preferred_local_port(run_uuid: str) -> int:
    first, count = FORWARD_PORTS
    return first + int(hashlib.sha256(run_uuid.encode()).hexdigest()[:8], 16) % count


class K8sSubmitError(RuntimeError, SubmitRefusedError):
    """The cluster refused a run (or cannot be used); the message says why and what to do."""


@dataclass(eq=False)
class _KeptLogs:
    """A stopped run's logs (init entries in order, then the main container), read before its pod goes."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    follow: str | None = None
    """The container that was running when the stop came: its log is read until it ends."""
    stream: Stream | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Run:
    uuid: str
    op_name: str
    kind: OpKind
    on_update: UpdateCallback
    attempt: int
    name: str
    main: str
    ports: tuple[int, ...] = ()
    pod: str | None = None
    last: tuple[str, str] | None = None
    running_reported: bool = False
    url: str | None = None
    final: bool = False
    stop_requested: bool = False
    stop_at: float = 0.0
    """When the stop was asked (wall clock): a container that finished before it ended by itself."""
    created_at: float = 0.0
    adopted_at: float = 0.0
    """When it was re-attached (wall clock; 0: submitted by this executor)."""
    stuck_checked: bool = False
    creating_checked: bool = False
    """Its pod's warnings were told once while it could not start its containers (FailedMount, ...)."""
    forward: PortForward | None = None
    keep: bool = False
    """Leave the objects when final (``termination.ttl``: the scheduler cleans up later; ``keep_finished``)."""
    pull_failing_since: float | None = None
    """When a container of the run first failed to pull its image (None: it pulls, or has not tried)."""
    finished: threading.Event = field(default_factory=threading.Event)
    """Set once a final run's logs are archived and its objects deleted (never for a kept run)."""
    events: bool = False
    """Some op awaits this run's events (``EVENTS_AWAITED_LABEL``): its containers' logs are followed."""
    followers: list[EventFollower] = field(default_factory=list)
    """One per container writing events (init entries, sidecars, main), started once the pod is seen."""
    store: bool = False
    """The pod has the artifacts store's sync sidecars: its final status waits for their last sync."""
    store_warned: bool = False
    bucket: BucketStore | None = None
    """The bucket store the pod syncs to (where outputs too large for the termination message are read)."""
    fetching: bool = False
    """Its outputs are being read from the store: the final status waits for them."""
    last_pod: dict[str, Any] | None = None
    """The run's pod as last seen (its containers' final states once the pod is gone)."""
    kept_logs: _KeptLogs | None = None
    """Its logs, read as a stop deletes its pod (the pod's logs go with it): what the archive is made of."""


def _store_config(s: KubernetesSettings) -> dict[str, Any]:
    """The store's part of a :class:`ManifestConfig`."""
    return {
        "artifacts_store": s.artifacts_store,
        "store_image": s.store_image or storesync.default_store_image(),
        "store_sync_interval": s.store_sync_interval,
        "store_grace": s.store_grace,
    }


class KubernetesExecutor:
    """Runs compiled ops on Kubernetes; see the module docstring and ``docs/kubernetes.md``."""

    name = "kubernetes"

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        *,
        connect: Callable[[str, str | PodLookup, int], Connect] | None = None,
        origins: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_archive: LogArchive | None = None,
    ) -> None:
        """An executor on the cluster that ``settings`` name (default ``KubernetesSettings()``: ``KUBECONFIG``
        and its context's namespace); ``connect`` replaces the official port-forward (tests). ``log_archive``:
        the artifacts store a final run's logs are copied to after they are archived under ``$POLYNB_HOME``.

        ``origins`` say where each setting came from (:mod:`.sources`, for messages); ``clock`` measures the
        timeouts (``failed_create_timeout``, ``image_pull_grace``, ``pod_start_timeout``; tests move it).
        Reads the kubeconfig now (``K8sConfigError``); talks to the cluster only on first use."""
        self.settings = s = settings or KubernetesSettings()
        self.log_archive = log_archive
        self.origins = dict(origins or {})
        self.clock = clock
        self.cluster: ClusterConfig = load(
            kubeconfig=s.kubeconfig, context=s.context, namespace=s.namespace, in_cluster=s.in_cluster
        )
        self.namespace = self.cluster.namespace
        self.api = Api.from_configuration(self.cluster.configuration, backoff=s.backoff)
        self.kernel_id = s.kernel_id or f"{socket.gethostname()}-{os.getpid()}-{uuid_mod.uuid4().hex[:6]}"
        self.kernel_label = names.label_value(self.kernel_id)
        self.config = ManifestConfig(
            namespace=self.namespace,
            kernel_label=self.kernel_label,
            kernel_id=self.kernel_id,
            default_image=s.default_image,
            tools_image=s.tools_image,
            git_image=s.git_image,
            artifacts_claim=s.artifacts_claim,
            native_sidecars=s.native_sidecars,
            deadline_slack=s.deadline_slack,
            service_port_base=s.service_port_base,
            security_profile=s.security_profile,
            **_store_config(s),
        )
        self.port_forward = (not self.cluster.in_cluster) if s.port_forward is None else s.port_forward
        self.selector = names.selector({names.MANAGED_BY: names.MANAGED_BY_VALUE, names.KERNEL: self.kernel_label})
        self._connect = connect or (lambda ns, pod, port: official_connect(self.cluster.configuration, ns, pod, port))
        self.lease = k8s_kernel.KernelLease(
            self.api,
            self.namespace,
            self.kernel_id,
            self.kernel_label,
            interval=min(s.heartbeat_interval, s.pod_start_timeout / 2),
            lease_seconds=s.lease_seconds,
            on_tick=self._check_stuck,
        )
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._runs: dict[str, _Run] = {}
        self._attempts: dict[str, int] = {}
        self._shipped: set[str] = set()
        self._informer: PodInformer | None = None
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="polynb-k8s")
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()
        self._last_sweep = clock()
        self._event_sink: EventSink | None = None

    def set_event_sink(self, sink: EventSink) -> None:
        """Where the events read from pods go (the engine's intake): ``sink(run_uuid, events)``, in order, all
        before the run's final update. Without a sink no log is followed for events."""
        self._event_sink = sink

    def reconfigure(self, settings: KubernetesSettings, origins: Mapping[str, str] | None = None) -> None:
        """New settings for the runs submitted from now on (artifacts claim, security profile, keep, images,
        timeouts); runs already submitted keep theirs. Where the executor is (cluster, namespace, kernel) and
        how it watches cannot change here: ``ValueError`` naming them (a new kernel, or a new command)."""
        fixed = [
            name
            for name in RECONFIGURE_FIXED
            if getattr(settings, name) is not None and getattr(settings, name) != getattr(self.settings, name)
        ]
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)} cannot change once the executor runs (now "
                + ", ".join(f"{n}={getattr(self.settings, n)!r}" for n in fixed)
                + "): restart the kernel to use another one"
            )
        config = dataclasses.replace(
            self.config,
            default_image=settings.default_image,
            tools_image=settings.tools_image,
            git_image=settings.git_image,
            artifacts_claim=settings.artifacts_claim,
            native_sidecars=settings.native_sidecars,
            deadline_slack=settings.deadline_slack,
            service_port_base=settings.service_port_base,
            security_profile=settings.security_profile,
            **_store_config(settings),
        )
        keep = {n: getattr(self.settings, n) for n in RECONFIGURE_FIXED}
        with self._lock:
            self.settings = dataclasses.replace(settings, **keep)
            self.config = config
            self.origins = dict(origins or {})

    # -- start: namespace check, heartbeat, sweep, the watch -----------------------------------------

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise K8sSubmitError("the kubernetes executor is shut down")
            self._check_namespace()
            try:
                self.lease.acquire()
                if self.settings.sweep:
                    k8s_kernel.sweep(self.api, self.namespace, now=time.time(), exclude=self.kernel_label)
            except K8sError as exc:
                raise K8sSubmitError(self._explain(exc, "set up the kernel's heartbeat ConfigMap")) from exc
            self._informer = PodInformer(
                self.api,
                self.namespace,
                self.selector,
                self._on_pod,
                self._on_watch_error,
                watch_timeout=self.settings.watch_timeout,
                backoff=self.settings.backoff,
            )
            self._informer.start()
            self.lease.start()
            self._started = True

    def _check_namespace(self) -> None:
        try:
            self.api.request("GET", path("namespaces", None, self.namespace))
        except K8sError as exc:
            if exc.code == 403:
                return  # may not read namespaces (RBAC): a missing one shows as a 404 at create
            if exc.code == 404:
                raise K8sSubmitError(self._missing_namespace()) from exc
            raise K8sSubmitError(self._explain(exc, f"read namespace {self.namespace!r}")) from exc

    def _missing_namespace(self) -> str:
        return (
            f"namespace {self.namespace!r} does not exist ({self._where()}); create it with "
            f"`kubectl create namespace {self.namespace}` or choose another one"
        )

    def _where(self) -> str:
        ctx = f"context {self.cluster.context!r}, " if self.cluster.context else ""
        return f"{ctx}{self.cluster.source}"

    def _explain(self, exc: K8sError, doing: str) -> str:
        """An error of the API as a message that says what to do."""
        if exc.code == 401:
            return f"cannot {doing}: the cluster rejected the credentials ({self._where()}): {exc.message}"
        if exc.code == 403:
            profile = self.origins.get("security_profile")
            security_hint = (
                f"security_profile is {self.settings.security_profile!r} (from {profile}); the op's own "
                "containers must meet the namespace's level"
                if self.settings.security_profile == "restricted"
                else "run with `--k8s-security-profile restricted` (or `security_profile: restricted` in the"
                " config file) and give the op's containers what the level demands"
            )
            rbac_hint = (
                f"the identity of {self._where()} needs the Role of docs/kubernetes.md in namespace {self.namespace!r}"
            )
            verdict = explain_forbidden(
                exc.message, namespace=self.namespace, security_hint=security_hint, rbac_hint=rbac_hint
            )
            return f"cannot {doing}: {verdict.what}; the API server said: {exc.message}"
        if exc.code == 404 and "namespaces" in exc.message:
            return f"cannot {doing}: {self._missing_namespace()}"
        if exc.code == 422:
            causes = "; ".join(f"{c.get('field')}: {c.get('message')}" for c in exc.causes) or exc.message
            return f"cannot {doing}: Kubernetes rejected it as invalid: {causes}"
        if exc.code == 0:
            return f"cannot {doing}: {exc.message} ({self._where()})"
        return f"cannot {doing}: {exc}"

    # -- placement and submission ---------------------------------------------------------------------

    def check_submission(self, pipeline_name: str, *, artifact_reads: Sequence[str] = ()) -> None:
        """Before anything of a pipeline is created: refuse what cannot work on this cluster as configured
        (the scheduler asks, :mod:`polynb.scheduler.executor_checks`).

        ``artifact_reads`` say which ops read another run's artifacts (TensorBoard over an experiment, an
        ``artifacts`` init): without an artifacts claim each pod has its own ``emptyDir``, where they would
        silently find nothing. With a bucket as the artifacts store, TensorBoard pulls its runs from the bucket;
        the store's credentials Secret must exist (checked here, so no run is created without it)."""
        store = self.settings.artifacts_store
        if store is not None:
            self._check_store(store)
        if self.settings.artifacts_claim or not artifact_reads:
            return
        if store is not None:
            unsynced = [r for r in artifact_reads if not storesync.pulled(r)]
            if not unsynced:
                # TensorBoard pulls its runs' event files from the bucket (storesync.py), `artifacts`/`paths` init
                # entries fetch their sources from it (init.py)
                return
            raise K8sSubmitError(
                f"pipeline {pipeline_name!r} reads the artifacts of other runs ({'; '.join(unsynced)}); with the"
                f" bucket {store.url} as the artifacts store only init entries (tensorboard, artifacts, paths) get"
                " other runs' files on Kubernetes (each pod's artifacts folder is its own emptyDir, synced up to the"
                " bucket): " + sources.claim_hint()
            )
        raise K8sSubmitError(
            f"pipeline {pipeline_name!r} reads the artifacts of other runs ({'; '.join(artifact_reads)}), but on"
            " Kubernetes each run's artifacts are a private emptyDir unless the artifacts_claim setting is set: "
            + sources.claim_hint()
        )

    def _check_store(self, store: BucketStore) -> None:
        """The bucket store can be used: native sidecars are on, and the Secret holding its credentials exists
        in the namespace (a missing one would leave every pod in ``CreateContainerConfigError``)."""
        where = self.origins.get("artifacts_store", "artifactsStore")
        if not self.settings.native_sidecars:
            raise K8sSubmitError(f"{where}: {k8s_manifests.store_needs_native_sidecars(store)}")
        for secret in storesync.credential_secrets(store):
            try:
                self.api.request("GET", path("secrets", self.namespace, secret))
            except K8sError as exc:
                if exc.code == 404:
                    raise K8sSubmitError(
                        f"{where}: connection {store.name!r} (the artifacts store, {store.url}) takes its "
                        f"credentials from Secret {secret!r}, which does not exist in namespace "
                        f"{self.namespace!r}: create it (e.g. `kubectl -n {self.namespace} create secret generic "
                        f"{secret} --from-literal=AWS_ACCESS_KEY_ID=… --from-literal=AWS_SECRET_ACCESS_KEY=…`)"
                    ) from exc
                if exc.code == 403:
                    log.info("cannot read Secret %s (RBAC): the store's credentials are not checked", secret)
                    continue
                raise K8sSubmitError(
                    self._explain(exc, f"read Secret {secret!r} of connection {store.name!r} (the artifacts store)")
                ) from exc

    def place(self, run_uuid: str, kind: OpKind, port_count: int) -> Placement:
        return k8s_manifests.placement(run_uuid, kind, port_count, self.config)

    def submit(self, op: CompiledOp, on_update: UpdateCallback) -> dict[str, Any]:
        self._ensure_started()
        with self._lock:
            current = self._runs.get(op.uuid)
            if current is not None and not current.final:
                raise K8sSubmitError(f"run {op.uuid} is already running here")
            attempt = self._attempts.get(op.uuid, 0) + 1
        self._check_init_secrets(op)
        for _ in range(MAX_ATTEMPTS):
            run = self._new_run(op, on_update, attempt)
            with self._lock:
                self._runs[op.uuid] = run
                self._attempts[op.uuid] = attempt
            try:
                if self._create_or_adopt(op, run):
                    break
            except BaseException:
                with self._lock:
                    self._runs.pop(op.uuid, None)
                raise
            attempt += 1  # a finished attempt of this run exists: this is the next one
        else:
            raise K8sSubmitError(f"run {op.uuid}: more than {MAX_ATTEMPTS} attempts exist already")
        self._replay(run)
        return self._record(run)

    def _check_init_secrets(self, op: CompiledOp) -> None:
        """The Secrets holding the credentials of connections the op's init entries read exist (a missing one would
        leave the pod in ``CreateContainerConfigError``): refused before anything of the op is created."""
        for i, step in enumerate(op.init):
            connection = step.spec.get("connection") or {}
            secret = (connection.get("secret") or {}).get("name")
            if not secret:
                continue
            try:
                self.api.request("GET", path("secrets", self.namespace, str(secret)))
            except K8sError as exc:
                if exc.code == 404:
                    raise K8sSubmitError(
                        f"op {op.name!r}: init[{i}]: connection {connection['name']!r} takes its credentials from "
                        f"Secret {secret!r}, which does not exist in namespace {self.namespace!r}"
                    ) from exc
                if exc.code != 403:  # may not read Secrets (RBAC): not checked
                    raise K8sSubmitError(self._explain(exc, f"read Secret {secret!r}")) from exc

    def _create_or_adopt(self, op: CompiledOp, run: _Run) -> bool:
        """Create the run's objects; False when the name belongs to a finished attempt of this run."""
        try:
            self._create(op, run)
            return True
        except K8sError as exc:
            if exc.code != 409:
                raise K8sSubmitError(self._explain(exc, f"create the {self._what(op)} of op {op.name!r}")) from exc
        try:
            return self._adopt(op, run)
        except K8sError as exc:
            raise K8sSubmitError(self._explain(exc, f"adopt the existing {self._what(op)} of op {op.name!r}")) from exc

    @staticmethod
    def _what(op: CompiledOp) -> str:
        return "Job" if op.kind == "job" else "Pod"

    def _new_run(self, op: CompiledOp, on_update: UpdateCallback, attempt: int) -> _Run:
        return _Run(
            uuid=op.uuid,
            op_name=op.name,
            kind=op.kind,
            on_update=on_update,
            attempt=attempt,
            name=names.resource_name(op.name, op.uuid, attempt),
            main=k8s_manifests.main_container_name(op),
            ports=op.placement.ports,
            created_at=self.clock(),
            keep=self.settings.keep_finished or op.termination.ttl is not None,
            events=op.labels.get(EVENTS_AWAITED_LABEL) == "true",
            store=self.config.artifacts_store is not None,
            bucket=self.config.artifacts_store,
        )

    def _create(self, op: CompiledOp, run: _Run) -> None:
        try:
            step = stepcode.step_code(op)
            if op.kind == "job":
                body = k8s_manifests.job_manifest(op, self.config, run.attempt, step)
            else:
                body = k8s_manifests.service_pod_manifest(op, self.config, run.attempt, step)
        except ValueError as exc:
            raise K8sSubmitError(f"op {op.name!r}: {exc}") from exc
        self._ship(bundle.runtime_bundle().configmap(), "the runtime bundle")
        if step is not None:
            self._ship(step.configmap(), f"the code of step {op.name!r}")
        if op.kind == "job":
            self.api.request("POST", path("jobs", self.namespace), body=body)
            return
        pod = self.api.request("POST", path("pods", self.namespace), body=body)
        try:
            self._create_service(op, run, pod)
        except K8sError as exc:
            # Nothing half-made: the Pod would run (TensorBoard) with nothing pointing at it.
            with contextlib.suppress(K8sError):
                self.api.request("DELETE", path("pods", self.namespace, run.name), query={"gracePeriodSeconds": 0})
            service = k8s_manifests.service_name(op.uuid)
            raise K8sSubmitError(
                self._explain(exc, f"create Service {service!r} of op {op.name!r} (its Pod {run.name!r} was deleted)")
            ) from exc

    def _ship(self, configmap: dict[str, Any], what: str) -> None:
        """Create an immutable, content-named ConfigMap once per executor; a 409 means it is there already
        (another kernel shipped the same content), which is as good."""
        name = configmap["metadata"]["name"]
        with self._lock:
            if name in self._shipped:
                return
        try:
            self.api.request("POST", path("configmaps", self.namespace), body=configmap)
        except K8sError as exc:
            if exc.code != 409:
                raise K8sSubmitError(self._explain(exc, f"create ConfigMap {name} ({what})")) from exc
        with self._lock:
            self._shipped.add(name)

    def _create_service(self, op: CompiledOp, run: _Run, pod: dict[str, Any]) -> None:
        if not op.placement.ports:
            return
        service = k8s_manifests.service_manifest(op, self.config, run.attempt, pod)
        try:
            self.api.request("POST", path("services", self.namespace), body=service)
        except K8sError as exc:
            if exc.code != 409:
                raise
            # The Service of an earlier attempt (owned by its pod, maybe not yet collected): point it here.
            self.api.request(
                "PUT",
                path("services", self.namespace, service["metadata"]["name"]),
                body=self._replace_service(service),
            )

    def _replace_service(self, service: dict[str, Any]) -> dict[str, Any]:
        current = self.api.request("GET", path("services", self.namespace, service["metadata"]["name"]))
        spec = {**current.get("spec", {}), "selector": service["spec"]["selector"], "ports": service["spec"]["ports"]}
        meta = {
            **current["metadata"],
            **{k: service["metadata"][k] for k in ("labels", "annotations", "ownerReferences")},
        }
        return {**current, "metadata": meta, "spec": spec}

    def _adopt(self, op: CompiledOp, run: _Run) -> bool:
        """409 on create: adopt the object if it is this run's attempt and still live (True), or say it
        is a finished attempt (False: try the next attempt). Anything else is an error."""
        plural = "jobs" if op.kind == "job" else "pods"
        existing = self.api.request("GET", path(plural, self.namespace, run.name))
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(names.RUN) != names.label_value(op.uuid):
            raise K8sSubmitError(
                f"cannot create {plural[:-1]} {run.name!r}: an object of that name exists and is not run {op.uuid}"
            )
        if plural == "jobs":
            finished = interpret_job(existing) is not None
        else:
            finished = interpret_pod(existing, run.main).final or bool(existing["metadata"].get("deletionTimestamp"))
        if finished:
            return False
        if labels.get(names.KERNEL) != self.kernel_label:
            self._relabel(run)
        if op.kind == "service":
            self._create_service(op, run, existing)
        log.info("run %s: %s %s exists already; adopted", op.uuid, plural[:-1], run.name)
        return True

    def _record(self, run: _Run) -> dict[str, Any]:
        return {
            "executor": self.name,
            "run_uuid": run.uuid,
            "namespace": self.namespace,
            "kind": run.kind,
            "name": run.name,
            "attempt": run.attempt,
            "kernel": self.kernel_label,
            "main": run.main,
            "ports": list(run.ports),
            "service": k8s_manifests.service_name(run.uuid) if run.ports else None,
        }

    # -- observing pods (the watch thread) -------------------------------------------------------------

    def _run_of(self, pod: dict[str, Any]) -> _Run | None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        run_uuid = labels.get(names.RUN)
        run = self._runs.get(run_uuid) if run_uuid else None
        if run is None or labels.get(names.ATTEMPT) != str(run.attempt):
            return None  # not ours, or an earlier attempt of a retried run
        return run

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        with self._lock:
            run = self._run_of(pod)
            self._changed.notify_all()
        if run is None or run.final:
            return
        run.pod = pod["metadata"]["name"]
        run.last_pod = pod
        labels = pod["metadata"].get("labels") or {}
        if kind == "DELETED" and labels.get(names.KERNEL) != self.kernel_label:
            # It left our selector: another kernel adopted it (re-attach). Not ours to report any more.
            log.info("run %s was adopted by kernel %s", run.uuid, labels.get(names.KERNEL))
            with self._lock:
                run.final = True
                self._changed.notify_all()
            return
        observed = self._pull_grace(run, interpret_pod(pod, run.main))
        if run.store and observed.final and kind != "DELETED" and _store_syncing(pod, run.main):
            # The main container ended; the store's sidecars make their last sync (the kubelet stopped them):
            # the run is final once its files are in the store, so a reader of the store finds them all.
            return
        if run.store and observed.final and kind != "DELETED":
            self._store_failed(run, pod)
        if run.stop_requested:
            if observed.status == "succeeded" and observed.at is not None and observed.at < int(run.stop_at):
                # It ended by itself before the stop was asked (finishedAt has whole seconds: a finish in the
                # stop's second counts as stopped, as the local executor's race does). A service that exits 0
                # on SIGTERM (TensorBoard) was stopped, not succeeded.
                self._report_final(run, observed)
            elif kind == "DELETED" or observed.final:
                self._report(run, Observed("stopped", "Stopped", "stopped on request"))
            return
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            # Deleted, not by us: the container's exit code (SIGTERM) is a consequence, not the reason.
            if run.kept_logs is None and kind != "DELETED":
                # A drain's eviction or `kubectl delete pod`: the logs go with the pod, so they are read while
                # the kubelet stops it, as for a stop (what it prints in its grace period too).
                kept = run.kept_logs = _KeptLogs()
                threading.Thread(
                    target=self._keep_deleted_logs, args=(run, kept), name=f"polynb-k8s-keep-{run.uuid[:8]}",
                    daemon=True,
                ).start()  # fmt: skip
            if kind == "DELETED":
                self._workers.submit(self._vanished, run, pod)
            return
        self._report_final(run, observed)
        if observed.status == "failed" and observed.reason in FATAL_WAITING | IMAGE_PULL and run.keep:
            # Kubernetes would wait forever (an image that never comes): end the run's objects even when
            # finished runs are kept (without keep, the final status deletes them anyway).
            self._workers.submit(self._delete_run_objects, run, 0)
        elif observed.status == "running" and observed.ready and run.ports and run.url is None:
            self._workers.submit(self._publish_url, run)

    def _store_failed(self, run: _Run, pod: dict[str, Any]) -> None:
        """The store's sync sidecar ended in failure (its last sync did not reach the bucket): the run gets a
        ``warning`` alert (``alert_warning``, reason ``ArtifactsStoreUnreachable``, as the local executor's sync
        raises) before its final status, and the pod is kept: its artifacts folder holds the only copy."""
        failure = _store_failure(pod)
        if failure is None or run.store_warned:
            return
        run.store_warned = True
        store = self.settings.artifacts_store
        deleting = run.stop_requested or bool(pod["metadata"].get("deletionTimestamp"))
        if not deleting:
            run.keep = True
        folder = f"{k8s_manifests.ARTIFACTS_ROOT}/{run.uuid}"
        where = "lost with the pod, which is being deleted" if deleting else f"kept in pod {run.pod} ({folder})"
        name = f" {store.name!r} ({store.url})" if store is not None else ""
        message = f"the artifacts store{name} did not get the run's last files ({failure}); they are {where}"
        log.warning("run %s: %s", run.uuid, message)
        sink = self._event_sink
        if sink is None:
            return
        payload = {"message": message, "reason": "ArtifactsStoreUnreachable", "path": folder}
        if store is not None:
            payload["connection"] = store.name
        if run.pod is not None and not deleting:
            payload["pod"] = run.pod
        try:
            sink(run.uuid, [{"kind": "alert_warning", "at": time.time(), "payload": payload, "seq": 0}])
        except Exception:
            log.exception("run %s: the store's warning could not be delivered", run.uuid)

    def _report_final(self, run: _Run, observed: Observed) -> None:
        """:meth:`_report`, but outputs left in the store (a pointer in the termination message) are read first,
        by a worker (not the watch's thread); the final status waits for them."""
        where = store_outputs.pointer(observed.outputs) if observed.status == "succeeded" else None
        if where is None:
            self._report(run, observed)
            return
        with self._lock:
            if run.fetching or run.final:
                return
            run.fetching = True
        try:
            self._workers.submit(self._fetch_outputs, run, observed, where)
        except RuntimeError:  # the pool is shut down: read here
            self._fetch_outputs(run, observed, where)

    def _fetch_outputs(self, run: _Run, observed: Observed, where: dict[str, Any]) -> None:
        store = run.bucket
        try:
            if store is None:
                raise store_outputs.OutputsUnreadableError("the run has no bucket store to read them from")
            outputs = store_outputs.read_outputs(store, run.uuid, where)
        except store_outputs.OutputsUnreadableError as exc:
            message = store_outputs.unreadable_message(store, str(exc)) if store is not None else str(exc)
            log.warning("run %s: %s", run.uuid, message)
            read = Observed("failed", store_outputs.OUTPUTS_UNREADABLE, message, at=observed.at,
                            started_at=observed.started_at)  # fmt: skip
        else:
            read = dataclasses.replace(observed, outputs=outputs)
        self._report(run, read, fetched=True)

    def _pull_grace(self, run: _Run, observed: Observed) -> Observed:
        """``ImagePullBackOff`` stays a ``warning`` for ``image_pull_grace`` seconds from the first failed pull."""
        if observed.status != "warning" or observed.reason not in IMAGE_PULL:
            if observed.status in ("starting", "running") or observed.final:
                run.pull_failing_since = None
            return observed
        now = self.clock()
        if run.pull_failing_since is None:
            run.pull_failing_since = now
        grace = self.settings.image_pull_grace
        if observed.reason == "ImagePullBackOff" and now - run.pull_failing_since >= grace:
            return Observed(
                "failed",
                "ImagePullBackOff",
                f"{observed.message} (still failing {grace:g} s after the first failed pull: image_pull_grace)",
            )
        return observed

    def _report(self, run: _Run, observed: Observed, *, url: str | None = None, fetched: bool = False) -> None:
        with self._lock:
            if run.final or (run.fetching and not fetched):
                return
            key = (observed.status, observed.reason)
            if key == run.last and url is None:
                return
            updates = []
            if observed.final and not run.running_reported and observed.started_at is not None:
                updates.append(ExecutorUpdate(run.uuid, "running", "ContainerStarted", "", at=observed.started_at))
                run.running_reported = True
            if observed.status == "running":
                run.running_reported = True
            run.last = key
            run.final = observed.final
            updates.append(
                ExecutorUpdate(
                    run.uuid,
                    observed.status,
                    observed.reason,
                    observed.message,
                    outputs=observed.outputs if observed.final else None,
                    url=url,
                    at=self._when(run, observed),
                )
            )
            self._changed.notify_all()
            forward = run.forward if observed.final else None
            if forward is not None:
                # Closed before the final status is told: whoever sees the run end finds its port closed.
                run.forward = None
                forward.close()
            followers = self._follow_events(run, observed) if run.events else []
            if not followers:
                self._deliver(run, updates)
        if followers:
            # Final: the events still in the logs go first, then the final status (from a worker: the drain
            # waits for the logs' end, which the watch thread must not).
            for follower in followers:
                follower.ending()
            try:
                self._workers.submit(self._drain_then_deliver, run, followers, updates)
            except RuntimeError:  # the pool is shut down (shutdown() reports the runs it stopped)
                for follower in followers:
                    follower.close()
                self._deliver(run, updates)
            return
        if observed.final and not run.keep and not self._closed:
            with contextlib.suppress(RuntimeError):  # the pool is shut down: shutdown() deletes the runs
                self._workers.submit(self._finish, run)

    @staticmethod
    def _when(run: _Run, observed: Observed) -> float:
        """When the update happened: now, as the watch sees it; but a run that ended while no executor watched
        (found ended on re-attach) ended when its container did (``finishedAt``, the node's clock, whole seconds:
        a second of slack), not when it was re-attached."""
        now = time.time()
        if observed.final and observed.at is not None and run.adopted_at and observed.at < run.adopted_at - 1:
            return observed.at
        return now

    @staticmethod
    def _deliver(run: _Run, updates: Sequence[ExecutorUpdate]) -> None:
        for update in updates:
            try:
                run.on_update(update)
            except Exception:
                log.exception("run %s: on_update failed", run.uuid)

    # -- events from inside pods (their containers' logs) ---------------------------------------------

    def _follow_events(self, run: _Run, observed: Observed) -> list[EventFollower]:
        """Under the lock: the run's followers, one per container that writes events (its init entries, its
        sidecars, native or not, and its main container), started once its pod is seen; each waits for its
        container to start, and reads the whole log of one that already ended. Returned only for a final run
        (its final updates wait for the followers' end)."""
        sink = self._event_sink
        if not run.followers and sink is not None and run.pod is not None and not self._closed:
            uuid, pod = run.uuid, run.pod
            for container in self._event_containers(run):
                follower = EventFollower(
                    self.api,
                    self.namespace,
                    pod,
                    container,
                    lambda events: sink(uuid, events),
                    state=functools.partial(self._container_state, pod, container),
                    wait=self._wait_change,
                    retry_wait=LOG_WAIT,
                )
                run.followers.append(follower)
                follower.start()
        return list(run.followers) if observed.final else []

    def _event_containers(self, run: _Run) -> list[str]:
        """The containers of the run's pod that write event markers (``POLYNB_EVENTS_STDOUT`` in their env),
        init containers first; the main container alone when the pod's spec is not at hand."""
        spec = (self._cached_pod(run) or {}).get("spec") or {}
        found = [
            c["name"]
            for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
            if any(e.get("name") == EVENTS_STDOUT_ENV for e in c.get("env") or ())
        ]
        return found or [run.main]

    def _wait_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def _drain_then_deliver(
        self, run: _Run, followers: Sequence[EventFollower], updates: Sequence[ExecutorUpdate]
    ) -> None:
        """A worker: each followed log ends with its container; their events are delivered, then the final
        updates (an engine records no event after a final status). A stream that does not end is cut after a
        while (one deadline for all of them)."""
        deadline = time.monotonic() + EVENTS_DRAIN
        for follower in followers:
            if not follower.join(max(0.0, deadline - time.monotonic())):
                log.warning("run %s: a log did not end %gs after the run: later events are lost", run.uuid,
                            EVENTS_DRAIN)  # fmt: skip
                follower.close()
        self._deliver(run, updates)
        if not run.keep and not self._closed:
            self._finish(run)

    # -- after a run: archive its logs, delete its objects --------------------------------------------

    def _finish(self, run: _Run) -> None:
        """A final run: its logs to ``$POLYNB_HOME/artifacts/<uuid>/logs/`` (``logs()`` reads them once the
        pod is gone) and from there to the artifacts store, then its objects deleted as Polyaxon does right
        after done."""
        try:
            self._archive_logs(run)
            if self.log_archive is not None:
                self.log_archive.archive(run.uuid, artifacts_dir(run.uuid) / "logs")
        except OSError as exc:
            log.warning("run %s: cannot archive its logs: %s", run.uuid, exc)
        except Exception:  # a store's bug must not keep the run's objects alive
            log.exception("run %s: archiving its logs to the %s failed", run.uuid, self.log_archive)
        finally:
            self._delete_finished(run)
            run.finished.set()

    def _archive_logs(self, run: _Run) -> None:
        kept = run.kept_logs
        if kept is not None:  # stopped or deleted: its pod may be gone already
            if not kept.done.wait(EVENTS_DRAIN):
                log.warning("run %s: its log did not end %gs after the stop: archived as it is", run.uuid,
                            EVENTS_DRAIN)  # fmt: skip
            folder = artifacts_dir(run.uuid) / "logs"
            for i, (container, lines) in enumerate(list(kept.lines.items())):
                _write_log(folder / f"{i:02d}-{container}.log", lines, again=run.attempt > 1)
            if kept.lines:
                return
        pod = self._cached_pod(run) or run.last_pod
        if pod is None:
            return
        folder = artifacts_dir(run.uuid) / "logs"
        for i, container in enumerate(self._log_order(pod, run.main)):
            try:
                text = self.api.text(path("pods", self.namespace, run.pod, "log"), query={"container": container})
            except K8sError:
                # Never started, or gone: the Job deleted a pod whose container failed under OnFailure as it
                # restarted it. A failed container's termination message is its log's tail (FallbackToLogsOnError).
                tail = _failed_tail(pod, container)
                if tail is None:
                    continue
                text = tail
            _write_log(folder / f"{i:02d}-{container}.log", list(_visible(text.splitlines())), again=run.attempt > 1)

    def _cached_pod(self, run: _Run) -> dict[str, Any] | None:
        informer = self._informer
        if informer is None or run.pod is None:
            return None
        return next((p for p in informer.snapshot() if p["metadata"]["name"] == run.pod), None)

    @staticmethod
    def _log_order(pod: dict[str, Any], main: str) -> list[str]:
        """Init entries in order, then the main container (the sidecars' logs are not the run's). The container
        making the run's folders comes first when it warned or failed (its terminated state says so), else it is
        left out: its log is empty, and reading it would cost every run a request."""
        spec = pod.get("spec") or {}
        order = [c["name"] for c in spec.get("initContainers") or () if c.get("restartPolicy") != "Always"]
        if FOLDERS_CONTAINER in order and not _has_news(pod, FOLDERS_CONTAINER):
            order.remove(FOLDERS_CONTAINER)
        return [*order, main]

    def _delete_finished(self, run: _Run) -> None:
        query = {"propagationPolicy": BACKGROUND}
        # The Job takes its pods; a service's Pod takes its Service (ownerReferences); run ConfigMaps are
        # owned the same way. A service's Service is deleted by name too: nothing waits on the collector.
        targets = []
        if not run.stop_requested:  # a stop deleted the Job or Pod already
            targets.append(("jobs", run.name) if run.kind == "job" else ("pods", run.name))
        if run.ports:
            targets.append(("services", k8s_manifests.service_name(run.uuid)))
        for plural, name in targets:
            try:
                self.api.request("DELETE", path(plural, self.namespace, name), query=query)
            except K8sError as exc:
                if exc.code != 404:
                    log.warning("run %s: cannot delete %s %s: %s", run.uuid, plural[:-1], name, exc)

    def _replay(self, run: _Run) -> None:
        """Deliver what the watch already knows of a run (submitted before its pod was seen, re-attached)."""
        informer = self._informer
        if informer is None:
            return
        for pod in informer.snapshot():
            with self._lock:
                mine = self._run_of(pod) is run
            if mine:
                self._on_pod("MODIFIED", pod)

    def _on_watch_error(self, exc: K8sError) -> None:
        if exc.code not in (401, 403):
            log.warning("kubernetes executor: pods watch: %s (retrying)", exc)
            return
        message = self._explain(exc, f"watch pods in namespace {self.namespace!r}")
        with self._lock:
            live = [r for r in self._runs.values() if not r.final]
        for run in live:
            self._report(
                run, Observed("warning", "WatchForbidden" if exc.code == 403 else "WatchUnauthorized", message)
            )

    # -- side requests (worker threads) ---------------------------------------------------------------

    def _vanished(self, run: _Run, pod: dict[str, Any]) -> None:
        """The pod was deleted, not on our request: a disruption (a drain) says why, else its Job does (a deadline,
        a deletion by hand)."""
        if (disrupted := interpret_disruption(pod)) is not None:
            self._report(run, disrupted)
            return
        if run.kind == "service":
            observed = interpret_pod(pod, run.main)
            if observed.final and (pod.get("status") or {}).get("reason"):
                self._report(run, observed)  # e.g. evicted
            else:
                self._report(run, Observed("stopped", "Deleted", f"pod {run.pod} was deleted outside polynb"))
            return
        try:
            job = self.api.request("GET", path("jobs", self.namespace, run.name))
        except K8sError as exc:
            if exc.code == 404:
                self._report(run, Observed("stopped", "Deleted", f"Job {run.name} was deleted outside polynb"))
            else:
                log.warning("run %s: cannot read Job %s: %s", run.uuid, run.name, exc)
            return
        verdict = interpret_job(job)
        if verdict is None or verdict.reason == "BackoffLimitExceeded":
            # With backoffLimit 0 the Job counts the deleted pod as its one failure (now, or once its controller
            # has seen the deletion: the Job is watched by no one, so not waited for) and makes no other: the
            # run did not fail by itself (that is reported from the pod before any deletion), its pod was
            # deleted. A deadline (DeadlineExceeded) fails the Job before it deletes the pod.
            observed = interpret_pod(pod, run.main)
            if observed.final and (pod.get("status") or {}).get("reason"):
                verdict = observed  # e.g. evicted
            elif (restarted := interpret_restarted(pod, run.main)) is not None:
                verdict = restarted  # OnFailure: the Job failed at the container's first restart
            else:
                verdict = Observed("stopped", "Deleted", f"pod {run.pod} was deleted outside polynb")
        if verdict is not None:
            self._report(run, verdict)

    def _publish_url(self, run: _Run) -> None:
        host = k8s_manifests.service_host(run.uuid, self.namespace)
        url = f"http://{host}:{run.ports[0]}/"
        if self.port_forward and run.pod is not None:
            try:
                forward = PortForward(
                    self._connect(self.namespace, lambda: self._serving_pod(run), run.ports[0]),
                    prefer=preferred_local_port(run.uuid),
                )
            except OSError as exc:
                log.warning("run %s: cannot open a local port-forward: %s", run.uuid, exc)
            else:
                with self._lock:
                    if run.final or run.forward is not None:
                        forward.close()
                        return
                    run.forward = forward
                url = forward.url
        with self._lock:
            if run.url is not None:
                return
            run.url = url
        self._report(run, Observed("running", "ServiceReady", f"service reachable at {url}"), url=url)

    @staticmethod
    def _serving_pod(run: _Run) -> str:
        """The run's pod now (per forwarded connection: the watch keeps ``run.pod`` current)."""
        if run.final or run.pod is None:
            raise LookupError(f"run {run.uuid} has no running pod")
        return run.pod

    def _delete_run_objects(self, run: _Run, grace: float | None) -> None:
        query: dict[str, Any] = {"propagationPolicy": BACKGROUND}
        if grace is not None:
            query["gracePeriodSeconds"] = int(grace)
        plural = "jobs" if run.kind == "job" else "pods"
        keeping = self._keep_logs(run) if run.stop_requested else None
        try:
            self.api.request("DELETE", path(plural, self.namespace, run.name), query=query)
        except K8sError as exc:
            if exc.code != 404:
                log.warning("run %s: cannot delete %s %s: %s", run.uuid, plural[:-1], run.name, exc)
                if keeping is not None:
                    keeping.done.set()
                return
        finally:
            if keeping is not None:
                threading.Thread(
                    target=self._follow_kept_logs, args=(run, keeping), name=f"polynb-k8s-keep-{run.uuid[:8]}",
                    daemon=True,
                ).start()  # fmt: skip
        if run.kind == "job" and run.stop_requested and run.pod is not None and grace is not None:
            # The Job's GC deletes pods with their own grace period; ours is the one asked for.
            with contextlib.suppress(K8sError):
                self.api.request("DELETE", path("pods", self.namespace, run.pod), query=query)
        if run.stop_requested and run.pod is None:
            self._report(run, Observed("stopped", "Stopped", "stopped on request before its pod started"))

    def _keep_deleted_logs(self, run: _Run, kept: _KeptLogs) -> None:
        """A thread of its own: the logs of a run whose pod is being deleted outside polynb, to their end."""
        if self._keep_logs(run, kept) is None:
            kept.done.set()
            return
        self._follow_kept_logs(run, kept)

    def _keep_logs(self, run: _Run, kept: _KeptLogs | None = None) -> _KeptLogs | None:
        """Before a stop deletes a run's pod (its logs go with it, and the pod may be gone by the time the run
        is final): the logs of its containers that ended, and a followed stream of the last one that started,
        opened now so that what it prints in its grace period is read to its end (:meth:`_follow_kept_logs`).
        ``kept``: fill that one (a deletion outside polynb, already under way)."""
        pod = self._cached_pod(run)
        if pod is None or run.pod is None:
            return None
        kept = kept if kept is not None else _KeptLogs()
        log_path = path("pods", self.namespace, run.pod, "log")
        statuses = {
            cs.get("name"): cs.get("state") or {}
            for cs in [*((pod.get("status") or {}).get("initContainerStatuses") or ()),
                       *((pod.get("status") or {}).get("containerStatuses") or ())]
        }  # fmt: skip
        for container in self._log_order(pod, run.main):
            state = statuses.get(container) or {}
            if "running" in state:
                kept.lines[container] = []
                kept.follow = container
                with contextlib.suppress(K8sError):  # then _follow_kept_logs reads it as it can
                    kept.stream = self.api.stream(
                        log_path, query={"container": container, "follow": True, "timestamps": True},
                        timeout=(10.0, 300.0),
                    )  # fmt: skip
                break
            if "terminated" not in state:
                break  # not started: nor are the next ones
            try:
                text = self.api.text(log_path, query={"container": container})
            except K8sError:
                continue
            kept.lines[container] = list(_visible(text.splitlines()))
        run.kept_logs = kept
        return kept

    def _follow_kept_logs(self, run: _Run, kept: _KeptLogs) -> None:
        """A thread of its own (a stop's grace can be long): the stopped run's running container's log until
        it ends, through the stream :meth:`_keep_logs` opened (reopened from its last line if it drops)."""
        container, stream, pod = kept.follow, kept.stream, run.pod
        try:
            if container is None or pod is None:
                return
            resume = Resume()
            lines = kept.lines[container]
            if stream is not None:
                try:
                    for raw in stream.lines():
                        ts, text = split_timestamp(raw)
                        if resume.accept(ts, text) and (shown := strip_marker(text)) is not None:
                            lines.append(shown)
                except Exception as exc:  # dropped: read on from its last line while the pod is there
                    log.debug("log of %s/%s dropped: %s", pod, container, exc)
                finally:
                    stream.close()
                if self._container_state(pod, container) in ("terminated", "gone"):
                    return
            lines.extend(self._container_log(run.uuid, pod, container, follow=True, resume=resume))
        except Exception:
            log.exception("run %s: reading its log while it stops failed", run.uuid)
        finally:
            kept.done.set()

    def _check_stuck(self) -> None:
        """Periodic (heartbeat thread; tests call it after moving the clock).

        * a Job still without a pod ``pod_start_timeout`` after its creation: ``warning`` with the cluster's
          last warning event (quota, admission, no node fits, ...);
        * one whose pods cannot be created (a ``FailedCreate`` event) ``failed_create_timeout`` after its
          creation: ``failed`` with the event's message, and the Job deleted (it would retry forever);
        * a pod still failing to pull its image ``image_pull_grace`` after the first failure: ``failed``;
        * every ``lease_seconds``, the sweep of gone kernels (:func:`~.kernel.sweep`), as at start: a kernel that
          lives for days still clears what released or crashed kernels left.
        """
        now = self.clock()
        s = self.settings
        if s.sweep and now - self._last_sweep >= s.lease_seconds:
            self._last_sweep = now
            try:
                k8s_kernel.sweep(self.api, self.namespace, now=time.time(), exclude=self.kernel_label)
            except K8sError as exc:
                log.warning("kubernetes executor: sweep of gone kernels: %s", exc)
        with self._lock:
            podless = [
                r
                for r in self._runs.values()
                if r.kind == "job"
                and not r.final
                and r.pod is None
                and now - r.created_at >= min(s.pod_start_timeout, s.failed_create_timeout)
            ]
            pulling = [
                r
                for r in self._runs.values()
                if not r.final and r.pull_failing_since is not None and now - r.pull_failing_since >= s.image_pull_grace
            ]
            creating = [
                r
                for r in self._runs.values()
                if not r.final
                and r.pod is not None
                and not r.creating_checked
                and r.last is not None
                and r.last[0] == "starting"
                and now - r.created_at >= s.pod_start_timeout
            ]
        for run in podless:
            self._check_podless(run, now - run.created_at)
        for run in creating:
            self._check_creating(run)
        for run in pulling:
            pod = self._cached_pod(run)
            if pod is not None:
                self._on_pod("MODIFIED", pod)

    def _check_creating(self, run: _Run) -> None:
        """A pod still starting ``pod_start_timeout`` after the run's creation: its last warning event, if it has
        one (a volume that cannot be mounted: a Secret, ConfigMap or claim that does not exist, a volume held on
        another node), becomes a ``warning``. The kubelet retries for ever (what is missing may come), so the run
        is not failed; a pod that is only slow (a long init entry) has no warning and says nothing."""
        warnings = self._warning_events(run, "Pod", run.pod)
        if not warnings:
            return
        run.creating_checked = True
        last = warnings[-1]
        message = f"pod {run.pod} cannot start its containers: {last.get('message') or ''}"
        with self._lock:
            still_starting = not run.final and run.last is not None and run.last[0] == "starting"
        if still_starting:
            self._report(run, Observed("warning", str(last.get("reason") or "Warning"), message))

    def _warning_events(self, run: _Run, kind: str, name: str | None) -> list[dict[str, Any]] | None:
        """The ``Warning`` events of ``run``'s object ``kind``/``name``, oldest first; None when they cannot be read."""
        try:
            events = self.api.request(
                "GET",
                path("events", self.namespace),
                query={"fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"},
            )
        except K8sError as exc:
            log.warning("run %s: cannot read events: %s", run.uuid, exc)
            return None
        return [e for e in events.get("items") or () if e.get("type") == "Warning"]

    def _check_podless(self, run: _Run, age: float) -> None:
        warnings = self._warning_events(run, "Job", run.name)
        if warnings is None:
            return
        failed_creates = [e for e in warnings if e.get("reason") == "FailedCreate"]
        if failed_creates and age >= self.settings.failed_create_timeout:
            message = str(failed_creates[-1].get("message") or "")
            self._report(
                run,
                Observed(
                    "failed",
                    "FailedCreate",
                    f"Job {run.name} could not create its pod for {age:.0f} s (failed_create_timeout): {message}",
                ),
            )
            if run.keep:  # without keep, the final status deletes it
                self._workers.submit(self._delete_run_objects, run, 0)
            return
        if warnings and not run.stuck_checked and age >= self.settings.pod_start_timeout:
            run.stuck_checked = True
            last = warnings[-1]
            self._report(run, Observed("warning", str(last.get("reason") or "Warning"), str(last.get("message"))))

    def _relabel(self, run: _Run) -> None:
        """Adopt a run of another kernel: our kernel label on its objects, so our watch sees its pods."""
        body = {"metadata": {"labels": {names.KERNEL: self.kernel_label}}}
        run_selector = names.selector({names.RUN: names.label_value(run.uuid)})
        plural = "jobs" if run.kind == "job" else "pods"
        patch = "application/merge-patch+json"
        self.api.request("PATCH", path(plural, self.namespace, run.name), body=body, content_type=patch)
        if run.kind == "job":
            pods = self.api.request("GET", path("pods", self.namespace), query={"labelSelector": run_selector})
            for pod in pods.get("items") or ():
                self.api.request(
                    "PATCH", path("pods", self.namespace, pod["metadata"]["name"]), body=body, content_type=patch
                )
        if run.ports:
            with contextlib.suppress(K8sError):
                self.api.request(
                    "PATCH",
                    path("services", self.namespace, k8s_manifests.service_name(run.uuid)),
                    body=body,
                    content_type=patch,
                )

    # -- control --------------------------------------------------------------------------------------

    def stop(self, run_uuid: str, *, grace: float | None = None) -> None:
        grace = DEFAULT_STOP_GRACE if grace is None else grace
        with self._lock:
            run = self._runs.get(run_uuid)
            if run is None or run.final or run.stop_requested:
                return
            run.stop_requested = True
            run.stop_at = time.time()
            if run.store:
                # The grace is the whole pod's: the store's sidecars sync last, after the main container ended.
                grace = max(grace, float(self.config.store_grace))
        self._workers.submit(self._delete_run_objects, run, grace)

    def reattach(self, op: CompiledOp, record: dict[str, Any], on_update: UpdateCallback) -> bool:
        if record.get("namespace") not in (None, self.namespace):
            log.warning(
                "run %s lives in namespace %s, not %s: not re-attached", op.uuid, record["namespace"], self.namespace
            )
            return False
        self._ensure_started()
        attempt = int(record.get("attempt") or 1)
        run = self._new_run(op, on_update, attempt)
        run.name = str(record.get("name") or run.name)
        run.adopted_at = time.time()
        plural = "jobs" if op.kind == "job" else "pods"
        try:
            obj = self.api.request("GET", path(plural, self.namespace, run.name))
        except K8sError as exc:
            if exc.code == 404:
                return False
            raise K8sSubmitError(self._explain(exc, f"re-attach run {op.uuid}")) from exc
        with self._lock:
            self._runs[op.uuid] = run
            self._attempts[op.uuid] = max(self._attempts.get(op.uuid, 0), attempt)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(names.KERNEL) != self.kernel_label:
            try:
                self._relabel(run)
            except K8sError as exc:
                raise K8sSubmitError(self._explain(exc, f"adopt run {op.uuid}")) from exc
        if op.kind == "job" and (observed := interpret_job(obj)) is not None:
            # Finished while nobody watched; its pod (if still there) has the details and the outputs.
            self._replay(run)
            if not run.final:
                if observed.reason == "BackoffLimitExceeded" and restart_policy(obj) == "Never" and self._podless(run):
                    # No pod left: a pod that failed by itself stays (Failed), so this one was deleted, and the
                    # Job counted the deletion as its failure (under OnFailure, the Job deletes it at a restart).
                    observed = Observed("stopped", "Deleted", f"the pod of Job {run.name} was deleted outside polynb")
                self._report(run, observed)
            return True
        if op.kind == "service":
            self._on_pod("MODIFIED", obj)
        self._replay(run)
        return True

    def _podless(self, run: _Run) -> bool:
        """The run's attempt has no pod at all (asked of the API server: a re-attached pod enters the watch only
        once relabelled)."""
        if run.pod is not None:
            return False
        selector = names.selector({names.RUN: names.label_value(run.uuid), names.ATTEMPT: str(run.attempt)})
        try:
            data = self.api.request("GET", path("pods", self.namespace), query={"labelSelector": selector})
        except K8sError:
            return False
        return not data.get("items")

    def cleanup(self, run_uuid: str) -> None:
        with self._lock:
            run = self._runs.get(run_uuid)
            if run is not None and not run.final:
                return  # ttl counts from the end of the run
        if run is not None and not run.keep and run.finished.wait(LOG_WAIT):
            with self._lock:
                self._runs.pop(run_uuid, None)
            return  # deleted when it ended (logs archived first)
        with self._lock:
            self._runs.pop(run_uuid, None)
        if run is not None and run.forward is not None:
            run.forward.close()
        selector = names.selector({names.RUN: names.label_value(run_uuid)})
        # A job's pods go with their Job, a service's Service with its pod; unknown run: both kinds.
        plurals = ["jobs", "pods"] if run is None else ["jobs"] if run.kind == "job" else ["pods"]
        for plural in plurals:
            try:
                self.api.request(
                    "DELETE",
                    path(plural, self.namespace),
                    query={"labelSelector": selector, "propagationPolicy": BACKGROUND},
                )
            except K8sError as exc:
                if exc.code != 404:
                    log.warning("cleanup of run %s: %s", run_uuid, exc)

    def shutdown(self, *, stop_running: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        with self._start_lock:
            started = self._started
        if started and stop_running:
            with self._lock:
                for run in self._runs.values():
                    run.stop_requested = True
                    run.stop_at = run.stop_at or time.time()
                live = [r for r in self._runs.values() if not r.final]
            try:
                k8s_kernel.delete_kernel_runs(self.api, self.namespace, self.kernel_label)
            except K8sError as exc:
                log.warning("kubernetes executor: cannot delete this kernel's runs: %s", exc)
            with self._changed:
                self._changed.wait_for(lambda: all(r.final for r in live), timeout=self.settings.shutdown_wait)
            for run in live:  # deleted, whether or not the watch saw it go
                self._report(run, Observed("stopped", "Stopped", "stopped: the executor shut down"))
        if self._informer is not None:
            self._informer.stop()
        self.lease.stop()
        if started:
            try:
                if stop_running:
                    self.lease.delete()
                else:
                    self.lease.release()
            except K8sError as exc:
                log.warning("kubernetes executor: kernel ConfigMap: %s", exc)
        for run in list(self._runs.values()):
            if run.forward is not None:
                run.forward.close()
        self._workers.shutdown(wait=True)
        for run in list(self._runs.values()):
            for follower in run.followers:
                follower.close()
        self.api.close()

    # -- logs -----------------------------------------------------------------------------------------

    def logs(self, run_uuid: str, *, follow: bool = False) -> Iterator[str]:
        """Init entries' logs in order, then the main container's; ``follow`` tails until the run ends."""
        run = self._runs.get(run_uuid)
        if run is not None and run.final and not run.keep:
            run.finished.wait(LOG_WAIT)  # its logs are being archived before its pod goes
        if (run is None or run.final) and has_archive(run_uuid):
            yield from archived_logs(run_uuid)
            return
        pod = self._find_pod(run_uuid)
        if run is not None and run.attempt > 1 and has_archive(run_uuid):
            # A retry: the earlier attempts' logs are archived (their pods are gone), as one log across
            # attempts, which is what the local executor's run log holds too.
            yield from archived_logs(run_uuid)
        if pod is None:
            return
        spec = pod.get("spec") or {}
        main = run.main if run else spec["containers"][0]["name"]
        for container in self._log_order(pod, main):
            yield from self._container_log(run_uuid, pod["metadata"]["name"], container, follow=follow)

    def _find_pod(self, run_uuid: str) -> dict[str, Any] | None:
        run = self._runs.get(run_uuid)
        selector = {names.RUN: names.label_value(run_uuid)}
        if run is not None:
            selector[names.ATTEMPT] = str(run.attempt)
        deadline = time.monotonic() + LOG_WAIT
        while True:
            try:
                data = self.api.request(
                    "GET", path("pods", self.namespace), query={"labelSelector": names.selector(selector)}
                )
            except K8sError as exc:
                log.warning("logs of run %s: %s", run_uuid, exc)
                return None
            items = sorted(data.get("items") or (), key=lambda p: p["metadata"].get("creationTimestamp") or "")
            if items:
                pod: dict[str, Any] = items[-1]
                return pod
            # A just-submitted Job has no pod yet: wait for one (woken by the watch), not forever.
            with self._changed:
                if run is None or run.final or time.monotonic() >= deadline:
                    return None
                self._changed.wait(LOG_WAIT)

    def _container_state(self, pod_name: str, container: str) -> str:
        """``waiting``, ``running``, ``terminated`` or ``gone`` (no such pod any more), from the cache."""
        informer = self._informer
        pod = None
        if informer is not None:
            pod = next((p for p in informer.snapshot() if p["metadata"]["name"] == pod_name), None)
        if pod is None:
            try:
                pod = self.api.request("GET", path("pods", self.namespace, pod_name))
            except K8sError:
                return "gone"
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
            if cs.get("name") == container:
                state = cs.get("state") or {}
                return next((k for k in ("terminated", "running") if k in state), "waiting")
        return "waiting"

    def _container_log(
        self, run_uuid: str, pod: str, container: str, *, follow: bool, resume: Resume | None = None
    ) -> Iterator[str]:
        """The container's log; ``follow`` reads on until it ends, from ``resume`` (where a reader left it)."""
        log_path = path("pods", self.namespace, pod, "log")
        if not follow:
            try:
                text = self.api.text(log_path, query={"container": container})
            except K8sError:
                return  # not started (400) or gone (404): nothing to show
            yield from _visible(text.splitlines())
            return
        resume = Resume() if resume is None else resume
        while True:
            state = self._container_state(pod, container)
            if state == "gone":
                return
            if state == "waiting":
                with self._changed:
                    run = self._runs.get(run_uuid)
                    if run is not None and run.final and self._container_state(pod, container) == "waiting":
                        return  # the run ended before this container started
                    self._changed.wait(LOG_WAIT)
                continue
            query: dict[str, Any] = {"container": container, "follow": True, "timestamps": True}
            since = resume.reopen()
            if since:
                query["sinceTime"] = since
            try:
                stream = self.api.stream(log_path, query=query, timeout=(10.0, 300.0))
            except K8sError as exc:
                if exc.code in (400, 404):
                    with self._changed:
                        self._changed.wait(LOG_WAIT)
                    if exc.code == 404:
                        return
                    continue
                raise
            try:
                for raw in stream.lines():
                    ts, text = split_timestamp(raw)
                    if resume.accept(ts, text) and (shown := strip_marker(text)) is not None:
                        yield shown
            except Exception as exc:  # a dropped stream: resume from the last timestamp
                log.debug("log of %s/%s dropped: %s", pod, container, exc)
            finally:
                stream.close()
            if self._container_state(pod, container) in ("terminated", "gone"):
                return


def _store_syncing(pod: dict[str, Any], main: str) -> bool:
    """The main container has ended and a store sidecar still runs (its last sync)."""
    status = pod.get("status") or {}
    mains = [s for s in status.get("containerStatuses") or () if isinstance(s, dict) and s.get("name") == main]
    if not mains or "terminated" not in (mains[0].get("state") or {}):
        return False
    store = set(storesync.store_container_names(pod.get("spec") or {}))
    return any(
        s.get("name") in store and "running" in (s.get("state") or {})
        for s in status.get("initContainerStatuses") or ()
        if isinstance(s, dict)
    )


def _store_failure(pod: dict[str, Any]) -> str | None:
    """What the store's ``up`` sidecar said when it exited with an error (None: it did not)."""
    for s in (pod.get("status") or {}).get("initContainerStatuses") or ():
        if not isinstance(s, dict) or s.get("name") != storesync.UP:
            continue
        term = (s.get("state") or {}).get("terminated") or {}
        code = term.get("exitCode")
        if code in (0, None):
            return None
        detail = " ".join(str(term.get("message") or "").split())[-500:]
        return f"container {storesync.UP} exited with code {code}" + (f": {detail}" if detail else "")
    return None


def restart_policy(job: dict[str, Any]) -> str:
    """The restartPolicy of a Job's pods (``Never`` when unset, as polynb writes it)."""
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    return str(template.get("restartPolicy") or "Never")


def _write_log(file: Path, lines: Sequence[str], *, again: bool) -> None:
    """A container's archived log; a retry's attempt (``again``) adds to the earlier attempts' (the run's one
    archive, as the local executor's log), where the first attempt writes it anew."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a" if again else "w", encoding="utf-8") as out:
        out.write("".join(f"{x}\n" for x in lines))


def _has_news(pod: dict[str, Any], init: str) -> bool:
    """The init container ``init`` ended with a termination message or an error."""
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or ():
        if isinstance(cs, dict) and cs.get("name") == init:
            term = (cs.get("state") or {}).get("terminated") or {}
            return bool(term.get("message")) or term.get("exitCode") not in (0, None)
    return False


def _failed_tail(pod: dict[str, Any], container: str) -> str | None:
    """The log tail a failed container left in its termination message (its last failure's, if it was restarted),
    when its policy is ``FallbackToLogsOnError``; None otherwise."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
    policy = next((c.get("terminationMessagePolicy") for c in containers if c.get("name") == container), None)
    if policy != "FallbackToLogsOnError":
        return None
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
        if cs.get("name") != container:
            continue
        for state in (cs.get("state") or {}, cs.get("lastState") or {}):
            term = state.get("terminated") or {}
            if term.get("exitCode") not in (0, None) and term.get("message"):
                return str(term["message"])
    return None


def _visible(lines: Iterable[str]) -> Iterator[str]:
    """Log lines without the event markers (``polynb.tracking`` writes them for the executor, not for users)."""
    for line in lines:
        shown = strip_marker(line)
        if shown is not None:
            yield shown


def _archive_files(run_uuid: str) -> list[Path]:
    try:
        return sorted((artifacts_dir(run_uuid) / "logs").glob("[0-9][0-9]-*.log"))
    except (OSError, ValueError):
        return []


def has_archive(run_uuid: str) -> bool:
    return bool(_archive_files(run_uuid))


def archived_logs(run_uuid: str) -> Iterator[str]:
    """The logs a finished run left in ``$POLYNB_HOME/artifacts/<uuid>/logs/`` (its containers in order)."""
    for file in _archive_files(run_uuid):
        with contextlib.suppress(OSError):
            yield from file.read_text(encoding="utf-8", errors="replace").splitlines()
