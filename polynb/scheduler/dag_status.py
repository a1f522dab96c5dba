"""The final status of a DAG run, from the statuses of its ops.

Pure decision logic. DESIGN §3: ``failed`` if any op failed, else ``stopped`` if any op was stopped, else
``succeeded``. Our decisions on what DESIGN leaves open (documented in the ``polynb.scheduler`` package docstring):

* The DAG is decided once every **non-service** op is final. Services (TensorBoard) still running are
  left running until they are stopped or time out (``polynb run --stop-services`` stops them); hooks never
  count. A DAG made only of services waits for all of them.
* Services already final at that moment count like any op (a TensorBoard that crashed fails the DAG).
* ``upstream_failed`` and ``skipped`` ops do not fail the DAG by themselves: the op that failed does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from polynb.lifecycle import Status, is_final


@dataclass(frozen=True, slots=True)
class OpOutcome:
    """One op of a DAG as seen by the DAG status rule."""

    status: Status | None
    is_service: bool = False


def is_decided(ops: Iterable[OpOutcome]) -> bool:
    """True when the DAG's status can be set: every non-service op is final (all ops if only services)."""
    ops = list(ops)
    jobs = [op for op in ops if not op.is_service] or ops
    return all(op.status is not None and is_final(op.status) for op in jobs)


def dag_status(ops: Iterable[OpOutcome]) -> Status | None:
    """The DAG's final status, or ``None`` while it is not decided yet."""
    ops = list(ops)
    if not is_decided(ops):
        return None
    final = {op.status for op in ops if op.status is not None and is_final(op.status)}
    if Status.FAILED in final:
        return Status.FAILED
    if Status.STOPPED in final:
        return Status.STOPPED
    return Status.SUCCEEDED


def all_final(ops: Iterable[OpOutcome]) -> bool:
    """True when every op, services included, is final (``wait(..., include_services=True)``)."""
    return all(op.status is not None and is_final(op.status) for op in ops)
