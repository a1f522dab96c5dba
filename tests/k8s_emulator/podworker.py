"""One pod's life on an emulated node, run as the kubelet's pod worker does: attach and mount volumes,
run init containers in order (native sidecars start and stay), start the main containers, stop the
sidecars after them, and report every step in the pod's status (test-only emulator).

The worker owns the pod's status once the pod is bound to its node and writes all of it on each step, so
watches see each intermediate state. Deleting the pod sends SIGTERM to its containers and SIGKILL after the
grace period, then removes the object. References:
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/ ,
https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/ ,
https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/ (termination messages).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import images, podenv, rootfs, volumes
from .errors import ApiError
from .images import Image
from .rootfs import Mount
from .sandbox import Process

if TYPE_CHECKING:
    from .kubelet import ExecKubelet

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096
"""``kubecontainer.MaxContainerTerminationMessageLength``: bytes read from ``terminationMessagePath``."""
MAX_POD_MESSAGES = 12 * 1024
"""All of a pod's termination messages together; each container gets an equal share (at most 4096)."""
FALLBACK_BYTES = 2048
FALLBACK_LINES = 80
"""``FallbackToLogsOnError``: the log's tail, "limited to 2048 bytes or 80 lines, whichever is smaller"."""

KUBELET_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers"})
"""The pod conditions the kubelet owns (``PodConditionsByKubelet``): a status it writes replaces these only."""


class Stopped(Exception):
    """The pod is being deleted: stop what is being waited for."""


def _cond(type_: str, status: str, at: str, reason: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": at}
    if reason:
        out["reason"] = reason
    return out


class PodWorker(threading.Thread):
    def __init__(self, kubelet: ExecKubelet, pod: dict[str, Any], node_ip: str, pod_ip: str) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.store = kubelet.store
        self.ns: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod = copy.deepcopy(pod)
        self.spec: dict[str, Any] = self.pod["spec"]
        self.node: str = self.spec["nodeName"]
        self.pod_ip = pod_ip
        self.dir = kubelet.root / "pods" / self.uid
        self.cond = threading.Condition()
        self.stop_grace: float | None = None
        """Set when the pod is being deleted (or its deadline passed): the grace period its containers get."""
        self.deadline_reached = False
        self.kill_at = float("inf")
        """When a delete's grace period ends (monotonic): a container still stopping is killed then."""
        self.processes: dict[str, Process] = {}
        self.volumes: dict[str, tuple[Path, bool]] = {}
        self.finished = threading.Event()
        now = self.store.clock.iso()
        inits = self.spec.get("initContainers") or []
        self.status: dict[str, Any] = {
            "phase": "Pending",
            "hostIP": node_ip,
            "hostIPs": [{"ip": node_ip}],
            "startTime": now,
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            "conditions": [
                _cond("PodReadyToStartContainers", "False", now),
                _cond("Initialized", "False" if inits else "True", now, "ContainersNotInitialized" if inits else None),
                _cond("Ready", "False", now, "ContainersNotReady"),
                _cond("ContainersReady", "False", now, "ContainersNotReady"),
                _cond("PodScheduled", "True", now),
            ],
        }
        if inits:
            self.status["initContainerStatuses"] = [self._initial(c, "PodInitializing") for c in inits]
        waiting = "PodInitializing" if inits else "ContainerCreating"
        self.status["containerStatuses"] = [self._initial(c, waiting) for c in self.spec["containers"]]
        if inits:
            for s in self.status["initContainerStatuses"]:
                s["state"] = {"waiting": {"reason": "PodInitializing"}}
            self.status["initContainerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}

    # -- status ---------------------------------------------------------------------------------------

    @staticmethod
    def _initial(container: dict[str, Any], reason: str) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": reason}},
            "lastState": {},
        }

    def _state(self, name: str) -> dict[str, Any]:
        for field in ("initContainerStatuses", "containerStatuses"):
            for s in self.status.get(field) or ():
                if s["name"] == name:
                    return dict(s)
        raise KeyError(name)

    def _set_state(self, name: str, **changes: Any) -> None:
        for field in ("initContainerStatuses", "containerStatuses"):
            for s in self.status.get(field) or ():
                if s["name"] == name:
                    s.update(changes)

    def _condition(self, type_: str, value: str, reason: str | None = None) -> None:
        now = self.store.clock.iso()
        for c in self.status["conditions"]:
            if c["type"] == type_:
                if c["status"] != value:
                    c["lastTransitionTime"] = now
                c["status"] = value
                c.pop("reason", None)
                if reason:
                    c["reason"] = reason

    def publish(self) -> None:
        key = ("pods", self.ns, self.name)
        with self.store.lock:
            old = self.store.objects.get(key)
            if old is None or old["metadata"]["uid"] != self.uid:
                return
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(self.status)
            # The kubelet's status manager writes the conditions it owns and keeps the others the pod has
            # (mergePodStatus in pkg/kubelet/status/status_manager.go): an eviction's DisruptionTarget stays.
            kept = [
                c for c in (old.get("status") or {}).get("conditions") or () if c.get("type") not in KUBELET_CONDITIONS
            ]
            if kept:
                new["status"]["conditions"] = [*new["status"].get("conditions", []), *copy.deepcopy(kept)]
            self.store.write(key, new, old)

    def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        self.kubelet.event(self.pod, reason, message, type_, node=self.node)

    # -- waiting --------------------------------------------------------------------------------------

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def terminate(self, grace: float) -> None:
        """The pod is being deleted (or force-deleted with ``grace`` 0)."""
        with self.cond:
            if self.stop_grace is None or grace < self.stop_grace:
                self.stop_grace = grace
                self.kill_at = time.monotonic() + grace
            self.cond.notify_all()

    def deadline(self) -> None:
        """``activeDeadlineSeconds`` passed: the kubelet kills the containers and fails the pod."""
        with self.cond:
            self.deadline_reached = True
            if self.stop_grace is None:
                self.stop_grace = self._grace()
                self.kill_at = time.monotonic() + self.stop_grace
            self.cond.notify_all()

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (or until woken by a change); raise Stopped once the pod is being deleted."""
        with self.cond:
            if self.stop_grace is None:
                self.cond.wait(seconds)
            if self.stop_grace is not None:
                raise Stopped

    def _lookup(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.store.find(plural, self.ns, name)

    # -- the pod's life -------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._live()
        except Exception as exc:  # a bug in the emulator must be visible, not a hang
            log.exception("pod worker %s", self.name)
            self.kubelet.errors.append(f"{self.name}: {exc!r}")
        finally:
            self._kill_all(0.0)
            self.kubelet.attachments.release(self.uid)
            self.finished.set()
            self.kubelet.worker_done(self)

    def _live(self) -> None:
        try:
            self._attach()
            self._mount()
            self.status["podIP"] = self.pod_ip
            self.status["podIPs"] = [{"ip": self.pod_ip}]
            self._condition("PodReadyToStartContainers", "True")
            self.publish()
            if not self._run_inits():
                self._stop_sidecars()
                self._finish_phase("Failed")
                return
            self._condition("Initialized", "True")
            self._run_mains()
            self._stop_sidecars()
            codes = [self._state(c["name"])["state"]["terminated"]["exitCode"] for c in self.spec["containers"]]
            self._finish_phase("Succeeded" if all(c == 0 for c in codes) else "Failed")
        except Stopped:
            self._terminate_for_delete()

    def _attach(self) -> None:
        warned = False
        for volume in self.spec.get("volumes") or ():
            claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim_name is None:
                continue
            while True:
                claim = self._lookup("persistentvolumeclaims", claim_name)
                modes = set(((claim or {}).get("spec") or {}).get("accessModes") or ())
                if claim is None or modes & {"ReadWriteMany", "ReadOnlyMany"}:
                    break
                holders = self.kubelet.attachments.attach(self.ns, claim_name, self.node, self.uid)
                if not holders:
                    break
                if not warned:
                    warned = True
                    names = ", ".join(sorted(self.kubelet.pod_names(holders)))
                    volume_name = (claim.get("spec") or {}).get("volumeName", claim_name)
                    self.publish()
                    self.event(
                        "FailedAttachVolume",
                        f'Multi-Attach error for volume "{volume_name}" Volume is already used by pod(s) {names}',
                        "Warning",
                    )
                self._pause(0.2)

    def _mount(self) -> None:
        last = None
        while True:
            try:
                self.volumes = volumes.prepare(self.kubelet.root, self.pod, self._lookup)
                return
            except volumes.MountError as exc:
                if str(exc) != last:
                    last = str(exc)
                    self.publish()
                    self.event("FailedMount", str(exc), "Warning")
                self._pause(self.kubelet.retry_interval)

    def _run_inits(self) -> bool:
        """Init containers in order; False when one failed for good."""
        inits = self.spec.get("initContainers") or []
        for i, container in enumerate(inits):
            if container.get("restartPolicy") == "Always":
                self._start(container)  # a native sidecar: started (no startup probe), then the next one
            else:
                while True:
                    code = self._run_to_end(container)
                    if code == 0:
                        break
                    if self.spec.get("restartPolicy") == "Never":
                        return False
                    self._crash_backoff(container)
            if i + 1 < len(inits):
                self._set_state(inits[i + 1]["name"], state={"waiting": {"reason": "ContainerCreating"}})
        for c in self.spec["containers"]:
            self._set_state(c["name"], state={"waiting": {"reason": "ContainerCreating"}})
        return True

    def _run_mains(self) -> None:
        mains = self.spec["containers"]
        for container in mains:
            self._start(container)
            self.status["phase"] = "Running"
            self.publish()
        self._update_ready()
        self.publish()
        policy = self.spec.get("restartPolicy", "Always")
        while True:
            pending = False
            for container in mains:
                name = container["name"]
                process = self.processes.get(name)
                if process is not None and process.exited.is_set():
                    code = self._record_exit(container, process)
                    self._update_ready()
                    self.publish()
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        self._crash_backoff(container)
                        self._start(container)
                        self._update_ready()
                        self.publish()
                if name in self.processes:
                    pending = True
            self._restart_exited_sidecars()
            if not pending:
                return
            self._pause(0.5)

    def _restart_exited_sidecars(self) -> None:
        """A sidecar that exits while the pod runs is restarted (its restartPolicy is Always)."""
        for container in self.spec.get("initContainers") or ():
            process = self.processes.get(container["name"])
            if container.get("restartPolicy") == "Always" and process is not None and process.exited.is_set():
                self._record_exit(container, process)
                self.publish()
                self._crash_backoff(container)
                self._start(container)
                self.publish()

    def _update_ready(self) -> None:
        names = [c["name"] for c in self.spec["containers"]] + [
            c["name"] for c in self.spec.get("initContainers") or () if c.get("restartPolicy") == "Always"
        ]
        ready = all(self._state(n).get("ready") for n in names)
        for type_ in ("ContainersReady", "Ready"):
            self._condition(type_, "True" if ready else "False", None if ready else "ContainersNotReady")

    def _finish_phase(self, phase: str) -> None:
        self.status["phase"] = phase
        self._update_ready()
        never_started = any("terminated" not in self._state(c["name"])["state"] for c in self.spec["containers"])
        if phase == "Failed" and self.spec.get("initContainers") and never_started:
            self._condition("Initialized", "False", "ContainersNotInitialized")
        for container in self.spec["containers"]:
            if "waiting" in self._state(container["name"])["state"]:
                # Never started (an init container failed): the kubelet reports them as not started.
                self._set_state(container["name"], state={"waiting": {"reason": "PodInitializing"}})
        self.publish()
        if self._deleting():
            self.store.finalize_pod(self.ns, self.name)

    def _deleting(self) -> bool:
        obj = self.store.find("pods", self.ns, self.name)
        return obj is not None and obj["metadata"]["uid"] == self.uid and bool(obj["metadata"].get("deletionTimestamp"))

    # -- containers -----------------------------------------------------------------------------------

    def _pull(self, container: dict[str, Any]) -> Image:
        name = container["image"]
        delay = self.kubelet.pull_backoff
        while True:
            image = self.kubelet.images.get(name)
            if image is not None:
                self.event("Pulled", f'Container image "{name}" already present on machine')
                return image
            ref = images.reference(name)
            message = (
                f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": pull access '
                "denied, repository does not exist or may require authorization: server message: "
                "insufficient_scope: authorization failed"
            )
            self._set_state(container["name"], state={"waiting": {"reason": "ErrImagePull", "message": message}})
            self.publish()
            self.event("Failed", f'Failed to pull image "{name}": {message}', "Warning")
            self.event("Failed", "Error: ErrImagePull", "Warning")
            self._pause(delay)
            self._set_state(
                container["name"],
                state={"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{name}"'}},
            )
            self.publish()
            self.event("BackOff", f'Back-off pulling image "{name}"', "Normal")
            self._pause(delay)
            delay = min(delay * 2, self.kubelet.pull_backoff * 8)  # the kubelet doubles it, up to a cap
            self.event("Pulling", f'Pulling image "{name}"')

    def _environment(self, container: dict[str, Any], image: Image) -> tuple[dict[str, str], dict[str, str]]:
        """(the kubelet's variables, the process's environment)."""
        last = None
        while True:
            obj = self.store.find("pods", self.ns, self.name) or self.pod
            obj = {**obj, "status": {**(obj.get("status") or {}), **self.status}}
            try:
                podenv.identity(obj, container, image)
                services = self.store.list("services", self.ns)[0]
                kubelet = podenv.declared(obj, container, self._lookup, services)
                return kubelet, podenv.environment(obj, container, image, self._lookup, services, kubelet)
            except podenv.ConfigError as exc:
                message = str(exc)
                self._set_state(
                    container["name"], state={"waiting": {"reason": "CreateContainerConfigError", "message": message}}
                )
                if message != last:
                    last = message
                    self.publish()
                    self.event("Failed", f"Error: {message}", "Warning")
                self._pause(self.kubelet.retry_interval)

    def _start(self, container: dict[str, Any]) -> None:
        """Pull, resolve the config, start the process: the container is running (or failed to start)."""
        name = container["name"]
        image = self._pull(container)
        kubelet_env, env = self._environment(container, image)
        argv = podenv.argv(container, image, kubelet_env)
        restarts = int(self._state(name).get("restartCount", 0))
        state_dir = self.dir / "containers" / f"{name}-{restarts}"
        state_dir.mkdir(parents=True)
        root = state_dir / "rootfs"
        image_dir = self.kubelet.image_folder(container["image"], image)
        rootfs.container_root(image_dir, root)
        rootfs.library_links(root)
        termination_log = state_dir / "termination-log"
        termination_log.touch()
        termination_log.chmod(0o666)  # as the kubelet creates it: writable whatever the container's user
        mounts = [
            Mount(
                str(image_dir / "site-packages") if m.source == "<image>/site-packages" else m.source,
                m.target,
                m.readonly,
            )
            for m in rootfs.system_mounts(image)
        ]
        hosts = self.dir / "etc-hosts"
        hosts.write_text(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{self.pod_ip}\t{self.name}\n"
        )
        hostname = self.dir / "etc-hostname"
        hostname.write_text(self.name + "\n")
        mounts += [
            Mount(str(hosts), "/etc/hosts", readonly=False),
            Mount(str(hostname), "/etc/hostname", readonly=False),
            Mount(str(termination_log), container.get("terminationMessagePath", "/dev/termination-log"), False),
        ]
        mounts += volumes.container_mounts(container, self.volumes)
        self.event("Created", f"Created container {name}")
        process = Process(
            root=root,
            state=state_dir,
            hostname=self.name,
            mounts=mounts,
            argv=argv,
            env=env,
            workdir=container.get("workingDir") or image.workdir,
            user=podenv.identity(self.pod, container, image),
            on_line=lambda line: self.store.append_log(self.ns, self.name, name, line),
        )
        process.termination_log = termination_log  # type: ignore[attr-defined]
        self.processes[name] = process
        now = self.store.clock.iso()
        container_id = "containerd://" + hashlib.sha256(f"{self.uid}/{name}/{restarts}".encode()).hexdigest()
        digest = hashlib.sha256(images.reference(container["image"]).encode()).hexdigest()
        image_id = f"{images.repository(container['image'])}@sha256:{digest}"
        if process.start_error is not None:
            self._set_state(
                name,
                containerID=container_id,
                imageID=image_id,
                started=False,
                ready=False,
                state={
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": process.start_error,
                        "startedAt": "1970-01-01T00:00:00Z",
                        "finishedAt": now,
                        "containerID": container_id,
                    }
                },
            )
            self.event("Failed", f"Error: {process.start_error}", "Warning")
        else:
            self._set_state(
                name,
                containerID=container_id,
                imageID=image_id,
                started=True,
                ready=True,
                state={"running": {"startedAt": now}},
            )
            self.event("Started", f"Started container {name}")
        process.watch(self.wake)
        self.publish()

    def _run_to_end(self, container: dict[str, Any]) -> int:
        self._start(container)
        process = self.processes[container["name"]]
        while not process.exited.is_set():
            self._pause(0.5)
        code = self._record_exit(container, process)
        self.publish()
        return code

    def _record_exit(self, container: dict[str, Any], process: Process) -> int:
        """The container's terminated state (exit code, reason, termination message)."""
        name = container["name"]
        self.processes.pop(name, None)
        code = process.exit_code if process.exit_code is not None else 137
        state = self._state(name)
        if "terminated" in state["state"]:  # a start error, already reported
            return int(state["state"]["terminated"]["exitCode"])
        started = (state["state"].get("running") or {}).get("startedAt")
        term: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": self.store.clock.iso(),
            "containerID": state.get("containerID", ""),
        }
        message = self._termination_message(container, process, code)
        if message:
            term["message"] = message
        self._set_state(name, state={"terminated": term}, ready=False, started=False)
        return code

    def _termination_message(self, container: dict[str, Any], process: Process, code: int) -> str:
        count = len(self.spec["containers"]) + len(self.spec.get("initContainers") or ())
        limit = min(MAX_MESSAGE, MAX_POD_MESSAGES // max(count, 1))
        path: Path = process.termination_log  # type: ignore[attr-defined]
        with open(path, "rb") as f:
            data = f.read(limit)
        if data or code == 0 or container.get("terminationMessagePolicy") != "FallbackToLogsOnError":
            return data.decode("utf-8", "replace")
        with self.store.lock:
            lines = [text for _, text in self.store.logs.get((self.ns, self.name, container["name"]), [])]
        tail = "".join(line + "\n" for line in lines[-FALLBACK_LINES:]).encode()
        return tail[-min(FALLBACK_BYTES, limit) :].decode("utf-8", "replace")

    def _crash_backoff(self, container: dict[str, Any]) -> None:
        name = container["name"]
        state = self._state(name)
        restarts = int(state.get("restartCount", 0))
        self._set_state(
            name,
            lastState={"terminated": state["state"].get("terminated", {})},
            restartCount=restarts + 1,
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {int(self.kubelet.crash_backoff * 2**restarts)}s restarting failed "
                    f"container={name} pod={self.name}_{self.ns}({self.uid})",
                }
            },
        )
        self.publish()
        self.event("BackOff", "Back-off restarting failed container", "Warning")
        self._pause(min(self.kubelet.crash_backoff * 2**restarts, self.kubelet.crash_backoff * 30))

    # -- stopping -------------------------------------------------------------------------------------

    def _stop_containers(self, names: list[str], grace: float) -> None:
        """SIGTERM to each, SIGKILL to what still runs after ``grace`` seconds; record their exits."""
        running = [(n, self.processes[n]) for n in names if n in self.processes]
        for name, process in running:
            self.event("Killing", f"Stopping container {name}")
            process.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        for _, process in running:
            while not process.exited.wait(max(0.0, min(0.2, deadline - time.monotonic()))):
                if time.monotonic() >= min(deadline, self.kill_at):  # a delete may shorten it
                    process.signal(signal.SIGKILL)
                    process.exited.wait()
                    break
        every = {c["name"]: c for c in [*(self.spec.get("initContainers") or ()), *self.spec["containers"]]}
        for name, process in running:
            self._record_exit(every[name], process)

    def _grace(self) -> float:
        return float(self.spec.get("terminationGracePeriodSeconds", 30))

    def _stop_sidecars(self) -> None:
        """After the main containers: sidecars get SIGTERM in reverse order of start."""
        sidecars = [c["name"] for c in self.spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
        for name in reversed(sidecars):
            self._stop_containers([name], self._grace())

    def _terminate_for_delete(self) -> None:
        grace = self.stop_grace if self.stop_grace is not None else self._grace()
        mains = [c["name"] for c in self.spec["containers"]] + [
            c["name"] for c in self.spec.get("initContainers") or () if c.get("restartPolicy") != "Always"
        ]
        started = time.monotonic()
        self._stop_containers(mains, grace)
        sidecars = [c["name"] for c in self.spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
        self._stop_containers(list(reversed(sidecars)), max(0.0, grace - (time.monotonic() - started)))
        if self.status["phase"] not in ("Succeeded", "Failed"):
            self.status["phase"] = "Failed"
            if self.deadline_reached:
                self.status["reason"] = "DeadlineExceeded"
                self.status["message"] = "Pod was active on the node longer than the specified deadline"
        self._update_ready()
        self.publish()
        if self._deleting() or not self.deadline_reached:
            with contextlib.suppress(ApiError):
                self.store.finalize_pod(self.ns, self.name)

    def _kill_all(self, grace: float) -> None:
        for process in list(self.processes.values()):
            process.signal(signal.SIGKILL)
