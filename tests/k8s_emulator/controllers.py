"""The emulator's control plane: a scripted kubelet, the Job controller and the garbage collector.

All of them run on ONE thread that consumes the store's change feed in order, so what happens to a pod is
a deterministic function of its script and of what tests do — never of timing. The kubelet advances a pod
by one visible step per change it sees (each step is a write, so every intermediate state reaches the
watches); a step that waits (a ``hold`` container, an unschedulable pod, an image that never comes) stops
the chain until a test acts (``finish``, ``schedule``) or the clock is advanced (deadlines, TTLs).

Scripts, per container, from the pod annotation ``emu.polynb.io/script`` (JSON
``{"containers": {"main": {...}}, "unschedulable": "msg"}``), else from ``Emulator.scripts[image]``:

* ``logs``: lines written once the container runs; ``exit``: its exit code (0);
* ``hold``: keep running until ``Emulator.finish(pod, container, exit=...)``;
* ``message``: its termination message (with ``FallbackToLogsOnError``, a failed container without one
  reports its last log lines, as the kubelet does);
* ``image_pull``: ``"backoff"`` (ErrImagePull, then ImagePullBackOff, forever) or ``"error"`` (ErrImagePull
  only); ``config_error``: CreateContainerConfigError with that message; ``oom``: OOMKilled, exit 137.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from .clock import parse_iso
from .errors import ApiError
from .network import pod_ip
from .store import Change, Store

log = logging.getLogger(__name__)

SCRIPT_ANNOTATION = "emu.polynb.io/script"
NODE = "emu-node-1"


def _cond(type_: str, status: str, at: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": at}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


class ControlPlane(threading.Thread):
    def __init__(self, store: Store, scripts: dict[str, dict[str, Any]]) -> None:
        super().__init__(name="k8s-emulator-controllers", daemon=True)
        self.store = store
        self.scripts = scripts
        self.failed_creates: dict[str, str] = {}
        """Job name -> FailedCreate message: the job controller cannot create its pods."""
        self.held: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._failed_pods: dict[str, set[str]] = {}
        """Job uid -> the uids of its pods counted as failed, once each, even after they are removed (the job
        controller's ``batch.kubernetes.io/job-tracking`` finalizer keeps a pod until it is counted)."""
        self._failed_create_seen: set[str] = set()
        self._stopped = False
        self.errors: list[str] = []
        self.listeners: list[Callable[[Change], None]] = []
        """Told of every change after the controllers (the network's kube-proxy)."""
        self.kubelet: Any = None
        """The executing kubelet (``kubelet.ExecKubelet``) when set: it runs pods instead of the scripts."""

    # -- the thread -----------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            item = self.store.feed.get()
            try:
                if item is None:
                    return
                if isinstance(item, Change):
                    self._on_change(item)
                else:
                    item()
            except Exception as exc:  # a bug in the emulator must be visible, not a hang
                log.exception("emulator controllers")
                self.errors.append(repr(exc))
            finally:
                self.store.feed.task_done()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the controller thread, after every change queued so far."""
        self.store.feed.put(fn)

    def stop(self) -> None:
        self.store.feed.put(None)
        self.join(timeout=10)

    def settle(self) -> None:
        """Wait until every queued change has been handled (and what it caused, recursively)."""
        self.store.feed.join()

    def _on_change(self, change: Change) -> None:
        obj = change.obj
        meta = obj["metadata"]
        if change.type == "DELETED":
            self._collect(meta["uid"])
        if self.kubelet is not None:
            self.kubelet.on_change(change)
        if change.plural == "pods":
            owner = self._job_owner(obj)
            if change.type == "DELETED":
                # Removed before it succeeded: a failure, whatever phase the kubelet wrote as it stopped it
                # (Failed, or none for a pod never started), as pkg/controller/job's isPodFailed counts "a
                # deleted Pod" (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy).
                if owner and (obj.get("status") or {}).get("phase") != "Succeeded":
                    self._failed_pods.setdefault(owner[1], set()).add(meta["uid"])
            elif self.kubelet is None:
                self._kubelet_step(meta["namespace"], meta["name"])
            if owner:
                self._sync_job(meta["namespace"], owner[0])
        elif change.plural == "jobs" and change.type != "DELETED":
            self._sync_job(meta["namespace"], meta["name"])
        for listener in self.listeners:
            listener(change)

    # -- garbage collector ----------------------------------------------------------------------------

    def _collect(self, uid: str) -> None:
        """Background propagation: delete what the gone object owned (pods terminate gracefully)."""
        with self.store.lock:
            keys = [
                k
                for k in self.store.dependents(uid)
                if not any(
                    r.get("uid") != uid and self._exists(r.get("uid"))
                    for r in self.store.objects[k]["metadata"].get("ownerReferences") or ()
                )
            ]
        for plural, ns, name in keys:
            with contextlib.suppress(ApiError):
                self.store.delete(plural, ns, name, {"propagationPolicy": "Background"})

    def _exists(self, uid: Any) -> bool:
        return any(o["metadata"]["uid"] == uid for o in self.store.objects.values())

    # -- events ---------------------------------------------------------------------------------------

    def event(
        self, obj: dict[str, Any], reason: str, message: str, type_: str = "Normal", component: str = "kubelet"
    ) -> None:
        meta = obj["metadata"]
        now = self.store.clock.iso()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace")},
            "involvedObject": {
                "kind": obj["kind"],
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": obj["apiVersion"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": component,
            "reportingInstance": NODE if component == "kubelet" else "",
        }
        with contextlib.suppress(ApiError):
            self.store.create("events", meta.get("namespace"), body)

    # -- kubelet --------------------------------------------------------------------------------------

    def script(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
        notes = pod["metadata"].get("annotations") or {}
        try:
            by_pod = json.loads(notes.get(SCRIPT_ANNOTATION) or "{}")
        except ValueError:
            by_pod = {}
        own = (by_pod.get("containers") or {}).get(container["name"])
        if own is not None:
            return dict(own)
        return dict(self.scripts.get(container.get("image") or "", {}))

    def _pod_script(self, pod: dict[str, Any]) -> dict[str, Any]:
        notes = pod["metadata"].get("annotations") or {}
        try:
            return dict(json.loads(notes.get(SCRIPT_ANNOTATION) or "{}"))
        except ValueError:
            return {}

    def _write_status(self, pod: dict[str, Any], status: dict[str, Any], spec_node: bool = False) -> None:
        key = ("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self.store.lock:
            old = self.store.objects.get(key)
            if old is None:
                return
            new = copy.deepcopy(old)
            new["status"] = status
            if spec_node:
                new["spec"]["nodeName"] = NODE
            self.store.write(key, new, old)

    def _statuses(self, pod: dict[str, Any], group: str) -> list[dict[str, Any]]:
        field = "initContainerStatuses" if group == "initContainers" else "containerStatuses"
        current = {s["name"]: s for s in (pod.get("status") or {}).get(field) or ()}
        out = []
        for c in pod["spec"].get(group) or ():
            out.append(
                current.get(c["name"])
                or {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "waiting": {
                            "reason": "PodInitializing"
                            if group == "containers" and pod["spec"].get("initContainers")
                            else "ContainerCreating"
                        }
                    },
                    "lastState": {},
                }
            )
        return out

    def _kubelet_step(self, ns: str, name: str) -> None:
        with self.store.lock:
            pod = self.store.find("pods", ns, name)
            if pod is None:
                return
            if pod["metadata"].get("deletionTimestamp"):
                self._kill(pod, reason="Killing")
                return
            status = copy.deepcopy(pod.get("status") or {})
            phase = status.get("phase")
            if phase in ("Succeeded", "Failed"):
                return
            now = self.store.clock.iso()
            conditions = {c["type"]: c for c in status.get("conditions") or ()}
            if not pod["spec"].get("nodeName"):
                reason = self._pod_script(pod).get("unschedulable")
                if reason:
                    if "PodScheduled" not in conditions:
                        status["conditions"] = [_cond("PodScheduled", "False", now, "Unschedulable", reason)]
                        self._write_status(pod, status)
                        self.event(pod, "FailedScheduling", reason, "Warning", "default-scheduler")
                    return
                self._schedule(pod, status, now)
                return
            self._advance_containers(pod, status, now)

    def _schedule(self, pod: dict[str, Any], status: dict[str, Any], now: str) -> None:
        has_init = bool(pod["spec"].get("initContainers"))
        status.update(
            {
                "phase": "Pending",
                "hostIP": "10.0.0.1",
                "hostIPs": [{"ip": "10.0.0.1"}],
                "startTime": now,
                "conditions": [
                    _cond("PodReadyToStartContainers", "True", now),
                    _cond(
                        "Initialized",
                        "False" if has_init else "True",
                        now,
                        "ContainersNotInitialized" if has_init else None,
                    ),
                    _cond("Ready", "False", now, "ContainersNotReady"),
                    _cond("ContainersReady", "False", now, "ContainersNotReady"),
                    _cond("PodScheduled", "True", now),
                ],
            }
        )
        if has_init:
            status["initContainerStatuses"] = self._statuses(pod, "initContainers")
        status["containerStatuses"] = self._statuses(pod, "containers")
        self._write_status(pod, status, spec_node=True)
        self.event(
            pod,
            "Scheduled",
            f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {NODE}",
            component="default-scheduler",
        )

    def _set_condition(self, status: dict[str, Any], type_: str, value: str, now: str) -> None:
        for c in status.get("conditions") or ():
            if c["type"] == type_ and c["status"] != value:
                c["status"] = value
                c["lastTransitionTime"] = now
                c.pop("reason", None)

    def _pull(
        self, pod: dict[str, Any], container: dict[str, Any], state: dict[str, Any], script: dict[str, Any]
    ) -> bool:
        """Image pull and config errors: True when the container is stuck waiting (the state was set)."""
        waiting = state.get("state", {}).get("waiting", {}).get("reason")
        image = container["image"]
        if script.get("config_error"):
            state["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": script["config_error"]}}
            return True
        mode = script.get("image_pull")
        if mode in ("backoff", "error"):
            if waiting == "ErrImagePull" and mode == "backoff":
                state["state"] = {
                    "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
                }
            elif waiting not in ("ErrImagePull", "ImagePullBackOff"):
                state["state"] = {
                    "waiting": {
                        "reason": "ErrImagePull",
                        "message": (
                            f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                            f"{image}: not found"
                        ),
                    }
                }
            return True
        return False

    def _start(self, pod: dict[str, Any], state: dict[str, Any], now: str) -> None:
        state["state"] = {"running": {"startedAt": now}}
        state["started"] = True
        state["ready"] = True
        state["containerID"] = f"containerd://{pod['metadata']['uid'][:8]}{state['name']}"
        state["imageID"] = f"docker.io/library/{state['image']}@sha256:{'0' * 64}"

    def _terminate(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        state: dict[str, Any],
        code: int,
        now: str,
        *,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        started = (state.get("state", {}).get("running") or {}).get("startedAt", now)
        term: dict[str, Any] = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": started,
            "finishedAt": now,
            "containerID": state.get("containerID", ""),
        }
        if message is None and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = self.store.logs.get((pod["metadata"]["namespace"], pod["metadata"]["name"], container["name"]), [])
            message = "\n".join(line for _, line in lines[-80:]) or None
        if message:
            term["message"] = message
        state["state"] = {"terminated": term}
        state["ready"] = False
        state["started"] = False

    def _run_logs(self, pod: dict[str, Any], container: dict[str, Any], script: dict[str, Any]) -> None:
        for line in script.get("logs") or ():
            self.store.append_log(pod["metadata"]["namespace"], pod["metadata"]["name"], container["name"], line)

    def _finish_code(self, script: dict[str, Any]) -> tuple[int, str | None]:
        if script.get("oom"):
            return 137, "OOMKilled"
        return int(script.get("exit", 0)), None

    def _advance_containers(self, pod: dict[str, Any], status: dict[str, Any], now: str) -> None:
        inits = pod["spec"].get("initContainers") or []
        mains = pod["spec"]["containers"]
        init_states = self._statuses(pod, "initContainers")
        main_states = self._statuses(pod, "containers")
        if inits:
            status["initContainerStatuses"] = init_states
        status["containerStatuses"] = main_states
        # Init containers, in order; native sidecars start and stay.
        for container, state in zip(inits, init_states, strict=True):
            script = self.script(pod, container)
            sidecar = container.get("restartPolicy") == "Always"
            current = state.get("state", {})
            if "terminated" in current:
                if current["terminated"]["exitCode"] != 0 and not sidecar:
                    return
                continue
            if "running" in current:
                if sidecar:
                    continue
                if script.get("hold"):
                    return  # until finish()
                code, reason = self._finish_code(script)
                self._terminate(pod, container, state, code, now, reason=reason, message=script.get("message"))
                if code != 0:
                    status["phase"] = "Failed"
                    self._set_condition(status, "Initialized", "False", now)
                self._write_status(pod, status)
                return
            if self._pull(pod, container, state, script):
                self._write_status(pod, status)
                return
            self._start(pod, state, now)
            self._write_status(pod, status)
            self._run_logs(pod, container, script)
            self.event(pod, "Started", f"Started container {container['name']}")
            return
        # Main containers.
        if any("running" not in s.get("state", {}) and "terminated" not in s.get("state", {}) for s in main_states):
            self._set_condition(status, "Initialized", "True", now)
            stuck = False
            started = []
            for container, state in zip(mains, main_states, strict=True):
                current = state.get("state", {})
                if "running" in current or "terminated" in current:
                    continue
                if self._pull(pod, container, state, self.script(pod, container)):
                    stuck = True
                    continue
                self._start(pod, state, now)
                started.append(container)
            if not stuck or started:
                status["phase"] = "Running"
                status["podIP"] = status.get("podIP") or pod_ip()  # network: a loopback address per pod
                status["podIPs"] = [{"ip": status["podIP"]}]
            if not stuck:
                self._set_condition(status, "ContainersReady", "True", now)
                self._set_condition(status, "Ready", "True", now)
            self._write_status(pod, status)
            for container in started:
                self._run_logs(pod, container, self.script(pod, container))
                self.event(pod, "Started", f"Started container {container['name']}")
            return
        for container, state in zip(mains, main_states, strict=True):
            script = self.script(pod, container)
            if "running" in state.get("state", {}) and not script.get("hold"):
                code, reason = self._finish_code(script)
                self._terminate(pod, container, state, code, now, reason=reason, message=script.get("message"))
                self._write_status(pod, status)
                return
        if all("terminated" in s.get("state", {}) for s in main_states):
            for container, state in zip(inits, init_states, strict=True):
                if "running" in state.get("state", {}):  # stop the sidecars after the main containers
                    self._terminate(pod, container, state, 0, now)
            codes = [s["state"]["terminated"]["exitCode"] for s in main_states]
            status["phase"] = "Succeeded" if all(c == 0 for c in codes) else "Failed"
            self._set_condition(status, "ContainersReady", "False", now)
            self._set_condition(status, "Ready", "False", now)
            self._write_status(pod, status)

    def _kill(
        self, pod: dict[str, Any], *, reason: str, phase_reason: str | None = None, message: str | None = None
    ) -> None:
        """Stop every container (SIGTERM: exit 143), then remove a terminating pod."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        status = copy.deepcopy(pod.get("status") or {})
        now = self.store.clock.iso()
        changed = False
        for group, field in (("initContainers", "initContainerStatuses"), ("containers", "containerStatuses")):
            states = {s["name"]: s for s in status.get(field) or ()}
            for container in pod["spec"].get(group) or ():
                state = states.get(container["name"])
                if state is not None and "running" in state.get("state", {}):
                    self._terminate(pod, container, state, 143, now, message="")
                    changed = True
                    self.event(pod, reason, f"Stopping container {container['name']}")
        if status.get("phase") not in ("Succeeded", "Failed") and (changed or phase_reason):
            status["phase"] = "Failed"
            if phase_reason:
                status["reason"] = phase_reason
                status["message"] = message or ""
            changed = True
        if changed:
            self._write_status(pod, status)
        if pod["metadata"].get("deletionTimestamp"):
            self.store.finalize_pod(ns, name)

    # -- test actions (queued on this thread) ---------------------------------------------------------

    def finish(self, ns: str, pod_name: str, container: str, exit_code: int = 0, message: str | None = None) -> None:
        def act() -> None:
            with self.store.lock:
                pod = self.store.find("pods", ns, pod_name)
                if pod is None:
                    return
                status = copy.deepcopy(pod["status"])
                now = self.store.clock.iso()
                for group, field in (("initContainers", "initContainerStatuses"), ("containers", "containerStatuses")):
                    for c, state in zip(pod["spec"].get(group) or (), status.get(field) or (), strict=False):
                        if c["name"] == container and "running" in state.get("state", {}):
                            self._terminate(pod, c, state, exit_code, now, message=message)
                            if group == "initContainers" and exit_code != 0 and c.get("restartPolicy") != "Always":
                                status["phase"] = "Failed"
                self._write_status(pod, status)

        self.call(act)

    def schedule(self, ns: str, pod_name: str) -> None:
        def act() -> None:
            with self.store.lock:
                pod = self.store.find("pods", ns, pod_name)
                if pod is None:
                    return
                notes = dict(pod["metadata"].get("annotations") or {})
                script = self._pod_script(pod)
                script.pop("unschedulable", None)
                notes[SCRIPT_ANNOTATION] = json.dumps(script)
                new = copy.deepcopy(pod)
                new["metadata"]["annotations"] = notes
                new["status"] = {k: v for k, v in pod["status"].items() if k != "conditions"}
                self.store.write(("pods", ns, pod_name), new, pod)

        self.call(act)

    def tick(self) -> None:
        """After the clock moved: deadlines and TTLs."""

        def act() -> None:
            now = self.store.clock.now()
            with self.store.lock:
                jobs = [o for (p, _, _), o in self.store.objects.items() if p == "jobs"]
                pods = [o for (p, _, _), o in self.store.objects.items() if p == "pods"]
            for job in jobs:
                self._job_clock(job, now)
            for pod in pods:
                deadline = pod["spec"].get("activeDeadlineSeconds")
                start = (pod.get("status") or {}).get("startTime")
                running = (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                passed = bool(deadline and start and running and parse_iso(start) + deadline <= now)
                if passed and self.kubelet is not None:
                    self.kubelet.deadline_exceeded(pod["metadata"]["namespace"], pod["metadata"]["name"])
                elif passed and not self._job_owner(pod):
                    self._kill(
                        pod,
                        reason="Killing",
                        phase_reason="DeadlineExceeded",
                        message="Pod was active on the node longer than the specified deadline",
                    )

        self.call(act)

    # -- job controller -------------------------------------------------------------------------------

    @staticmethod
    def _job_owner(pod: dict[str, Any]) -> tuple[str, str] | None:
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("kind") == "Job" and ref.get("controller"):
                return str(ref["name"]), str(ref["uid"])
        return None

    @staticmethod
    def _finished(job: dict[str, Any]) -> dict[str, Any] | None:
        for c in (job.get("status") or {}).get("conditions") or ():
            if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                return dict(c)
        return None

    def _sync_job(self, ns: str, name: str) -> None:
        with self.store.lock:
            job = self.store.find("jobs", ns, name)
            if job is None or job["metadata"].get("deletionTimestamp") or self._finished(job):
                return
            uid = job["metadata"]["uid"]
            spec = job["spec"]
            status = copy.deepcopy(job.get("status") or {})
            pods = [
                o
                for (p, n, _), o in self.store.objects.items()
                if p == "pods"
                and n == ns
                and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())
            ]
            active = [
                p
                for p in pods
                if p["status"].get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")
            ]
            succeeded = sum(p["status"].get("phase") == "Succeeded" for p in pods)
            counted = self._failed_pods.setdefault(uid, set())
            counted.update(
                p["metadata"]["uid"]
                for p in pods
                if p["status"].get("phase") == "Failed"
                or (p["metadata"].get("deletionTimestamp") and p["status"].get("phase") != "Succeeded")
            )
            failed = len(counted)
            now = self.store.clock.iso()
            status.setdefault("startTime", now)
            if succeeded >= spec["completions"]:
                status["conditions"] = [
                    _cond(
                        "SuccessCriteriaMet",
                        "True",
                        now,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    ),
                    _cond("Complete", "True", now, "CompletionsReached", "Reached expected number of succeeded pods"),
                ]
                status["completionTime"] = now
                status.pop("active", None)
                self.event(job, "Completed", "Job completed", component="job-controller")
            elif failed > spec["backoffLimit"] or self._past_backoff_on_failure(spec, active):
                status["failed"] = failed
                self._fail_job(
                    job, status, active, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
                return
            elif not active and not any(p["metadata"].get("deletionTimestamp") for p in pods):
                if name in self.failed_creates:
                    if uid not in self._failed_create_seen:
                        self._failed_create_seen.add(uid)
                        self.event(job, "FailedCreate", self.failed_creates[name], "Warning", "job-controller")
                    return
                template = copy.deepcopy(spec["template"])
                meta = template.setdefault("metadata", {})
                meta["generateName"] = f"{name}-"
                meta["namespace"] = ns
                meta["ownerReferences"] = [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]
                try:
                    pod = self.store.create(
                        "pods", ns, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
                    )
                except ApiError as exc:
                    # Admission refused it (quota, PodSecurity): the job controller records why and retries
                    # with back-off; here on the Job's next sync (a change, or the clock moving).
                    key = f"{uid}/{exc.message}"
                    if key not in self._failed_create_seen:
                        self._failed_create_seen.add(key)
                        self.event(job, "FailedCreate", f"Error creating: {exc.message}", "Warning", "job-controller")
                    return
                self.event(
                    job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", component="job-controller"
                )
                active = [pod]
            status["active"] = len(active) or None
            status["succeeded"] = succeeded or None
            status["failed"] = failed or None
            status["ready"] = sum(1 for p in active if p["status"].get("phase") == "Running")
            status["terminating"] = 0
            status["uncountedTerminatedPods"] = {}
            status = {k: v for k, v in status.items() if v is not None}
            new = copy.deepcopy(job)
            new["status"] = status
            self.store.write(("jobs", ns, name), new, job)

    @staticmethod
    def _past_backoff_on_failure(spec: dict[str, Any], active: list[dict[str, Any]]) -> bool:
        """Under ``restartPolicy: OnFailure`` the kubelet restarts a failed container in place, and the Job
        counts those restarts against its backoffLimit (pkg/controller/job pastBackoffLimitOnFailure: with a
        limit of 0, the first restart fails the Job):
        https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy"""
        if spec["template"]["spec"].get("restartPolicy") != "OnFailure":
            return False
        restarts = sum(
            int(c.get("restartCount") or 0)
            for p in active
            if p["status"].get("phase") in ("Running", "Pending")
            for c in [*(p["status"].get("initContainerStatuses") or ()), *(p["status"].get("containerStatuses") or ())]
        )
        limit = int(spec["backoffLimit"])
        return restarts > 0 if limit == 0 else restarts >= limit

    def _fail_job(
        self, job: dict[str, Any], status: dict[str, Any], active: list[dict[str, Any]], reason: str, message: str
    ) -> None:
        now = self.store.clock.iso()
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        status["conditions"] = [
            _cond("FailureTarget", "True", now, reason, message),
            _cond("Failed", "True", now, reason, message),
        ]
        status.pop("active", None)
        new = copy.deepcopy(job)
        new["status"] = status
        self.store.write(("jobs", ns, name), new, job)
        self.event(job, reason, message, "Warning", "job-controller")
        for pod in active:
            with contextlib.suppress(ApiError):
                self.store.delete("pods", ns, pod["metadata"]["name"], {})

    def _job_clock(self, job: dict[str, Any], now: float) -> None:
        spec, status = job["spec"], job.get("status") or {}
        finished = self._finished(job)
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        if finished is None:
            deadline = spec.get("activeDeadlineSeconds")
            start = status.get("startTime")
            if deadline and start and parse_iso(start) + deadline <= now:
                with self.store.lock:
                    current = self.store.find("jobs", ns, name)
                    if current is None:
                        return
                    uid = current["metadata"]["uid"]
                    active = [
                        o
                        for (p, n, _), o in self.store.objects.items()
                        if p == "pods"
                        and n == ns
                        and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())
                        and o["status"].get("phase") not in ("Succeeded", "Failed")
                    ]
                    self._fail_job(
                        current,
                        copy.deepcopy(current.get("status") or {}),
                        active,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
            return
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None and parse_iso(finished["lastTransitionTime"]) + ttl <= now:
            with contextlib.suppress(ApiError):
                self.store.delete("jobs", ns, name, {"propagationPolicy": "Background"})
