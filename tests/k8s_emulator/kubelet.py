"""The executing kubelet: schedules pods on emulated nodes and runs every container as a local process in
a sandbox (test-only emulator). ``Emulator(kubelet="exec", root=...)`` uses it instead of the scripted one.

It reacts to the store's change feed on the controller thread (scheduling, starting a pod worker, passing
on deletes) and leaves each pod's life to its ``PodWorker`` thread, so a container that runs for a while
never holds up the Job controller or other pods.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import threading
from pathlib import Path
from typing import Any

from . import rootfs, sandbox
from .errors import ApiError
from .images import Image, Images
from .network import pod_ip
from .podworker import PodWorker
from .scheduler import Attachments, Node, Unschedulable, make_nodes, node_object, pick_node
from .store import Change, Store

log = logging.getLogger(__name__)


class ExecKubelet:
    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        nodes: int = 2,
        images: Images | None = None,
        pull_backoff: float = 1.0,
        crash_backoff: float = 1.0,
        retry_interval: float = 0.5,
    ) -> None:
        sandbox.require()
        self.store = store
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.nodes: list[Node] = make_nodes(nodes)
        self.images = images or Images()
        self.pull_backoff = pull_backoff
        """Seconds between a failed pull and the next (doubled each time, up to 8 times this)."""
        self.crash_backoff = crash_backoff
        self.retry_interval = retry_interval
        """How often a pod waiting for a ConfigMap, Secret or volume looks again (it is also woken on changes)."""
        self.attachments = Attachments()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._done: set[str] = set()
        self._unscheduled: set[tuple[str, str]] = set()
        self._image_locks: dict[str, threading.Lock] = {}
        for node in self.nodes:  # each node's kubelet registers its Node
            body, status = node_object(node, store.clock.iso())
            store.create("nodes", None, body)
            with store.lock:
                key = ("nodes", None, node.name)
                old = store.objects[key]
                store.write(key, {**copy.deepcopy(old), "status": status}, old)

    # -- the controller thread ------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        if change.plural != "pods":
            if change.plural in ("configmaps", "secrets", "persistentvolumeclaims", "nodes"):
                self._wake_all()
                self._retry_scheduling()
            return
        obj = change.obj
        meta = obj["metadata"]
        uid = meta["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if change.type == "DELETED":
            if worker is not None:
                worker.terminate(0.0)  # gone from the API (force delete): kill what is left
            self._unscheduled.discard((meta["namespace"], meta["name"]))
            self._retry_scheduling()
            return
        if meta.get("deletionTimestamp"):
            if worker is not None:
                worker.terminate(float(meta.get("deletionGracePeriodSeconds") or 0))
            elif uid in self._done or not obj["spec"].get("nodeName"):
                self.store.finalize_pod(meta["namespace"], meta["name"])
            return
        if not obj["spec"].get("nodeName"):
            self._schedule(obj)
            return
        phase = (obj.get("status") or {}).get("phase")
        if worker is None and uid not in self._done and phase not in ("Succeeded", "Failed"):
            self._start_worker(obj)
        if phase in ("Succeeded", "Failed"):
            self._retry_scheduling()

    def _active_by_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for worker in self._workers.values():
                counts[worker.node] = counts.get(worker.node, 0) + 1
        return counts

    def _schedule(self, pod: dict[str, Any]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        claims = {c["metadata"]["name"] for c in self.store.list("persistentvolumeclaims", ns)[0]}
        now = self.store.clock.iso()
        try:
            cordoned = {
                n["metadata"]["name"] for n in self.store.list("nodes", None)[0] if n["spec"].get("unschedulable")
            }
            node = pick_node(self.nodes, pod, self._active_by_node(), claims, cordoned)
        except Unschedulable as exc:
            first = (ns, name) not in self._unscheduled
            self._unscheduled.add((ns, name))
            if first:
                status = copy.deepcopy(pod.get("status") or {})
                status["conditions"] = [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "lastProbeTime": None,
                        "lastTransitionTime": now,
                        "reason": "Unschedulable",
                        "message": str(exc),
                    }
                ]
                self._write(pod, status=status)
                self.event(pod, "FailedScheduling", str(exc), "Warning", component="default-scheduler")
            return
        self._unscheduled.discard((ns, name))
        status = copy.deepcopy(pod.get("status") or {})
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        ]
        self._write(pod, status=status, node=node.name)
        self.event(pod, "Scheduled", f"Successfully assigned {ns}/{name} to {node.name}", component="default-scheduler")

    def _retry_scheduling(self) -> None:
        for ns, name in sorted(self._unscheduled):
            pod = self.store.find("pods", ns, name)
            if pod is None:
                self._unscheduled.discard((ns, name))
            elif not pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp"):
                self._schedule(pod)

    def _write(self, pod: dict[str, Any], *, status: dict[str, Any], node: str | None = None) -> None:
        key = ("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self.store.lock:
            old = self.store.objects.get(key)
            if old is None or old["metadata"]["uid"] != pod["metadata"]["uid"]:
                return
            new = copy.deepcopy(old)
            new["status"] = status
            if node is not None:
                new["spec"]["nodeName"] = node
            self.store.write(key, new, old)

    def _start_worker(self, pod: dict[str, Any]) -> None:
        node = next((n for n in self.nodes if n.name == pod["spec"]["nodeName"]), None)
        if node is None:
            return  # bound to a node that does not exist here: no kubelet runs it, as on a cluster
        with self._lock:
            # The network's allocator: the same loopback block the port-forward and kube-proxy dial.
            worker = PodWorker(self, pod, node.ip, pod_ip())
            self._workers[pod["metadata"]["uid"]] = worker
        worker.start()

    def _wake_all(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.wake()

    # -- called by pod workers ------------------------------------------------------------------------

    def worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)
            self._done.add(worker.uid)
        self._wake_all()  # a released volume may let another pod attach
        pod = self.store.find("pods", worker.ns, worker.name)
        if pod is not None and pod["metadata"]["uid"] == worker.uid and pod["metadata"].get("deletionTimestamp"):
            self.store.finalize_pod(worker.ns, worker.name)

    def image_folder(self, name: str, image: Image) -> Path:
        """The image laid out once (per emulator root) and shared by its containers."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        with self._lock:
            lock = self._image_locks.setdefault(safe, threading.Lock())
        folder = self.root / "images" / safe
        with lock:
            rootfs.build_image(folder, image)
        return folder

    def pod_names(self, uids: set[str]) -> list[str]:
        with self._lock:
            return [w.name for u, w in self._workers.items() if u in uids]

    def event(
        self,
        pod: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        *,
        component: str = "kubelet",
        node: str = "",
    ) -> None:
        meta = pod["metadata"]
        now = self.store.clock.iso()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "source": {"component": component, **({"host": node} if node else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": component,
            "reportingInstance": node,
        }
        with contextlib.suppress(ApiError):
            self.store.create("events", meta["namespace"], body)

    # -- what tests ask -------------------------------------------------------------------------------

    def worker(self, ns: str, name: str) -> PodWorker | None:
        with self._lock:
            return next((w for w in self._workers.values() if (w.ns, w.name) == (ns, name)), None)

    def deadline_exceeded(self, ns: str, name: str) -> None:
        worker = self.worker(ns, name)
        if worker is not None:
            worker.deadline()

    def container_pids(self, ns: str, name: str) -> dict[str, int]:
        worker = self.worker(ns, name)
        if worker is None:
            return {}
        return {c: p.pid for c, p in list(worker.processes.items()) if not p.exited.is_set()}

    def stop(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.terminate(0.0)
        for worker in workers:
            worker.join(timeout=10)
