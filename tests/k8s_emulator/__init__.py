"""A loopback Kubernetes API-server emulator for polynb's tests (test-only, never shipped).

It speaks the real REST and watch protocol (so the official client and kubectl talk to it unmodified) for
what the kubernetes executor uses, with a deterministic, scripted control plane (see ``controllers``) and
fault injection. Usage::

    with Emulator() as emu:
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        ...
        emu.finish("train-1a2b3c4d-x7k2p", "main", exit_code=0)
        emu.settle()

``Emulator(kubelet="exec", root=folder)`` executes the pods instead (see ``kubelet``): every container runs
as a sandboxed local process from an image of the catalogue (``images``); ``testkit.executing`` and the
``executing_emulator`` fixture set one up with its kubeconfig.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from .admission import ENFORCE_LABEL, Admission
from .clock import Clock
from .controllers import SCRIPT_ANNOTATION, ControlPlane
from .errors import ApiError
from .images import Image
from .kubelet import ExecKubelet
from .server import Faults, Handler, Request, Server
from .store import RESOURCES, Store

__all__ = ["SCRIPT_ANNOTATION", "Emulator", "Image", "Request", "script_annotation"]


def script_annotation(containers: dict[str, dict[str, Any]] | None = None, **pod: Any) -> dict[str, str]:
    """Annotations that script a pod: ``script_annotation({"main": {"exit": 1}}, unschedulable="...")``."""
    return {SCRIPT_ANNOTATION: json.dumps({"containers": containers or {}, **pod})}


class Emulator:
    def __init__(
        self,
        *,
        namespaces: tuple[str, ...] = ("default",),
        token: str | None = None,
        watch_timeout: float = 1800.0,
        history_limit: int = 100_000,
        kubelet: str = "scripted",
        root: Path | None = None,
        nodes: int = 2,
        pull_backoff: float = 1.0,
        crash_backoff: float = 1.0,
        kube_proxy: bool | None = None,
    ) -> None:
        """``kubelet="exec"`` runs every container as a local process in a sandbox under ``root`` (see
        ``kubelet``), on ``nodes`` emulated nodes; the default ``"scripted"`` kubelet follows scripts.

        ``kube_proxy``: relay ``clusterIP:port`` to the Services' endpoints (see ``network``). Off by default
        with the executing kubelet: its pods share the host's network namespace, where the stand-in's listener
        on ``clusterIP:port`` would take the port from a pod process binding ``0.0.0.0:port`` (TensorBoard),
        which on a cluster binds in a network namespace of its own. Nothing polynb runs outside a cluster dials
        a clusterIP, so the tests of Service routing turn it on explicitly."""
        self.clock = Clock(follow_wall=kubelet == "exec")
        self.store = Store(self.clock, namespaces=namespaces, history_limit=history_limit)
        self.scripts: dict[str, dict[str, Any]] = {}
        """image -> container script (see ``controllers``), for pods whose annotation does not script it."""
        self.control = ControlPlane(self.store, self.scripts)
        self.admission = Admission()
        self.store.admit = self.admission.admit
        self.kubelet: ExecKubelet | None = None
        if kubelet == "exec":
            if root is None:
                raise ValueError('Emulator(kubelet="exec") needs a root folder for the pods\' files')
            self.kubelet = ExecKubelet(
                self.store, root, nodes=nodes, pull_backoff=pull_backoff, crash_backoff=crash_backoff
            )
            self.control.kubelet = self.kubelet
        elif kubelet != "scripted":
            raise ValueError(f"unknown kubelet {kubelet!r}: 'scripted' or 'exec'")
        self.faults = Faults(token=token)
        self.user = "system:serviceaccount:default:polynb"
        self.watch_timeout = watch_timeout
        self.requests: list[Request] = []
        self.open_watches = 0
        self.max_open_watches = 0
        self._lock = threading.Lock()
        self.server = Server(self)
        from .network import Network  # pod/Service addresses on loopback, kube-proxy, service proxy

        self.network = Network(self.store)
        if kube_proxy if kube_proxy is not None else kubelet != "exec":
            self.control.listeners.append(self.network.on_change)
        self.kubeconfig: Path | None = None
        """The last kubeconfig ``write_kubeconfig`` wrote."""
        self._thread: threading.Thread | None = None

    # -- lifetime -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        self.control.start()
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="k8s-emulator-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stopping = True
        with self.store.lock:
            self.store.cond.notify_all()
        self.server.shutdown()
        self.server.close_all()
        self.server.server_close()
        if self.kubelet is not None:
            self.kubelet.stop()
        self.control.stop()
        self.network.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: Path, *, namespace: str = "default", token: str | None = None, context: str = "emulator"
    ) -> Path:
        """A kubeconfig for this emulator (JSON is YAML); ``token`` defaults to the emulator's own."""
        user: dict[str, Any] = {"token": token or self.faults.token or "emulator-token"}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": user}],
            "contexts": [
                {"name": context, "context": {"cluster": "emulator", "user": "tester", "namespace": namespace}}
            ],
            "current-context": context,
        }
        path.write_text(json.dumps(config, indent=1))
        self.kubeconfig = path
        return path

    # -- bookkeeping (server threads) -----------------------------------------------------------------

    def log_request(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def watch_opened(self, request: Request | None) -> None:
        with self._lock:
            self.open_watches += 1
            self.max_open_watches = max(self.max_open_watches, self.open_watches)

    def watch_closed(self, request: Request | None) -> None:
        with self._lock:
            self.open_watches -= 1

    def counts(self, *, resource: str | None = None) -> Counter[str]:
        """Requests so far by verb (optionally of one resource, e.g. ``"jobs"``)."""
        with self._lock:
            return Counter(r.verb for r in self.requests if resource is None or r.resource == resource)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the control plane ----------------------------------------------------------------------------

    def settle(self) -> None:
        """Return once the controllers have handled every change so far (and the changes they made)."""
        self.control.settle()

    def advance(self, seconds: float) -> None:
        """Move the clock: deadlines (``activeDeadlineSeconds``) and TTLs fire now."""
        self.clock.advance(seconds)
        self.control.tick()

    def finish(
        self,
        pod: str,
        container: str = "main",
        *,
        exit_code: int = 0,
        message: str | None = None,
        namespace: str = "default",
    ) -> None:
        """End a ``hold`` container (or any running one) with ``exit_code`` and a termination message."""
        self.control.finish(namespace, pod, container, exit_code, message)

    def schedule(self, pod: str, *, namespace: str = "default") -> None:
        """An unschedulable pod fits now (e.g. a node was added)."""
        self.control.schedule(namespace, pod)

    def log(self, pod: str, container: str, line: str, *, namespace: str = "default") -> None:
        self.store.append_log(namespace, pod, container, line)

    def fail_pod_creation(self, job: str, message: str) -> None:
        """The job controller cannot create the Job's pods (quota, admission): a FailedCreate event."""
        self.control.failed_creates[job] = message

    # -- the executing kubelet ------------------------------------------------------------------------

    def _exec(self) -> ExecKubelet:
        if self.kubelet is None:
            raise RuntimeError('only Emulator(kubelet="exec") runs containers')
        return self.kubelet

    def add_image(self, name: str, image: Image) -> None:
        """The image can be pulled from now on (a pod in ImagePullBackOff gets it at its next try)."""
        self._exec().images.add(name, image)

    def container_pids(self, pod: str, *, namespace: str = "default") -> dict[str, int]:
        """Container name -> PID of its running process (containers that run now only)."""
        return self._exec().container_pids(namespace, pod)

    def pod_address(self, pod: str, *, namespace: str = "default") -> str | None:
        """The pod's IP (a 127.x loopback address) once its sandbox is up, else None."""
        obj = self.store.find("pods", namespace, pod)
        return None if obj is None else (obj.get("status") or {}).get("podIP")

    # -- objects --------------------------------------------------------------------------------------

    def objects(self, plural: str, namespace: str | None = "default", selector: str = "") -> list[dict[str, Any]]:
        from .selectors import parse_labels

        items, _ = self.store.list(plural, namespace, parse_labels(selector))
        return items

    def pod_of(self, run_uuid: str, namespace: str = "default") -> dict[str, Any] | None:
        pods = self.objects("pods", namespace, f"polynb.io/run={run_uuid}")
        return pods[-1] if pods else None

    def require_pod_of(self, run_uuid: str, namespace: str = "default") -> dict[str, Any]:
        """``pod_of`` for a run that must have a pod by now: fails the test, naming the run, if it has none."""
        pod = self.pod_of(run_uuid, namespace)
        assert pod is not None, f"no pod for run {run_uuid} in {namespace}"
        return pod

    # -- faults ---------------------------------------------------------------------------------------

    def compact(self) -> int:
        """Forget the watch history: every watch (and resumption) from before now gets 410 Gone."""
        return self.store.compact()

    def drop_watches(self) -> None:
        """Break every open watch connection (no terminating chunk), as a network failure would."""
        with self.store.lock:
            self.faults.watch_epoch += 1
            self.store.cond.notify_all()

    def drop_logs(self) -> None:
        """Break every followed log stream."""
        with self.store.lock:
            self.faults.log_epoch += 1
            self.store.cond.notify_all()

    def send_bookmarks(self) -> None:
        """Every open watch that allows bookmarks gets a BOOKMARK with the current resourceVersion."""
        with self.store.lock:
            self.faults.bookmark_epoch += 1
            self.store.cond.notify_all()

    def fail(self, code: int = 500, *, times: int = 1, verb: str | None = None, resource: str | None = None) -> None:
        """The next ``times`` requests matching (verb, resource) fail with ``code`` (5xx, 429, ...)."""
        with self.faults.lock:
            self.faults.failures.append([times, code, verb, resource])

    def deny(self, verb: str, resource: str) -> None:
        """RBAC: ``verb`` on ``resource`` is forbidden (403 with the authorizer's message)."""
        with self.faults.lock:
            self.faults.denied.add((verb, resource))

    def allow(self, verb: str, resource: str) -> None:
        with self.faults.lock:
            self.faults.denied.discard((verb, resource))

    def enforce_pod_security(self, level: str = "restricted", *, namespace: str = "default") -> None:
        """Label the namespace ``pod-security.kubernetes.io/enforce=<level>`` (see ``admission``)."""
        self.store.patch(
            "namespaces",
            None,
            namespace,
            "application/merge-patch+json",
            {"metadata": {"labels": {ENFORCE_LABEL: level}}},
        )

    def pod_quota(self, pods: int, *, name: str = "pods", namespace: str = "default") -> None:
        """A ResourceQuota ``name`` with ``hard: {pods: <pods>}`` in ``namespace`` (see ``admission``)."""
        with self.store.lock:
            self.admission.quotas[namespace] = (name, pods)

    def reject_creates(self, resource: str, causes: list[dict[str, str]]) -> None:
        """Every create of ``resource`` gets 422 with these causes (``[{"field":..., "message":...}]``)."""
        self.faults.invalid_creates[resource] = causes

    # -- port-forward ---------------------------------------------------------------------------------

    def portforward(self, handler: Handler, namespace: str, pod: str, query: dict[str, str]) -> None:
        from .websocket import serve_portforward

        serve_portforward(self, handler, namespace, pod, query)

    def service_proxy(self, handler: Handler, method: str, namespace: str, ref: str) -> None:
        from .network import serve_service_proxy

        serve_service_proxy(self, handler, method, namespace, ref)


_ = (ApiError, Clock, ControlPlane, Faults, RESOURCES, Store)
