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


@dataclass(slots=True)
class DagCounts:
    """The DAG status rule depends on these counts only; the engine keeps them per DAG, updated in O(1)
    when an op's status moves, instead of walking every op on every event."""

    jobs: int = 0
    jobs_final: int = 0
    services: int = 0
    services_final: int = 0
    failed: int = 0
    stopped: int = 0

    def add(self, op: OpOutcome, sign: int = 1) -> None:
        """Count ``op`` in (``sign=-1``: out, e.g. its previous status before it moved)."""
        final = sign if op.status is not None and is_final(op.status) else 0
        if op.is_service:
            self.services += sign
            self.services_final += final
        else:
            self.jobs += sign
            self.jobs_final += final
        self.failed += sign if op.status == Status.FAILED else 0
        self.stopped += sign if op.status == Status.STOPPED else 0

    @classmethod
    def of(cls, ops: Iterable[OpOutcome]) -> DagCounts:
        counts = cls()
        for op in ops:
            counts.add(op)
        return counts


def is_decided(ops: Iterable[OpOutcome]) -> bool:
    """True when the DAG's status can be set: every non-service op is final (all ops if only services)."""
    return counts_decided(DagCounts.of(ops))


def dag_status(ops: Iterable[OpOutcome]) -> Status | None:
    """The DAG's final status, or ``None`` while it is not decided yet."""
    return counts_status(DagCounts.of(ops))


def all_final(ops: Iterable[OpOutcome]) -> bool:
    """True when every op, services included, is final (``wait(..., include_services=True)``)."""
    counts = DagCounts.of(ops)
    return counts.jobs_final + counts.services_final == counts.jobs + counts.services


def counts_decided(counts: DagCounts) -> bool:
    """``is_decided`` over counts (the rule itself)."""
    if counts.jobs:
        return counts.jobs_final == counts.jobs
    return counts.services_final == counts.services


def counts_status(counts: DagCounts) -> Status | None:
    """``dag_status`` over counts (the rule itself): failed > stopped > succeeded, once decided."""
    if not counts_decided(counts):
        return None
    if counts.failed:
        return Status.FAILED
    if counts.stopped:
        return Status.STOPPED
    return Status.SUCCEEDED
