"""Fixtures and helpers for the Kubernetes tests: an emulator per test, executors that are always shut
down, compiled ops with scripted pods, and an update recorder that waits on a queue (never sleeps).

Test modules bind the fixtures by assignment (``emulator = testkit.emulator``)."""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Callable, Iterator
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
        container=ContainerSpec(name="main", image=image, command=("python", "train.py"), **container),
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
