"""Fixtures and helpers for the Kubernetes tests: an emulator per test, executors that are always shut
down, compiled ops with scripted pods, and an update recorder that waits on a queue (never sleeps).

Test modules bind the fixtures by assignment (``emulator = testkit.emulator``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep, OpKind, TerminationSpec
from polynb.executors.kubernetes.executor import KubernetesExecutor
from polynb.executors.kubernetes.settings import KubernetesSettings

from . import Emulator, script_annotation

TIMEOUT = 30.0
"""Only a guard against a hang: every wait returns as soon as the awaited thing happens."""

MakeExecutor = Callable[..., KubernetesExecutor]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: Path) -> Path:
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@contextlib.contextmanager
def executing(folder: Path, **kwargs: Any) -> Iterator[Emulator]:
    """An emulator whose kubelet executes the pods, its files under ``folder`` and its kubeconfig written
    to ``folder / "kubeconfig"`` (``emu.kubeconfig``). Back-offs are short, so recoveries happen within a
    test; pass ``pull_backoff=...`` to change them."""
    kwargs.setdefault("pull_backoff", 0.3)
    kwargs.setdefault("crash_backoff", 0.3)
    with Emulator(kubelet="exec", root=folder / "cluster", **kwargs) as emu:
        emu.write_kubeconfig(folder / "kubeconfig")
        yield emu
    assert emu.kubelet is not None
    errors = emu.kubelet.errors + emu.control.errors
    assert not errors, f"the emulator failed (a bug in it, not in the test): {errors}"


@pytest.fixture
def executing_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """``executing(tmp_path)``: bind it in a test module with ``executing_emulator = testkit.executing_emulator``."""
    with executing(tmp_path) as emu:
        yield emu


@pytest.fixture
def executing_kubeconfig(executing_emulator: Emulator) -> Path:
    """The executing emulator's kubeconfig: bind it as ``kubeconfig = testkit.executing_kubeconfig`` and
    ``make_executor``/``executor`` drive executors against pods that really run."""
    assert executing_emulator.kubeconfig is not None
    return executing_emulator.kubeconfig


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    """Run kubectl against the emulator (its own home and cache beside the kubeconfig); fails the test on an
    error. kubectl >= 1.35 lists through a watch with ``sendInitialEvents`` (client-go's WatchListClient), which
    the emulator does not model: it is asked for the classic list-then-watch that polynb's executor uses too."""
    home = kubeconfig.parent / "kubectl-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home), "KUBE_FEATURE_WatchListClient": "false"}
    done = subprocess.run(
        ["kubectl", "--request-timeout=20s", f"--cache-dir={home / 'cache'}", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def eventually(predicate: Callable[[], Any], *, what: str = "condition") -> Any:
    """Poll ``predicate()`` until it is truthy, for what real processes do (the executing kubelet): the
    ``TIMEOUT`` only guards against a hang."""
    import time

    deadline = time.monotonic() + TIMEOUT
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held")
        time.sleep(0.05)


def wait_pod(core: Any, name: str, phase: str | Callable[[Any], bool], *, namespace: str = "default") -> Any:
    """Watch the pod until it is in ``phase`` (or ``phase(pod)`` holds); fails the test if it ends in another
    phase, or is deleted first. ``core`` is a ``kubernetes.client.CoreV1Api``. Returns the V1Pod."""
    from kubernetes import watch

    def done(pod: Any) -> bool:
        return bool(phase(pod)) if callable(phase) else pod.status.phase == phase

    current = core.read_namespaced_pod(name, namespace)
    if done(current):
        return current
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=current.metadata.resource_version,
        timeout_seconds=int(TIMEOUT),
    ):
        pod = event["object"]
        if event["type"] == "DELETED":
            stream.stop()
            raise AssertionError(f"pod {name} was deleted while waiting for {phase}")
        if done(pod):
            stream.stop()
            return pod
        if not callable(phase) and pod.status.phase in ("Succeeded", "Failed"):
            stream.stop()
            raise AssertionError(f"pod {name} ended {pod.status.phase}, not {phase}: {pod.status}")
    raise AssertionError(f"pod {name} never reached {phase}")


def wait_gone(core: Any, name: str, *, namespace: str = "default") -> None:
    """Watch until the pod object is removed."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    try:
        current = core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=current.metadata.resource_version,
        timeout_seconds=int(TIMEOUT),
    ):
        if event["type"] == "DELETED":
            stream.stop()
            return
    raise AssertionError(f"pod {name} was never removed")


@pytest.fixture
def make_executor(kubeconfig: Path) -> Iterator[MakeExecutor]:
    made: list[KubernetesExecutor] = []

    def make(**kwargs: Any) -> KubernetesExecutor:
        kwargs.setdefault("kubeconfig", str(kubeconfig))
        kwargs.setdefault("kernel_id", f"kernel-{len(made) + 1}")
        kwargs.setdefault("backoff", 0.01)
        kwargs.setdefault("shutdown_wait", 10.0)
        kwargs.setdefault("port_forward", False)
        clock = kwargs.pop("clock", None)  # the executor's clock for its timeouts (a ManualClock in tests)
        executor = KubernetesExecutor(KubernetesSettings(**kwargs), **({"clock": clock} if clock else {}))
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.shutdown()


@pytest.fixture
def executor(make_executor: MakeExecutor) -> KubernetesExecutor:
    return make_executor()


class ManualClock:
    """A monotonic clock that only tests move: the executor's timeouts fire when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_uuid() -> str:
    return uuidlib.uuid4().hex


def make_op(
    executor: KubernetesExecutor,
    *,
    name: str = "train",
    kind: OpKind = "job",
    script: dict[str, dict[str, Any]] | None = None,
    pod_script: dict[str, Any] | None = None,
    ports: int = 0,
    image: str = "python:3.11-slim",
    command: tuple[str, ...] = ("python", "train.py"),
    init: tuple[InitStep, ...] = (),
    sidecars: tuple[ContainerSpec, ...] = (),
    timeout: float | None = None,
    ttl: float | None = None,
    environment: dict[str, Any] | None = None,
    uuid: str | None = None,
    dag_uuid: str | None = None,
    **container: Any,
) -> CompiledOp:
    """A compiled op placed by the executor; ``script`` scripts its containers in the emulator."""
    run_uuid = uuid or new_uuid()
    env = dict(environment or {})
    if script is not None or pod_script is not None:
        env.setdefault("annotations", {}).update(script_annotation(script or {}, **(pod_script or {})))
    return CompiledOp(
        uuid=run_uuid,
        name=name,
        kind=kind,
        container=ContainerSpec(name="main", image=image, command=command, **container),
        placement=executor.place(run_uuid, kind, ports),
        init=init,
        sidecars=sidecars,
        termination=TerminationSpec(timeout=timeout, ttl=ttl),
        dag_uuid=dag_uuid,
        environment=env,
    )


def free_port() -> int:
    """A port no process listens on now: a service port for a test whose "pod process" binds the pod's
    address (pods share the host's loopback, so another process on ``0.0.0.0:6006`` would take it)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def outputs_message(**outputs: Any) -> str:
    return json.dumps(outputs)


def wait_for(predicate: Callable[[], Any], emu: Emulator, *, what: str = "condition") -> Any:
    """Settle the emulator until ``predicate()`` is truthy (bounded: the emulator is deterministic, so a
    condition that does not hold after it settles a few times never will)."""
    for _ in range(200):
        emu.settle()
        value = predicate()
        if value:
            return value
        ev = __import__("threading").Event()
        ev.wait(0.01)  # let client threads (watch, workers) catch up; not a timing assumption
    raise AssertionError(f"{what} never held")


class PodServers:
    """HTTP servers standing in for a pod's process at its address; each answers every GET with ``body``
    formatted with the address it serves (``{host}``) and the request's path (``{path}``)."""

    def __init__(self) -> None:
        self._servers: list[ThreadingHTTPServer] = []

    def start(self, ip: str, port: int, body: str = "{host} {path}") -> ThreadingHTTPServer:
        class Reply(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = body.format(host=ip, path=self.path).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((ip, port), Reply)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return server

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


@pytest.fixture
def pod_http() -> Iterator[PodServers]:
    servers = PodServers()
    yield servers
    servers.close()
