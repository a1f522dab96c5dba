"""The executing kubelet's scheduler and volume attachment across emulated nodes (test-only emulator).

Pods go to the node with the fewest active pods (ties: the first), honouring ``spec.nodeName`` and a
``kubernetes.io/hostname`` node selector; a pod whose claim does not exist is ``Unschedulable``. As with
the default scheduler, a ReadWriteOnce claim does not steer the choice: a second pod on another node
while the first still runs cannot attach the volume (``FailedAttachVolume``: Multi-Attach error) and stays
``ContainerCreating`` until the first pod ends. ReadWriteMany claims attach anywhere.
https://kubernetes.io/docs/concepts/storage/persistent-volumes/#access-modes

A pod whose resource requests (its limits where it sets no request) exceed a node's allocatable
(``NODE_CAPACITY``: no GPU) fits no node: ``Unschedulable``, "Insufficient <resource>", as the default
scheduler's NodeResourcesFit says; the requests of the pods already on a node are not subtracted.
https://kubernetes.io/docs/concepts/scheduling-eviction/kube-scheduler/#kube-scheduler-implementation
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

HOSTNAME_LABEL = "kubernetes.io/hostname"
NODE_CAPACITY: dict[str, str] = {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}
_SUFFIXES = {
    "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity(value: object) -> float:
    """A resource quantity (``"500m"``, ``"1.5"``, ``"512Mi"``, ``"1e3"``, ``2``) as a number."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return float(text)


def _requests(container: dict[str, Any]) -> dict[str, float]:
    """A container's requests; a resource with a limit and no request requests its limit."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {k: quantity(v) for k, v in merged.items()}


def pod_requests(spec: dict[str, Any]) -> dict[str, float]:
    """The pod's effective requests: the sum of its containers' and native sidecars', or the largest plain init
    container's if larger (https://kubernetes.io/docs/concepts/workloads/pods/init-containers/#resource-sharing-within-containers)."""
    total: dict[str, float] = {}
    inits: list[dict[str, float]] = []
    for c in spec.get("initContainers") or ():
        if c.get("restartPolicy") == "Always":
            for k, v in _requests(c).items():
                total[k] = total.get(k, 0.0) + v
        else:
            inits.append(_requests(c))
    for c in spec.get("containers") or ():
        for k, v in _requests(c).items():
            total[k] = total.get(k, 0.0) + v
    for init in inits:
        for k, v in init.items():
            total[k] = max(total.get(k, 0.0), v)
    return total


@dataclass(frozen=True)
class Node:
    name: str
    ip: str

    @property
    def labels(self) -> dict[str, str]:
        return {HOSTNAME_LABEL: self.name, "kubernetes.io/os": "linux"}


def make_nodes(count: int) -> list[Node]:
    return [Node(f"emu-node-{i + 1}", f"10.0.0.{i + 1}") for i in range(count)]


def node_object(node: Node, now: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Node's object and its status, as a kubelet registers it (``kubectl get nodes`` shows them)."""
    body = {"metadata": {"name": node.name, "labels": node.labels}, "spec": {}}
    capacity = dict(NODE_CAPACITY)
    status = {
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": node.ip}, {"type": "Hostname", "address": node.name}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
        "nodeInfo": {
            "kubeletVersion": "v1.32.0-polynb-emulator",
            "containerRuntimeVersion": "containerd://1.7.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "polynb emulated node",
            "kernelVersion": "",
            "kubeProxyVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }
    return body, status


class Unschedulable(Exception):
    pass


def pick_node(
    nodes: list[Node], pod: dict[str, Any], active: dict[str, int], claims: set[str], cordoned: set[str]
) -> Node:
    """The node for ``pod`` (``active``: node -> its running pods; ``claims``: existing claim names;
    ``cordoned``: nodes marked unschedulable, e.g. by ``kubectl cordon``)."""
    for volume in pod["spec"].get("volumes") or ():
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and claim not in claims:
            raise Unschedulable(
                f'0/{len(nodes)} nodes are available: persistentvolumeclaim "{claim}" not found. preemption: '
                f"0/{len(nodes)} nodes are available: {len(nodes)} Preemption is not helpful for scheduling."
            )
    selector = pod["spec"].get("nodeSelector") or {}
    fits = [n for n in nodes if all(n.labels.get(k) == v for k, v in selector.items())]
    if fits and all(n.name in cordoned for n in fits):
        raise Unschedulable(
            f"0/{len(nodes)} nodes are available: {len(cordoned)} node(s) were unschedulable. preemption: "
            f"0/{len(nodes)} nodes are available: {len(nodes)} Preemption is not helpful for scheduling."
        )
    fits = [n for n in fits if n.name not in cordoned]
    wanted = pod_requests(pod["spec"])
    short = sorted(k for k, v in wanted.items() if v > quantity(NODE_CAPACITY.get(k, 0)))
    if fits and short:
        insufficient = ", ".join(f"{len(fits)} Insufficient {k}" for k in short)
        raise Unschedulable(
            f"0/{len(nodes)} nodes are available: {insufficient}. preemption: 0/{len(nodes)} nodes are available: "
            f"{len(nodes)} No preemption victims found for incoming pod."
        )
    if not fits:
        raise Unschedulable(
            f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) didn't match Pod's node "
            f"affinity/selector. preemption: 0/{len(nodes)} nodes are available: {len(nodes)} Preemption is "
            "not helpful for scheduling."
        )
    return min(fits, key=lambda n: (active.get(n.name, 0), n.name))


class Attachments:
    """Which node each ReadWriteOnce claim is attached to, and for which pods."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_claim: dict[tuple[str, str], tuple[str, set[str]]] = {}

    def attach(self, ns: str, claim: str, node: str, pod: str) -> set[str]:
        """Attach for ``pod``; returns the pods holding it on another node (empty when attached)."""
        with self._lock:
            held = self._by_claim.get((ns, claim))
            if held is not None and held[0] != node and held[1]:
                return set(held[1])
            if held is None or held[0] != node:
                held = (node, set())
                self._by_claim[(ns, claim)] = held
            held[1].add(pod)
            return set()

    def release(self, pod: str) -> None:
        with self._lock:
            for key, (_node, pods) in list(self._by_claim.items()):
                pods.discard(pod)
                if not pods:
                    del self._by_claim[key]
