"""A top-level run and everything under it (ops, hooks), followed through the store's event log.

The store is the one source of truth for every command: ``polynb run`` follows its own engine's DAG the same
way ``polynb events`` or ``polynb logs -f`` follow one from another process. Polling with the last seq seen
misses nothing (seqs are global and committed one at a time); the caller decides when to poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polynb.cli.common import iso
from polynb.lifecycle import DONE_EVENT, FINAL, PIPELINE_KINDS, is_status_event, status_of_event

if TYPE_CHECKING:
    from polynb.store import EventRecord, RunRecord, Store


_OVER = PIPELINE_KINDS
"""Kinds of an op of a DAG that has runs under it, followed and listed with the DAG's."""


@dataclass(eq=False)
class RunTree:
    """The runs of one top-level run (``root``), as of the last :meth:`poll`."""

    store: Store
    root: str
    last_seq: int = 0
    runs: dict[str, RunRecord] = field(default_factory=dict)
    """uuid -> latest record; insertion order is creation order (the root first)."""
    events: dict[str, list[EventRecord]] = field(default_factory=dict)
    """uuid -> the events of that run, in seq order"""
    is_dag: bool = False

    def __post_init__(self) -> None:
        top = self.store.get_run(self.root)
        self.is_dag = top.kind in PIPELINE_KINDS  # a sweep's trials, a schedule's ticks: as a DAG's ops
        self.runs[top.uuid] = top

    def poll(self) -> list[EventRecord]:
        """Read the events appended since the last poll; refresh the records of the runs they touch."""
        if self.is_dag:
            return self._poll_dag()
        new = self.store.events(run_uuid=self.root, after_seq=self.last_seq)
        for hook in self.store.hooks_of(self.root):
            new += self.store.events(run_uuid=hook.uuid, after_seq=self.last_seq)
        new.sort(key=lambda e: e.seq)
        self._absorb(new)
        if new:
            self.last_seq = new[-1].seq
        return new

    def _poll_dag(self) -> list[EventRecord]:
        """A DAG's log holds its own events and those of its ops and of every hook under it; a nested DAG's
        ops (their pipeline is an op's run) are in that op's log. Every read stops at one bound, so an event
        committed meanwhile is read by the next poll, never skipped."""
        bound = self.store.last_seq()
        new = [e for e in self.store.events(dag_uuid=self.root, after_seq=self.last_seq) if e.seq <= bound]
        self._absorb(new)
        read: set[str] = set()
        while pending := [u for u in self._nested() if u not in read]:
            for uuid in pending:
                read.add(uuid)
                known = {e.seq for e in new}
                more = self.store.events(dag_uuid=uuid, after_seq=self.last_seq)
                more = [e for e in more if e.seq <= bound and e.seq not in known]
                self._absorb(more)
                new += more
        new.sort(key=lambda e: e.seq)
        self.last_seq = max(self.last_seq, bound)
        return new

    def _absorb(self, new: list[EventRecord]) -> None:
        for event in new:
            self.events.setdefault(event.run_uuid, []).append(event)
        touched = dict.fromkeys(e.run_uuid for e in new)
        if len(touched) == 1:
            (uuid,) = touched
            self.runs[uuid] = self.store.get_run(uuid)
        elif touched:
            fresh = self.store.get_runs(touched)
            for uuid in touched:  # in the order of the events: a run first seen here keeps its creation order
                self.runs[uuid] = fresh[uuid] if uuid in fresh else self.store.get_run(uuid)

    def _nested(self) -> list[str]:
        """The ops of this tree that have runs under them: a nested DAG's (a run of kind ``dag`` under another
        run), a schedule's (an op of a DAG with a ``schedule``: its ticks' runs)."""
        return [u for u, r in self.runs.items() if r.kind in _OVER and r.dag_uuid is not None and r.hook_of is None]

    def label(self, run: RunRecord) -> str:
        """A run's name as listed: under an op running a nested DAG or a schedule, prefixed with that op
        (``outer-op/inner-op``, ``op/op-1``)."""
        parent = self.runs.get(run.dag_uuid or "")
        if parent is None or parent.uuid == self.root or parent.kind not in _OVER:
            return run.name
        return f"{self.label(parent)}/{run.name}"

    def nested_ops(self, op: RunRecord) -> list[RunRecord]:
        """The runs under ``op`` (the ops of the nested DAG it runs, its schedule's ticks' runs; none for any
        other op), in creation order."""
        if op.kind not in _OVER:
            return []
        attempt = max(op.attempt, 1) if op.kind == "dag" else None  # a retried nested DAG: its current ops
        return [
            r
            for r in self.runs.values()
            if r.dag_uuid == op.uuid and r.hook_of is None and (attempt is None or r.dag_attempt == attempt)
        ]

    @property
    def top(self) -> RunRecord:
        return self.runs[self.root]

    def ops(self) -> list[RunRecord]:
        """The ops of a DAG (or the single run itself), in creation order; hooks are not ops. A DAG retried
        by its ``maxRetries``: the ops of its current attempt (the events keep every attempt's)."""
        if not self.is_dag:
            return [self.top]
        attempt = self.top.dag_attempt
        return [
            r for r in self.runs.values() if r.dag_uuid == self.root and r.hook_of is None and r.dag_attempt == attempt
        ]

    def hooks(self, of: str | None = None) -> list[RunRecord]:
        return [r for r in self.runs.values() if r.hook_of is not None and (of is None or r.hook_of == of)]

    def live_services(self) -> list[RunRecord]:
        """Service ops not final yet: what keeps running after the DAG's other ops are done."""
        return [r for r in self.ops() if r.kind == "service" and r.status not in FINAL]

    def summary(self) -> dict[str, Any]:
        """The ``polynb run --json`` document."""
        return {
            "uuid": self.root,
            "status": self.top.status.value,
            "attempt": self.top.attempt,
            "ops": [self._op_summary(op) for op in self.ops()],
        }

    def _op_summary(self, op: RunRecord) -> dict[str, Any]:
        nested = self.nested_ops(op)
        return {
            "name": op.name,
            "uuid": op.uuid,
            "status": op.status.value,
            "reason": op.reason,
            "events": [{"kind": e.kind, "seq": e.seq, "at": iso(e.at)} for e in self.events.get(op.uuid, [])],
            "hooks": [
                {
                    "hubRef": hook_ref(h),
                    "uuid": h.uuid,
                    "status": h.status.value,
                    "trigger": h.hook_trigger,
                }
                for h in self.hooks(op.uuid)
            ],
            "url": op.url,
            **({"ops": [self._op_summary(inner) for inner in nested]} if nested else {}),
        }


def hook_ref(run: RunRecord) -> str | None:
    """The ``hubRef`` a hook run was made from (kept by the engine in the run's meta)."""
    hook = run.meta.get("hook", {}).get("hook", {})
    ref = hook.get("hubRef") if isinstance(hook, dict) else None
    return str(ref) if ref is not None else None


def hook_label(hook: RunRecord, main_name: str) -> str:
    """A hook as listed under its main run: its name without the main run's (``webhook-on-failed``)."""
    prefix = f"{main_name}-"
    return hook.name.removeprefix(prefix) if len(hook.name) > len(prefix) else hook.name


def is_status_change(event: EventRecord) -> bool:
    """Status events but the ``run_status_done`` twin every final status has."""
    return is_status_event(event.kind) and event.kind != DONE_EVENT


def short_kind(kind: str) -> str:
    return status_of_event(kind)
