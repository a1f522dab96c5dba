"""Every status change the engine makes: the store write, the in-memory view, the counts, the listeners.

``set`` moves a run; ``finish`` moves it to a final status and creates the hook runs that status selects;
``apply`` takes a store :class:`~polynb.store.Transition` into the engine's view (also one made elsewhere,
e.g. a claim); ``adopt`` starts managing a run the store holds. What the engine must decide after a change
(the DAG to re-evaluate, the waiters to wake, the timers to cancel) is marked here and done by the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from polynb.lifecycle import Status, event_kind
from polynb.scheduler.hooks import HookFactory
from polynb.scheduler.plan import HookPlan, OpPlan
from polynb.scheduler.run_state import RunRole, RunState
from polynb.scheduler.state import EngineState
from polynb.scheduler.tallies import RootTally
from polynb.store import Move, RunRecord, Transition


class Statuses:
    """Status changes of the runs of one engine (engine thread only)."""

    def __init__(self, state: EngineState, hooks: HookFactory) -> None:
        self._state = state
        self._hooks = hooks
        self.start_hook: Callable[[RunState], None] = lambda run: None
        """Submits a hook run just created (set by the engine: submission sits above this module)."""

    def adopt(
        self,
        record: RunRecord,
        *,
        role: RunRole,
        root: str,
        plan: OpPlan | None = None,
        hook: HookPlan | None = None,
        emitted: Iterable[str] = (),
    ) -> RunState:
        """Manage the run ``record`` from now on (just created, or found by a restarted engine)."""
        state = self._state
        run = RunState(
            uuid=record.uuid,
            name=record.name,
            role=role,
            status=record.status,
            executor=record.executor or state.default_executor,
            dag_uuid=record.dag_uuid,
            hook_of=record.hook_of,
            root=root,
            emitted=set(emitted) or {event_kind(record.status)},
            attempt=record.attempt,
            plan=plan,
            hook=hook,
        )
        state.runs[run.uuid] = run
        state.roots.setdefault(root, RootTally()).add(run, run.status)
        return run

    def apply(self, run: RunState, transition: Transition | Move) -> bool:
        """Take a store transition of ``run`` into the engine's view; publish its events. True if applied."""
        old = run.status
        run.status = transition.status
        run.attempt = transition.attempt
        if run.status != old:
            self._moved(run, old)
        if not transition.applied:
            if run.status != old:
                self._changed(run)  # someone else moved it (e.g. a stop from the CLI): decide on it too
            return False
        run.emitted.update(e.kind for e in transition.events)
        self._state.outbox.publish(transition.events)
        self._changed(run)
        return True

    def set(
        self,
        run: RunState,
        status: Status,
        reason: str,
        message: str = "",
        at: datetime | None = None,
        *,
        spec: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record ``status``; ``at`` is when the executor saw it (None: now). ``spec`` and ``inputs`` (a compiled
        op's) are stored with it, in the same statement, or alone if the run is final already."""
        store = self._state.store
        if run.is_final:
            if spec is not None:
                store.set_spec(run.uuid, spec, inputs=inputs)
            return False
        transition = store.move(
            run.uuid, status, known=run.status, reason=reason, message=message or None, at=at, spec=spec, inputs=inputs
        )
        return self.apply(run, transition)

    def finish(self, run: RunState, status: Status, reason: str, message: str = "", at: datetime | None = None) -> None:
        """Move ``run`` to a final status and start the hooks that status selects.

        The final status and the hook runs are written in one store transaction, the final status first.
        First, so the log reads in causal order (the main run's ``succeeded``/``done``, then its hooks'
        ``created``) for every reader: listeners, ``polynb events``, a second process polling by seq.
        One transaction, so a crash between the two writes cannot leave a final run whose hooks were never
        created: a restarted engine finds both (the hooks ``created``, and submits them) or neither (the
        run not final, and finishes it again). The hooks are submitted once the transaction is committed.
        """
        if run.is_final:
            return
        state = self._state
        selected = self._hooks.select(run, status) if run.hookable and not state.shutting_down else []
        with state.store.atomic() if selected else nullcontext():  # a move alone is whole already
            transition = state.store.move(
                run.uuid, status, known=run.status, reason=reason, message=message or None, at=at
            )
            written = self._hooks.write(selected) if transition.applied else []
        self.apply(run, transition)
        created: list[RunState] = []
        for hook in written:
            hook_run = self.adopt(hook.record, role="hook", root=run.root, hook=hook.plan)
            state.outbox.publish(hook.created)
            state.dirty_roots.add(run.root)
            if hook.failed is not None:
                self.apply(hook_run, hook.failed)  # its conditions could not be evaluated: a failed hook run
            else:
                created.append(hook_run)
        for hook_run in created:
            self.start_hook(hook_run)

    def hold_slot(self, run: RunState, submitted: bool) -> None:
        """Set ``run.submitted`` (it holds a concurrency slot while true) and the DAG's count of them."""
        if run.submitted == submitted:
            return
        run.submitted = submitted
        index = self._state.index_of(run)
        if index is not None:
            index.active += 1 if submitted else -1

    def _moved(self, run: RunState, old: Status) -> None:
        """Keep the counts in step with ``run.status`` (it just moved from ``old``)."""
        root = self._state.roots[run.root]
        root.add(run, old, -1)
        root.add(run, run.status)
        index = self._state.index_of(run)
        if index is not None:
            index.moved(run, old)

    def _changed(self, run: RunState) -> None:
        state = self._state
        state.dirty_roots.add(run.root)
        if run.is_final:
            state.timers.cancel(("timeout", run.uuid))
            state.timers.cancel(("retry", run.uuid))
            if run.submitted:
                self.hold_slot(run, False)
                ttl = run.compiled.termination.ttl if run.compiled is not None else None  # rendered
                if ttl is not None:
                    state.timers.schedule(("ttl", run.uuid), ttl, run.uuid)
            if run.placed:  # a service that ends unsubmitted: what its placement reserved (ports) is free again
                run.placed = False
                executor, uuid = state.executor(run), run.uuid
                state.outbox.post(lambda: executor.cleanup(uuid), f"release of the placement of run {uuid}")
        if run.role == "trial" and run.is_final and run.dag_uuid is not None:
            state.dirty_sweeps.add(run.dag_uuid)
        if run.role == "tick" and run.is_final and run.dag_uuid is not None:
            state.dirty_schedules.add(run.dag_uuid)
        if run.dag_uuid is not None and run.role == "op":
            state.dirty_dags.add(run.dag_uuid)
            index = state.index_of(run)
            if index is not None:
                index.touch(run)
