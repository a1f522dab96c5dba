"""Incremental bookkeeping of the engine: what each event changes, updated in O(upstream edges of the run
that moved), so no event walks every op of a DAG (or every run of the engine). Only the engine thread
touches it.

* :class:`DagIndex` — per DAG: who is downstream of whom, a :class:`~polynb.scheduler.readiness.Tally`
  per op, the DAG's :class:`~polynb.scheduler.dag_status.DagCounts`, the ops to re-evaluate, and how
  many ops hold a concurrency slot.
* :class:`RootTally` — per top-level run: the services and hooks not final yet (what ``Engine.wait`` needs).

The decisions stay in ``readiness``, ``triggers`` and ``dag_status``; these classes only feed them counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from polynb.lifecycle import Status, is_final, is_status_event
from polynb.scheduler.dag_status import DagCounts, OpOutcome
from polynb.scheduler.readiness import Tally, UpstreamState
from polynb.scheduler.run_state import RunState


class DagIndex:
    """The ops of one DAG, indexed for incremental evaluation (built once, when the DAG is adopted)."""

    def __init__(self, ops: Mapping[str, RunState]) -> None:
        """``ops``: op name -> run, in the DAG's order (the order ready ops are evaluated in)."""
        self._order = {run.uuid: i for i, run in enumerate(ops.values())}
        self._runs = {run.uuid: run for run in ops.values()}
        self.downstream: dict[str, list[RunState]] = {}
        """op name -> the ops that list it among their upstreams"""
        self.tallies: dict[str, Tally] = {}
        self.volatile: list[RunState] = []
        """Ops with an upstream outside the DAG (an event on ``runs.<uuid>``): nothing here tells when it
        moves, so they are evaluated on every pass, as before."""
        self.counts = DagCounts()
        self.active = 0
        """ops claimed and not final (``RunState.submitted``): they hold a concurrency slot"""
        self.dirty: set[str] = set(self._order)
        """ops to (re-)evaluate: all at first, then the downstream ops of every run that moved"""
        for run in ops.values():
            assert run.plan is not None
            req = run.plan.requirements
            states = {n: UpstreamState(ops[n].status) for n in req.upstream if n in ops}
            self.tallies[run.uuid] = Tally.of(req, states)
            for name in req.upstream:
                if name in ops:
                    self.downstream.setdefault(name, []).append(run)
            if any(name not in ops for name in req.upstream):
                self.volatile.append(run)
            self.counts.add(OpOutcome(run.status, run.is_service))
            self.active += run.submitted

    def moved(self, run: RunState, old: Status) -> None:
        """Op ``run`` went from ``old`` to ``run.status``: update the counts of its DAG and downstream."""
        self.counts.add(OpOutcome(old, run.is_service), -1)
        self.counts.add(OpOutcome(run.status, run.is_service))
        for down in self.downstream.get(run.name, ()):
            assert down.plan is not None
            self.tallies[down.uuid].moved(down.plan.requirements, run.name, old, run.status)

    def touch(self, run: RunState) -> None:
        """``run`` moved or emitted events: its pending downstream ops need a new verdict."""
        for down in self.downstream.get(run.name, ()):
            if down.status == Status.CREATED:
                self.dirty.add(down.uuid)

    def take_dirty(self) -> list[RunState]:
        """The ops to evaluate now, in DAG order (volatile ones included), and forget them."""
        uuids = self.dirty | {run.uuid for run in self.volatile}
        self.dirty = set()
        return [self._runs[u] for u in sorted(uuids, key=self._order.__getitem__)]


@dataclass
class RootTally:
    """Per top-level run: how many services and hook runs it has, and how many are final."""

    services: int = 0
    services_final: int = 0
    hooks: int = 0
    hooks_final: int = 0

    def add(self, run: RunState, status: Status | None, sign: int = 1) -> None:
        """Count ``run`` in ``status`` (``sign=-1``: take its previous status out)."""
        final = sign if status is not None and is_final(status) else 0
        if run.role == "hook":
            self.hooks += sign
            self.hooks_final += final
        elif run.role in ("op", "single") and run.is_service:
            self.services += sign
            self.services_final += final

    @property
    def services_done(self) -> bool:
        return self.services_final == self.services

    @property
    def hooks_done(self) -> bool:
        return self.hooks_final == self.hooks


def awaits_events(index: DagIndex, name: str) -> bool:
    """Does a pending op of the DAG of ``index`` wait for a non-status kind of its op ``name``?"""
    for down in index.downstream.get(name, ()):
        if down.status != Status.CREATED or down.plan is None:
            continue
        for wait in down.plan.requirements.events:
            if wait.ref == name and any(not is_status_event(k) for k in wait.kinds):
                return True
    return False
