"""Helpers for the local executor tests: ops, an update recorder, process checks."""

from __future__ import annotations

import sys
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from pathlib import Path

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep, OpKind
from polynb.executors.local.executor import LocalExecutor

TIMEOUT = 60.0
"""Only a guard against a hang: every wait below returns as soon as the awaited thing happens."""
PY = sys.executable

MakeExecutor = Callable[..., LocalExecutor]


def new_uuid() -> str:
    return uuidlib.uuid4().hex


def container(*argv: str, name: str = "main", env: dict[str, str] | None = None, **kw: str) -> ContainerSpec:
    return ContainerSpec(name=name, command=tuple(argv), env=tuple((env or {}).items()), **kw)  # type: ignore[arg-type]


def make_op(
    executor: LocalExecutor,
    main: ContainerSpec,
    *,
    kind: OpKind = "job",
    ports: int = 0,
    init: Sequence[InitStep] = (),
    sidecars: Sequence[ContainerSpec] = (),
    name: str = "op",
    uuid: str | None = None,
    labels: dict[str, str] | None = None,
    port_args: bool = False,
) -> CompiledOp:
    """A compiled op placed by the executor; ``port_args`` appends the first port to the main argv."""
    run_uuid = uuid or new_uuid()
    placement = executor.place(run_uuid, kind, ports)
    if port_args:
        main = ContainerSpec(name=main.name, command=main.command, args=(str(placement.ports[0]),), env=main.env)
    return CompiledOp(
        uuid=run_uuid,
        name=name,
        kind=kind,
        container=main,
        placement=placement,
        init=tuple(init),
        sidecars=tuple(sidecars),
        labels=labels or {},
    )


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """For facts no event announces (a file another process writes): re-check until true."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def read_pid(path: Path) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip() != "", f"{path}")
    return int(path.read_text())


def wait_dead(pid: int) -> None:
    wait_until(lambda: not alive(pid), f"pid {pid} to end")
