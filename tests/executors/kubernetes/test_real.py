"""Opt-in: the kubernetes executor on a real cluster (``pytest --k8s-real`` with ``KUBECONFIG`` set).

Off in CI. Each test run uses a namespace of its own (``polynb-e2e-<random>``), created and deleted here,
and small public images (``busybox``, ``python:3.11-slim``). This is how emulator drift is caught: the same
behaviours as the emulator tests, on kind, k3d or minikube (see docs/kubernetes.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid as uuidlib
from collections.abc import Iterator

import pytest

from polynb.compiler.types import CompiledOp, ContainerSpec, TerminationSpec
from polynb.executors.base import ExecutorUpdate
from polynb.executors.kubernetes.client import Api, K8sError, path
from polynb.executors.kubernetes.config import load
from polynb.executors.kubernetes.executor import KubernetesExecutor
from polynb.executors.kubernetes.settings import KubernetesSettings


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    if not request.config.getoption("--k8s-real"):
        pytest.skip("real-cluster tests are opt-in: pytest --k8s-real (with KUBECONFIG)")
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("--k8s-real needs KUBECONFIG")
    api = Api.from_configuration(load().configuration)
    name = f"polynb-e2e-{uuidlib.uuid4().hex[:6]}"
    api.request("POST", path("namespaces"), body={"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(K8sError):
            api.request("DELETE", path("namespaces", None, name), query={"propagationPolicy": "Background"})
        api.close()


class Updates:
    def __init__(self) -> None:
        import queue

        self.queue: queue.Queue[ExecutorUpdate] = queue.Queue()

    def __call__(self, update: ExecutorUpdate) -> None:
        self.queue.put(update)

    def final(self, timeout: float = 300.0) -> list[ExecutorUpdate]:
        seen = []
        while True:
            update = self.queue.get(timeout=timeout)
            seen.append(update)
            if update.is_final:
                return seen


def busybox_op(executor: KubernetesExecutor, script: str, **kw: object) -> CompiledOp:
    run = uuidlib.uuid4().hex
    return CompiledOp(
        uuid=run,
        name="e2e",
        kind="job",
        container=ContainerSpec(
            name="main", image="busybox:1.36", command=("sh", "-c", script), k8s={"imagePullPolicy": "IfNotPresent"}
        ),
        placement=executor.place(run, "job", 0),
        termination=TerminationSpec(timeout=600),
        **kw,  # type: ignore[arg-type]
    )


def test_job_outputs_and_logs(namespace: str) -> None:
    executor = KubernetesExecutor(KubernetesSettings(namespace=namespace, kernel_id=f"e2e-{namespace}"))
    try:
        updates = Updates()
        op = busybox_op(executor, "echo hello; printf '{\"answer\": 42}' > /dev/termination-log")
        executor.submit(op, updates)
        seen = updates.final()
        assert [u.status for u in seen][-2:] == ["running", "succeeded"]
        assert seen[-1].outputs == {"answer": 42}
        assert "hello" in list(executor.logs(op.uuid))
    finally:
        executor.shutdown()


def test_failure_reason_and_stop(namespace: str) -> None:
    executor = KubernetesExecutor(KubernetesSettings(namespace=namespace, kernel_id=f"e2e2-{namespace}"))
    try:
        updates = Updates()
        failing = busybox_op(executor, "echo boom; exit 3")
        executor.submit(failing, updates)
        final = updates.final()[-1]
        assert (final.status, final.reason) == ("failed", "Error") and "boom" in final.message
        stopped = Updates()
        long = busybox_op(executor, "sleep 600")
        executor.submit(long, stopped)
        while stopped.queue.get(timeout=300).status != "running":
            pass
        executor.stop(long.uuid, grace=1)
        assert stopped.final()[-1].status == "stopped"
    finally:
        executor.shutdown()
    assert json.dumps({"ok": True})


def test_service_url_through_the_port_forward(namespace: str) -> None:
    """The real WebSocket port-forward: busybox's httpd as the service, fetched through the local tunnel."""
    import urllib.request

    executor = KubernetesExecutor(
        KubernetesSettings(namespace=namespace, kernel_id=f"e2e3-{namespace}", port_forward=True)
    )
    try:
        updates = Updates()
        run = uuidlib.uuid4().hex
        placement = executor.place(run, "service", 1)
        serve = (
            f"mkdir -p /tmp/www && echo scalars > /tmp/www/index.html && httpd -f -p {placement.ports[0]} -h /tmp/www"
        )
        op = CompiledOp(
            uuid=run,
            name="board",
            kind="service",
            container=ContainerSpec(name="main", image="busybox:1.36", command=("sh", "-c", serve)),
            placement=placement,
            termination=TerminationSpec(timeout=600),
        )
        executor.submit(op, updates)
        url = None
        while url is None:
            update = updates.queue.get(timeout=300)
            assert not update.is_final, update
            url = update.url
        body = b""
        for _ in range(60):  # httpd may not listen yet when the container counts as started (no probe)
            try:
                with urllib.request.urlopen(url, timeout=30) as reply:
                    body = reply.read().strip()
                break
            except OSError:
                import time

                time.sleep(1.0)
        assert body == b"scalars"
        executor.stop(run, grace=1)
        assert updates.final()[-1].status == "stopped"
    finally:
        executor.shutdown()


def test_polynb_code_runs_in_a_stock_python_image(namespace: str) -> None:
    # python:3.11-slim has no polynb: polynb.tracking comes in the runtime bundle (a ConfigMap on PYTHONPATH).
    executor = KubernetesExecutor(KubernetesSettings(namespace=namespace, kernel_id=f"e2e4-{namespace}"))
    try:
        updates = Updates()
        run = uuidlib.uuid4().hex
        code = "from polynb.tracking import log_outputs; log_outputs(answer=42)"
        op = CompiledOp(
            uuid=run,
            name="bundle",
            kind="job",
            container=ContainerSpec(name="main", image="python:3.11-slim", command=("python3", "-c", code)),
            placement=executor.place(run, "job", 0),
            termination=TerminationSpec(timeout=600),
        )
        executor.submit(op, updates)
        final = updates.final()[-1]
        assert (final.status, final.outputs) == ("succeeded", {"answer": 42}), final.message
    finally:
        executor.shutdown()
