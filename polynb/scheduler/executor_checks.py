"""What an executor is asked about a pipeline before any of its runs exists, so that a pipeline it cannot
run as configured is refused whole (nothing half-submitted), by the engine and by ``polynb run`` alike.

Executors do not see pipelines (they run compiled ops): the scheduler tells them what matters, today which
ops read another run's artifacts (:mod:`polynb.compiler.artifact_reads`). An executor that has nothing to
refuse has no ``check_submission``.
"""

from __future__ import annotations

from collections.abc import Iterable

from polynb.compiler.artifact_reads import artifact_reads
from polynb.compiler.pipeline import Pipeline
from polynb.executors.base import Executor
from polynb.lifecycle import CONNECTION_EVENT_KINDS, is_status_event
from polynb.spec.models import Component, Dag, EventTrigger

READS_EVENT_FILES = frozenset({"local"})
"""Executors whose ops' events files (``polynb.tracking.log_artifact`` & co.) the engine can read: the run
folder is on this machine. An executor that brings the events back itself (``set_event_sink``: kubernetes,
from the pods' log streams) is as good; any other would skip an op awaiting such an event for an event that
did happen: refused instead."""


_NOT_FROM_OPS = frozenset({"run_approved_actor", "run_invalidated_actor"}) | CONNECTION_EVENT_KINDS


def op_event_waits(pipeline: Pipeline) -> list[str]:
    """``op: kind`` for every event trigger of ``pipeline`` on a kind an op emits from inside (not a status,
    not a custom event sent to the DAG, not an approval, not a connection)."""
    found: list[str] = []
    for op in pipeline.ops.values():
        _waits(op.name, op.events, found)
        if isinstance(op.component.run, Dag):  # a nested DAG's ops too (their components are inlined)
            _nested_waits(op.name, op.component.run, found)
    return found


def _nested_waits(prefix: str, dag: Dag, found: list[str]) -> None:
    for inner in dag.operations:
        name = f"{prefix}/{inner.name}"
        _waits(name, inner.events or (), found)
        if inner.component is not None and isinstance(inner.component.run, Dag):
            _nested_waits(name, inner.component.run, found)


def _waits(name: str, triggers: Iterable[EventTrigger], found: list[str]) -> None:
    for trigger in triggers:
        if trigger.connection is not None or trigger.ref == "dag":
            continue
        for kind in trigger.kinds:
            value = kind.value
            if is_status_event(value) or value in _NOT_FROM_OPS:
                continue
            found.append(f"{name}: {value} of {trigger.ref}")


LOCAL_ONLY_PROGRAMS = {
    "polynb.hub.jupyterlab": (
        "the hub's `jupyterlab` runs on the local executor only: polynb has not run it on a cluster (its test "
        "cluster has no image with JupyterLab) and its pod would need polynb's program and a route from the "
        "notebook to its port"
    ),
}
"""Programs of built-in hub components that only the local executor runs, with the reason."""


def local_only_ops(pipeline: Pipeline) -> list[tuple[str, str]]:
    """``(op, reason)`` for the ops of ``pipeline`` (nested DAGs' too) that run a local-only hub program."""
    found: list[tuple[str, str]] = []

    def visit(name: str, component: Component | None) -> None:
        run = component.run if component is not None else None
        if isinstance(run, Dag):
            for inner in run.operations:
                visit(f"{name}/{inner.name}", inner.component)
            return
        container = getattr(run, "container", None)
        argv = [str(a) for a in (getattr(container, "command", None) or [])[:3]]
        found.extend((name, reason) for program, reason in LOCAL_ONLY_PROGRAMS.items() if program in argv)

    for op in pipeline.ops.values():
        visit(op.name, op.component)
    return found


def check_submission(executor: Executor, pipeline: Pipeline) -> None:
    """Raise the executor's own error (a ``RuntimeError``) when it refuses ``pipeline``."""
    local_only = local_only_ops(pipeline) if executor.name != "local" else []
    if local_only:
        name, reason = local_only[0]
        raise RuntimeError(f"{pipeline.name}: op {name}: {reason}; run it with the local executor")
    waits = op_event_waits(pipeline)
    if waits and executor.name not in READS_EVENT_FILES and not hasattr(executor, "set_event_sink"):
        raise RuntimeError(
            f"{pipeline.name}: events emitted from inside ops ({'; '.join(waits)}) are read from the local run "
            f"folder; the {executor.name} executor does not bring them back yet: run it on the local executor"
        )
    check = getattr(executor, "check_submission", None)
    if check is None:
        return
    check(pipeline.name, artifact_reads=[str(read) for read in artifact_reads(pipeline)])
