"""``RunHandle``: what ``polynb.run(...)`` and the magics give back: wait, status, ops, events, stop, widget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polynb.lifecycle import PIPELINE_KINDS
from polynb.notebook.model import RunSnapshot, RunTracker, SweepView
from polynb.notebook.render import run_text
from polynb.scheduler.events import EngineEvent
from polynb.store import RunRecord, Store

if TYPE_CHECKING:
    from polynb.notebook.session import KernelSession
    from polynb.notebook.widget import RunWidget


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One op (or hook run) of a run, as stored now."""

    uuid: str
    name: str
    kind: str
    status: str
    outputs: dict[str, Any]
    url: str | None
    hook_of: str | None


class RunHandle:
    """A top-level run of this kernel's session (any run of the store can be looked at)."""

    def __init__(self, session: KernelSession, uuid: str, *, submitted_here: bool = False) -> None:
        self._session = session
        self.uuid = uuid
        self.name = session.store.get_run(uuid).name
        self._widget: RunWidget | None = None
        # The cell that submitted the run: its result reads "submitted" even when the run has already ended
        # by the time it is drawn (a saved notebook's output must not depend on how fast the ops were).
        self._submitted_in = _current_cell() if submitted_here else None

    @property
    def status(self) -> str:
        return self._session.store.get_run(self.uuid).status.value

    @property
    def ops(self) -> dict[str, OpInfo]:
        """The ops and hook runs by name (a single-op run: itself and its hooks); a DAG retried by its
        ``maxRetries``: those of its current attempt."""
        store = self._session.store
        root = store.get_run(self.uuid)
        if root.kind in PIPELINE_KINDS:  # a sweep's trials, a schedule's ticks are its ops
            records = store.children(self.uuid, include_hooks=True)
        else:
            records = [root, *store.hooks_of(self.uuid)]
        records.sort(key=lambda r: r.created_at)
        names = {r.uuid: r.name for r in records}
        return {
            r.name: OpInfo(r.uuid, r.name, r.kind, r.status.value, dict(r.outputs), r.url, names.get(r.hook_of or ""))
            for r in records
        }

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Outputs by op name (ops that logged none are left out)."""
        return {name: op.outputs for name, op in self.ops.items() if op.outputs}

    @property
    def events(self) -> list[EngineEvent]:
        """The run's event log in sequence order: a DAG's with its ops' and hooks', and those of the runs under
        its ops (a nested DAG's ops, a sweep's trials, a schedule's ticks' runs), as ``polynb events`` lists it."""
        store = self._session.store
        root = store.get_run(self.uuid)
        if root.kind in PIPELINE_KINDS:
            records = store.events(dag_uuid=self.uuid)
            for _label, run in tree_runs(store, self.uuid):
                if run.kind in PIPELINE_KINDS and run.hook_of is None:
                    records += store.events(dag_uuid=run.uuid)
            records = sorted({e.seq: e for e in records}.values(), key=lambda e: e.seq)
        else:
            records = store.events(run_uuid=self.uuid)
            for hook in store.hooks_of(self.uuid):
                records += store.events(run_uuid=hook.uuid)
            records.sort(key=lambda e: e.seq)
        return [EngineEvent.from_record(r) for r in records]

    @property
    def sweep(self) -> SweepView | None:
        """The trials ranked by the metric (``sweep.best`` is the best trial) of a matrix run, or of a DAG's only
        op that sweeps; None otherwise (a DAG with several: ``sweeps[op]``)."""
        snapshot = self._snapshot()
        if snapshot.sweep is not None:
            return snapshot.sweep
        if len(snapshot.op_sweeps) == 1 and _sweeping_ops(self._session, self.uuid) == 1:
            return snapshot.op_sweeps[0].sweep
        return None

    @property
    def sweeps(self) -> dict[str, SweepView]:
        """The sweeps of a DAG's ops (their ``matrix``) by op name (``outer/inner`` in a nested DAG), as
        ``ops`` and ``outputs`` are: those that have started, each with its trials ranked by the metric."""
        return {op.name: op.sweep for op in self._snapshot().op_sweeps}

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial of ``sweep`` (a matrix run, or a DAG's only sweeping op): its name, params and metric
        (``{"trial": ..., "params": {...}, "loss": 0.01}``), or None."""
        return _best(self.sweep)

    def best_of(self, op: str) -> dict[str, Any] | None:
        """The best trial of the DAG's op ``op`` that sweeps, as ``best`` gives it (None while no trial has a
        metric). KeyError if no op of that name sweeps (or it has not started yet)."""
        sweeps = self.sweeps
        if op not in sweeps:
            have = ", ".join(sorted(sweeps)) or "none yet"
            raise KeyError(f"{self.name} has no op {op!r} that sweeps and has started (those that have: {have})")
        return _best(sweeps[op])

    def _snapshot(self) -> RunSnapshot:
        tracker = RunTracker(self._session.store, self.uuid)
        tracker.refresh()
        return tracker.snapshot(time.time())

    def wait(self, timeout: float | None = None, *, include_services: bool = False) -> str:
        """Block until the run is done and return its status (services too with ``include_services``)."""
        return self._session.wait(self.uuid, timeout=timeout, include_services=include_services)

    def stop(self) -> None:
        """Stop the run (its ops; services included) and wait until it is final."""
        self._session.stop(self.uuid)
        self._session.wait(self.uuid, include_services=True)

    def approve(self, op: str | None = None, *, actor: str | None = None) -> None:
        """Approve an op waiting for it (``isApproved: false``): ``op`` by name, or every waiting op (a single
        run: itself). It starts once everything else it waits for allows."""
        self._session.approve(self._target(op), actor=actor)

    def invalidate(self, op: str | None = None, *, actor: str | None = None) -> None:
        """Invalidate an op waiting for its approval (every waiting op without ``op``): it is ``skipped``."""
        self._session.approve(self._target(op), approved=False, actor=actor)

    def _target(self, op: str | None) -> str:
        if op is None:
            return self.uuid
        ops = self.ops
        if op not in ops:
            raise KeyError(f"{self.name} has no op {op!r} (it has: {', '.join(sorted(ops))})")
        return ops[op].uuid

    def stop_services(self) -> None:
        """Stop the services (TensorBoard) still running, and wait for them."""
        for op in self.ops.values():
            if op.kind == "service" and op.status not in ("succeeded", "failed", "stopped", "skipped",
                                                           "upstream_failed"):  # fmt: skip
                self._session.stop(op.uuid)
        self._session.wait(self.uuid, include_services=True)

    @property
    def widget(self) -> RunWidget:
        if self._widget is None or not self._widget.alive:
            self._widget = self._session.widget(self.uuid)
        return self._widget

    def text(self) -> str:
        """The stable text summary (what nbval compares)."""
        return run_text(self._snapshot())

    def _shown_text(self) -> str:
        in_its_cell = self._submitted_in is not None and _current_cell() == self._submitted_in
        return run_text(self._snapshot(), as_submitted=in_its_cell)

    def __repr__(self) -> str:
        return self._shown_text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self._shown_text()
        return bundle


def _current_cell() -> int | None:
    """The number of the cell IPython is running (None outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else int(shell.execution_count)


def tree_runs(store: Store, uuid: str, prefix: str = "") -> list[tuple[str, RunRecord]]:
    """The runs under a DAG (or a sweep, a schedule) with their labels, in creation order: its ops and hooks, each
    op followed by the runs under it when it runs a nested DAG, sweeps or ticks (``outer-op/inner-op``,
    ``op/op-1``), as ``polynb logs`` and ``polynb events`` name them."""
    found: list[tuple[str, RunRecord]] = []
    for run in store.children(uuid, include_hooks=True):
        found.append((prefix + run.name, run))
        if run.kind in PIPELINE_KINDS and run.hook_of is None:
            found += tree_runs(store, run.uuid, f"{prefix}{run.name}/")
    return found


def _best(sweep: SweepView | None) -> dict[str, Any] | None:
    best = sweep.best if sweep is not None else None
    if sweep is None or best is None:
        return None
    return {"trial": best.name, "params": dict(best.params), str(sweep.metric): best.metric}


def _sweeping_ops(session: KernelSession, uuid: str) -> int:
    """How many ops of DAG ``uuid`` (nested DAGs' included) have a ``matrix``, started or not: ``sweep``
    falls back to a DAG's sweeping op only when it is the only one."""
    store = session.store
    count, below = 0, [uuid]
    while below:
        for record in store.children(below.pop()):
            plan = record.meta.get("plan")
            operation = plan.get("operation") if isinstance(plan, dict) else None
            if isinstance(operation, dict) and operation.get("matrix") is not None:
                count += 1
            elif record.kind == "dag":
                below.append(record.uuid)
    return count
