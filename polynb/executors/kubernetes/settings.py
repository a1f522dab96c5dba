"""How a Kubernetes executor is configured: one frozen :class:`KubernetesSettings`, written in code or read
from ``POLYNB_K8S_*`` variables (:meth:`KubernetesSettings.from_env`), and checked when it is made, so a
bad value is reported with its name before anything talks to the cluster.

Standard library only: the registry reads settings without paying for the kubernetes client.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

ENV: Final[Mapping[str, str]] = {
    "namespace": "POLYNB_K8S_NAMESPACE",
    "context": "POLYNB_K8S_CONTEXT",
    "kernel_id": "POLYNB_K8S_KERNEL_ID",
    "default_image": "POLYNB_K8S_IMAGE",
    "tools_image": "POLYNB_K8S_TOOLS_IMAGE",
    "git_image": "POLYNB_K8S_GIT_IMAGE",
    "artifacts_claim": "POLYNB_K8S_ARTIFACTS_CLAIM",
    "port_forward": "POLYNB_K8S_PORT_FORWARD",
    "native_sidecars": "POLYNB_K8S_NATIVE_SIDECARS",
    "security_profile": "POLYNB_K8S_SECURITY_PROFILE",
    "keep_finished": "POLYNB_K8S_KEEP_FINISHED",
    "service_port_base": "POLYNB_K8S_SERVICE_PORT",
    "store_image": "POLYNB_K8S_STORE_IMAGE",
}
"""The settings :meth:`KubernetesSettings.from_env` reads, and their variables (an empty one is unset).
The cluster itself comes from ``KUBECONFIG`` (or ``~/.kube/config``, or the in-cluster service account)."""

SECURITY_PROFILES: Final = ("default", "restricted")
"""``restricted``: every container gets what PodSecurity ``restricted`` demands (see :mod:`.manifests`)."""
_ENV_FLAGS: Final = frozenset({"port_forward", "native_sidecars", "keep_finished"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class BucketStore:
    """A bucket connection (``s3``, ``gcs``, ``wasb``) named by ``artifactsStore``: every pod gets a sidecar that
    syncs its artifacts folder there (:mod:`~polynb.executors.kubernetes.storesync`). Frozen and hashable, as the
    settings are: the connection entry is kept as JSON."""

    name: str
    kind: str
    url: str
    """``schema.bucket`` without a trailing slash: a run's folder is ``<url>/<uuid>``."""
    entry: str
    """The connection entry as written in the config file, as JSON (sorted keys)."""

    @classmethod
    def of(cls, connection: Mapping[str, Any]) -> BucketStore:
        schema = connection.get("schema") or {}
        return cls(
            name=str(connection["name"]),
            kind=str(connection["kind"]),
            url=str(schema.get("bucket") or "").strip().rstrip("/"),
            entry=json.dumps(connection, sort_keys=True, default=str),
        )

    @property
    def connection(self) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(self.entry)
        return entry


class SettingsError(ValueError):
    """Settings that cannot work: the message names each bad setting (or variable) and what it expects."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))
        self.problems = problems
        """``(setting or variable, what is wrong)`` pairs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KubernetesSettings:
    """Everything a :class:`~.executor.KubernetesExecutor` can be told; the defaults suit a laptop cluster
    (kind, k3d, minikube) reached through ``KUBECONFIG``."""

    # -- where: the cluster, the namespace, this kernel
    namespace: str | None = None
    """Default: the namespace of the kubeconfig context (or of the service account), else ``default``."""
    context: str | None = None
    """A kubeconfig context; default: the current one."""
    kubeconfig: str | os.PathLike[str] | None = None
    """Default: ``KUBECONFIG`` (``:``-merged files), else ``~/.kube/config``, else in-cluster."""
    in_cluster: bool | None = None
    """True: the pod's service account, whatever kubeconfig says; None: decide as above."""
    kernel_id: str | None = None
    """Who owns the runs (label ``polynb.io/kernel``); a stable one lets a restarted kernel keep them.
    Default: host, pid and a random suffix."""

    # -- what the runs get
    default_image: str = "python:3.11-slim"
    """For containers without an image."""
    tools_image: str = "python:3.11-slim"
    """For polynb's own init containers (``file``, ``artifacts``, ``paths``, ``tensorboard`` entries)."""
    git_image: str = "alpine/git:2.45.2"
    artifacts_claim: str | None = None
    """A PersistentVolumeClaim mounted as the artifacts root in every run (shared outputs, TensorBoard)."""
    artifacts_store: BucketStore | None = None
    """A bucket as the artifacts store (``artifactsStore`` naming an s3/gcs/wasb connection): a native sidecar in
    every pod syncs the run's artifacts folder up to ``<bucket>/<uuid>`` while it runs and at its end, and a
    TensorBoard pod pulls the runs it shows down from there."""
    store_image: str | None = None
    """The image of the store's sidecars: one with polynb installed (``python -m polynb.runtime.store_sync``).
    Default: ``polynb:<version of this polynb>``, the image ``docker/Dockerfile`` builds, tagged so."""
    store_sync_interval: float = 5.0
    """Seconds between two syncs of a run's artifacts folder to (or from) a bucket store (the config file's
    ``artifactsSyncInterval``, as for the local executor)."""
    store_grace: int = 120
    """``terminationGracePeriodSeconds`` of a pod with a store sidecar: the time its last sync has, once the
    main container has ended (the kubelet stops sidecars after it) or the pod is deleted."""
    native_sidecars: bool = True
    """Sidecars as restartable init containers (Kubernetes 1.29+)."""
    port_forward: bool | None = None
    """Reach services through a port-forward; default: only outside the cluster."""
    service_port_base: int = 6006
    """The first container port of a service op."""
    security_profile: str = "default"
    """``restricted``: containers get a container-level ``securityContext`` that PodSecurity ``restricted``
    admits (``runAsNonRoot``, no privilege escalation, all capabilities dropped, ``RuntimeDefault`` seccomp);
    ``default``: none is added."""
    keep_finished: bool = False
    """Keep a finished run's Job/Pod/Service (for ``kubectl`` inspection); default: its logs are archived to
    ``$POLYNB_HOME/artifacts/<uuid>/logs/`` and its objects deleted once it is final (as Polyaxon does),
    or ``termination.ttl`` seconds later when the op sets one."""
    deadline_slack: int = 30
    """Seconds added to an op's timeout for ``activeDeadlineSeconds`` (the scheduler's own timeout acts first)."""

    # -- timing
    watch_timeout: int = 300
    """Seconds the API server keeps one watch open before it is renewed."""
    heartbeat_interval: float = 60.0
    """Seconds between two renewals of this kernel's heartbeat ConfigMap."""
    lease_seconds: float = 300.0
    """A kernel whose heartbeat is older than this (and that did not release its runs) is gone: swept."""
    pod_start_timeout: float = 120.0
    """A job still without a pod this long after its creation is reported with the cluster's warning event
    (quota, no node fits, ...); the heartbeat runs at least twice per this period."""
    failed_create_timeout: float = 120.0
    """A job whose pod cannot be created (a ``FailedCreate`` event: quota, admission) this long after its
    creation is ``failed`` with the event's message (before that: ``warning``)."""
    image_pull_grace: float = 300.0
    """A container in ``ImagePullBackOff`` is ``warning`` (registries recover: rate limits, a late push) and
    ``failed`` only when it still cannot pull this long after the first back-off."""
    sweep: bool = True
    """On start, remove the runs and heartbeats of gone kernels."""
    backoff: float = 0.2
    """First delay of the retries of failed API calls and watches (doubled each time)."""
    shutdown_wait: float = 30.0
    """How long ``shutdown()`` waits for stopped runs to end."""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KubernetesSettings:
        """Settings from the :data:`ENV` variables of ``environ`` (default: ``os.environ``); the others
        keep their defaults (``dataclasses.replace`` changes them). Bad values are reported by variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for name, variable in ENV.items():
            text = env.get(variable, "").strip()
            if not text:
                continue
            if name in _ENV_FLAGS:
                flag = _flag(text)
                if flag is None:
                    problems.append((variable, f"expected 1 or 0 (true/false, yes/no, on/off), not {text!r}"))
                values[name] = flag
            elif name == "service_port_base":
                try:
                    values[name] = int(text)
                except ValueError:
                    problems.append((variable, f"expected a port number, 1 to 65535, not {text!r}"))
            else:
                values[name] = text
        if problems:
            raise SettingsError(problems)
        try:
            return cls(**values)
        except SettingsError as exc:
            raise SettingsError([(ENV.get(name, name), message) for name, message in exc.problems]) from None


def _flag(text: str) -> bool | None:
    lowered = text.lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else None


_DNS_RULE: Final = "lower-case letters, digits and '-', starting and ending with a letter or digit"
_NAMES: Final = ("namespace", "context", "kernel_id", "artifacts_claim")
_IMAGES: Final = ("default_image", "tools_image", "git_image", "store_image")
_OPTIONAL_IMAGES: Final = frozenset({"store_image"})
_FLAGS: Final = ("in_cluster", "native_sidecars", "port_forward", "sweep", "keep_finished")
_OPTIONAL_FLAGS: Final = frozenset({"in_cluster", "port_forward"})
_NUMBERS: Final[Mapping[str, tuple[bool, Callable[[float], bool], str]]] = {
    # name: (whole numbers only, the test a value passes (NaN never does), what is expected)
    "service_port_base": (True, lambda n: 1 <= n <= 65535, "a port number, 1 to 65535"),
    "deadline_slack": (True, lambda n: n >= 0, "whole seconds, 0 or more"),
    "watch_timeout": (True, lambda n: n >= 1, "whole seconds, 1 or more"),
    "heartbeat_interval": (False, lambda n: n > 0, "seconds, more than 0"),
    "lease_seconds": (False, lambda n: n > 0, "seconds, more than 0"),
    "pod_start_timeout": (False, lambda n: n > 0, "seconds, more than 0"),
    "failed_create_timeout": (False, lambda n: n >= 0, "seconds, 0 or more"),
    "image_pull_grace": (False, lambda n: n >= 0, "seconds, 0 or more"),
    "backoff": (False, lambda n: n >= 0, "seconds, 0 or more"),
    "shutdown_wait": (False, lambda n: n >= 0, "seconds, 0 or more"),
    "store_sync_interval": (False, lambda n: n > 0, "seconds, more than 0"),
    "store_grace": (True, lambda n: n >= 1, "whole seconds, 1 or more"),
}


def _problems(s: KubernetesSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in _NAMES:
        value = getattr(s, name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            problems.append((name, f"expected a non-empty string or None, not {value!r}"))
    if isinstance(s.namespace, str) and s.namespace.strip() and not _DNS_LABEL.fullmatch(s.namespace):
        problems.append(("namespace", f"{s.namespace!r} is not a namespace name ({_DNS_RULE}, at most 63)"))
    claim = s.artifacts_claim
    if isinstance(claim, str) and claim.strip() and not (len(claim) <= 253 and _DNS_SUBDOMAIN.fullmatch(claim)):
        problems.append(
            ("artifacts_claim", f"{claim!r} is not a PersistentVolumeClaim name ({_DNS_RULE}; dots allowed)")
        )
    if s.kubeconfig is not None and not (isinstance(s.kubeconfig, str | os.PathLike) and os.fspath(s.kubeconfig)):
        problems.append(("kubeconfig", f"expected a file path or None, not {s.kubeconfig!r}"))
    store = s.artifacts_store
    if store is not None and not (isinstance(store, BucketStore) and store.url):
        problems.append(("artifacts_store", f"expected a bucket connection with schema.bucket, not {store!r}"))
    if s.security_profile not in SECURITY_PROFILES:
        problems.append(
            ("security_profile", f"expected one of {', '.join(SECURITY_PROFILES)}, not {s.security_profile!r}")
        )
    for name in _IMAGES:
        value = getattr(s, name)
        if value is None and name in _OPTIONAL_IMAGES:
            continue
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            problems.append((name, f"expected an image reference (no whitespace), not {value!r}"))
    for name in _FLAGS:
        value = getattr(s, name)
        if not isinstance(value, bool) and not (value is None and name in _OPTIONAL_FLAGS):
            problems.append((name, f"expected True or False, not {value!r}"))
    for name, (whole, test, expected) in _NUMBERS.items():
        value = getattr(s, name)
        number = not isinstance(value, bool) and isinstance(value, int if whole else int | float)
        if not (number and test(value)):
            problems.append((name, f"expected {expected}, not {value!r}"))
    if not problems and s.lease_seconds < s.heartbeat_interval:
        problems.append(
            (
                "lease_seconds",
                f"{s.lease_seconds:g} is shorter than heartbeat_interval ({s.heartbeat_interval:g}):"
                " the kernel would look gone between two of its heartbeats",
            )
        )
    return problems
