"""Which kernel owns which runs, and when a kernel is gone: a heartbeat ConfigMap per kernel.

Each executor (a notebook kernel, a ``polynb run``) creates ``polynb-kernel-<id>`` in its namespace,
labelled ``polynb.io/role=kernel`` and ``polynb.io/kernel=<id>``, and renews its heartbeat annotation every
``interval`` seconds (one PATCH, whatever the number of runs). A kernel is **gone** when its heartbeat is
older than its lease (``polynb.io/lease-seconds``, 5 minutes by default) and it did not release its runs
on purpose (``polynb.io/released=true``, written by ``shutdown(stop_running=False)``: those runs wait for a
kernel to re-attach, bounded by their ``activeDeadlineSeconds``/``ttlSecondsAfterFinished`` backstops). A
released kernel is swept too once its lease is over and none of its pods is still live: its finished runs
and its ConfigMap would otherwise pile up. A
kernel label found on runs without any ConfigMap is gone too (the ConfigMap is written before any run).
The sweep deletes a gone kernel's Jobs, Pods and Services by label (Background propagation) and its
ConfigMap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from polynb.executors.kubernetes import names
from polynb.executors.kubernetes.client import Api, K8sError, path
from polynb.executors.kubernetes.status import parse_time

log = logging.getLogger(__name__)

KERNEL_SELECTOR = names.selector({names.MANAGED_BY: names.MANAGED_BY_VALUE, names.ROLE: "kernel"})
RUN_SELECTOR = names.selector({names.MANAGED_BY: names.MANAGED_BY_VALUE, names.ROLE: "run"})
MERGE_PATCH = "application/merge-patch+json"
BACKGROUND = {"propagationPolicy": "Background"}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KernelLease:
    """This kernel's heartbeat ConfigMap; ``start()`` renews it on a thread until ``stop()``."""

    def __init__(
        self,
        api: Api,
        namespace: str,
        kernel_id: str,
        kernel_label: str,
        *,
        interval: float = 60.0,
        lease_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.kernel_id = kernel_id
        self.kernel_label = kernel_label
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.on_tick = on_tick
        self.name = names.kernel_configmap_name(kernel_label)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self, *, released: bool) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {
                    names.MANAGED_BY: names.MANAGED_BY_VALUE,
                    names.ROLE: "kernel",
                    names.KERNEL: self.kernel_label,
                },
                "annotations": {
                    names.KERNEL_ANNOTATION: self.kernel_id,
                    names.HEARTBEAT_ANNOTATION: _iso(self.clock()),
                    names.LEASE_ANNOTATION: str(int(self.lease_seconds)),
                    names.RELEASED_ANNOTATION: "true" if released else "false",
                },
            },
            "data": {"kernel": self.kernel_id},
        }

    def acquire(self) -> None:
        """Create the ConfigMap, or take it over (a restarted kernel with the same id)."""
        body = self._body(released=False)
        try:
            self.api.request("POST", path("configmaps", self.namespace), body=body)
        except K8sError as exc:
            if exc.code != 409:
                raise
            self.api.request(
                "PATCH", path("configmaps", self.namespace, self.name), body=body, content_type=MERGE_PATCH
            )

    def renew(self) -> None:
        body = {"metadata": {"annotations": {names.HEARTBEAT_ANNOTATION: _iso(self.clock())}}}
        self.api.request("PATCH", path("configmaps", self.namespace, self.name), body=body, content_type=MERGE_PATCH)

    def release(self) -> None:
        """Runs stay for another kernel to re-attach; the sweep leaves them alone."""
        body = {"metadata": {"annotations": {names.RELEASED_ANNOTATION: "true"}}}
        self.api.request("PATCH", path("configmaps", self.namespace, self.name), body=body, content_type=MERGE_PATCH)

    def delete(self) -> None:
        try:
            self.api.request("DELETE", path("configmaps", self.namespace, self.name))
        except K8sError as exc:
            if exc.code != 404:
                raise

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="polynb-k8s-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except Exception:
                    log.exception("kubernetes executor periodic check")
            try:
                self.renew()
            except K8sError as exc:
                log.warning("kernel heartbeat %s: %s", self.name, exc)


def gone_kernels(api: Api, namespace: str, *, now: float, exclude: str) -> list[str]:
    """Kernel labels in ``namespace`` whose runs may be swept (see the module docstring)."""
    maps = api.request("GET", path("configmaps", namespace), query={"labelSelector": KERNEL_SELECTOR})
    pods = api.request("GET", path("pods", namespace), query={"labelSelector": RUN_SELECTOR})
    live: set[str] = set()
    labelled: list[str] = []
    for pod in pods.get("items") or ():
        label = ((pod.get("metadata") or {}).get("labels") or {}).get(names.KERNEL)
        if not label:
            continue
        labelled.append(label)
        if ((pod.get("status") or {}).get("phase") or "Pending") not in ("Succeeded", "Failed"):
            live.add(label)
    known: set[str] = set()
    gone: list[str] = []
    for cm in maps.get("items") or ():
        meta = cm.get("metadata") or {}
        label = (meta.get("labels") or {}).get(names.KERNEL)
        if not label:
            continue
        known.add(label)
        notes = meta.get("annotations") or {}
        if label == exclude:
            continue
        beat = parse_time(notes.get(names.HEARTBEAT_ANNOTATION))
        try:
            lease = float(notes.get(names.LEASE_ANNOTATION) or 300)
        except ValueError:
            lease = 300.0
        expired = beat is None or now - beat > lease
        if notes.get(names.RELEASED_ANNOTATION) == "true":
            # Released on purpose: its live runs wait for a kernel to re-attach them; once none is live and
            # the lease is over, what is left (finished runs, the ConfigMap) is litter.
            if expired and label not in live:
                gone.append(label)
        elif expired:
            gone.append(label)
    for label in labelled:
        if label != exclude and label not in known and label not in gone:
            gone.append(label)
    return gone


def delete_kernel_runs(api: Api, namespace: str, kernel_label: str) -> None:
    """Delete every Job, Pod and Service of a kernel (Background: the Jobs' pods go with them)."""
    selector = names.selector({names.MANAGED_BY: names.MANAGED_BY_VALUE, names.KERNEL: kernel_label})
    for plural in ("jobs", "pods", "services"):
        try:
            api.request("DELETE", path(plural, namespace), query={"labelSelector": selector, **BACKGROUND})
        except K8sError as exc:
            if exc.code != 404:
                raise


def sweep(api: Api, namespace: str, *, now: float, exclude: str) -> list[str]:
    """Remove the runs (and heartbeat ConfigMaps) of gone kernels; returns their labels."""
    gone = gone_kernels(api, namespace, now=now, exclude=exclude)
    for label in gone:
        log.info("kubernetes executor: removing the runs of kernel %s (gone)", label)
        delete_kernel_runs(api, namespace, label)
        try:
            api.request("DELETE", path("configmaps", namespace, names.kernel_configmap_name(label)))
        except K8sError as exc:
            if exc.code != 404:
                raise
    return gone
