"""Deciding a DAG after its ops moved: start, skip or fail the pending ops whose upstreams moved, fill the
free concurrency slots, then set the DAG's own status once it is decided.

The rules themselves are pure and live elsewhere (``readiness``, ``triggers``, ``dag_status``); the counts
they read are kept up to date by ``tallies``, so a pass costs O(ops whose upstreams moved), not O(ops).
"""

from __future__ import annotations

from collections.abc import Callable

from polynb.lifecycle import CONNECTION_REF_PREFIX, REASON_STOPPED, Status
from polynb.scheduler.connection_waits import received
from polynb.scheduler.dag_status import counts_status
from polynb.scheduler.early_stopping import REASON_EARLY_STOPPING, failures_reached, metric_reached
from polynb.scheduler.outbox import ACTING_SECONDS
from polynb.scheduler.readiness import Action, UpstreamState, Verdict, evaluate, evaluate_tallied
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import DagState, EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.stopping import REASON_SHUTDOWN, Stopping
from polynb.scheduler.submission import Submission
from polynb.scheduler.tallies import DagIndex
from polynb.scheduler.termination import REASON_TIMEOUT, Termination
from polynb.store import RunNotFoundError

REASON_OPS_DONE = "OpsDone"


class DagEvaluator:
    """Re-evaluates the DAGs of one engine (engine thread only)."""

    def __init__(
        self,
        state: EngineState,
        statuses: Statuses,
        submission: Submission,
        termination: Termination,
        stopping: Stopping,
    ) -> None:
        self._state = state
        self._statuses = statuses
        self._submission = submission
        self._termination = termination
        self._stopping = stopping
        self.nested_succeeded: Callable[[DagState], None] = lambda dag: None
        """Gives an op running a nested DAG its outputs before it ends ``succeeded`` (set by the engine)."""

    def evaluate(self, dag: DagState) -> None:
        """Decide the ops whose upstreams moved since the last pass, dispatch, then the DAG's own status."""
        state = self._state
        dag_run = state.runs[dag.uuid]
        index = dag.index
        assert index is not None
        if dag.plan.early_stopping and not (dag_run.is_final or dag.stopping or dag.between_attempts):
            # Before anything starts: a slot freed by the op that met a policy goes to no one.
            self._early_stop(dag)
        if dag.stopping or state.shutting_down or dag.between_attempts:
            index.dirty.clear()  # pending ops are never started now
        else:
            for run in index.take_dirty():
                if run.status != Status.CREATED or run.plan is None:
                    continue
                verdict = self._verdict(dag, index, run)
                if verdict.action == Action.START:
                    self._submission.prepare(run, dag)
                    # Ops started so far go to their executor while the rest compile (1,000 at once in a fan-out).
                    state.outbox.act_if_waited(ACTING_SECONDS)
                elif verdict.action == Action.SKIP:
                    self._statuses.finish(run, Status.SKIPPED, verdict.reason, verdict.message)
                elif verdict.action == Action.UPSTREAM_FAILED:
                    self._statuses.finish(run, Status.UPSTREAM_FAILED, verdict.reason, verdict.message)
            self._submission.dispatch(dag)
        if dag_run.is_final:
            return
        if dag.between_attempts:
            self._between_attempts(dag)
            return
        status = counts_status(index.counts)
        if status is None:
            return
        summary = self._summary(dag)
        if dag.early_stop_message is not None:
            status = Status.FAILED if index.counts.failed else Status.SUCCEEDED
            self._statuses.finish(dag_run, status, REASON_EARLY_STOPPING, f"{dag.early_stop_message}; {summary}")
        elif dag.timed_out:
            timeout = dag.plan.timeout or 0.0
            message = f"stopped after termination.timeout of {timeout:g} s ({summary})"
            self._statuses.finish(dag_run, Status.FAILED, REASON_TIMEOUT, message)
        elif status == Status.FAILED and self._termination.dag_retries_left(dag):
            self._termination.retry_dag(dag, summary)
        else:
            reason = (REASON_SHUTDOWN if state.shutting_down else REASON_STOPPED) if dag.stopping else REASON_OPS_DONE
            if status == Status.SUCCEEDED and dag_run.role == "op":
                self.nested_succeeded(dag)
            self._statuses.finish(dag_run, status, reason, summary)

    def _early_stop(self, dag: DagState) -> None:
        """Read the ops that became final since the last pass against the DAG's ``earlyStopping``; stop the
        DAG (its unfinished ops, reason ``EarlyStopping``) when a policy is met."""
        state = self._state
        policies = dag.plan.early_stopping
        message: str | None = None
        failed = 0
        for name, uuid in dag.ops.items():
            run = state.runs[uuid]
            failed += run.status == Status.FAILED
            if not run.is_final or uuid in dag.early_seen:
                continue
            dag.early_seen.add(uuid)
            if message is None and run.status == Status.SUCCEEDED:
                message = metric_reached(policies, name, state.store.get_run(uuid).outputs)
        message = message or failures_reached(policies, failed, len(dag.ops))
        if message is None:
            return
        dag.early_stop_message = message
        name = state.runs[dag.uuid].name
        self._stopping.stop_dag(dag, REASON_EARLY_STOPPING, message, op_reason=REASON_EARLY_STOPPING,
                                op_message=f"DAG {name} stopped early: {message}")  # fmt: skip

    def _between_attempts(self, dag: DagState) -> None:
        """A ``retrying`` DAG: stopped meanwhile, it ends ``stopped``; else its next attempt starts once it
        is due and every op of the failed one (services being stopped too) is final."""
        state = self._state
        dag_run = state.runs[dag.uuid]
        if dag.stopping or state.shutting_down:
            message = f"stopped between attempts ({self._summary(dag)})"
            self._statuses.finish(dag_run, Status.STOPPED, REASON_STOPPED, message)
            return
        assert dag.index is not None
        counts = dag.index.counts
        if dag.retry_due and counts.jobs_final + counts.services_final == counts.jobs + counts.services:
            self._submission.next_attempt(dag)

    def _summary(self, dag: DagState) -> str:
        """How many ops of the DAG's current attempt are in each status: ``2 failed, 3 succeeded``."""
        counts: dict[str, int] = {}
        for uuid in dag.ops.values():
            value = self._state.runs[uuid].status.value
            counts[value] = counts.get(value, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    def _verdict(self, dag: DagState, index: DagIndex, run: RunState) -> Verdict:
        assert run.plan is not None
        req = run.plan.requirements

        def state_of(name: str) -> UpstreamState | None:
            return self._upstream_state(dag, name)

        if run in index.volatile:
            # An upstream outside the DAG: no count follows it, so read every upstream afresh.
            return evaluate(req, {n: s for n in req.upstream if (s := state_of(n)) is not None})
        return evaluate_tallied(req, index.tallies[run.uuid], state_of)

    def _upstream_state(self, dag: DagState, name: str) -> UpstreamState | None:
        state = self._state
        uuid = dag.ops.get(name)
        if uuid is not None:
            run = state.runs[uuid]
            return UpstreamState(run.status, frozenset(run.emitted))
        if name == "dag":
            # ``ref: dag``: custom events emitted to the running DAG (``polynb.emit``) in its current attempt.
            own = state.runs[dag.uuid]
            return UpstreamState(own.status, frozenset(dag.own_emitted(own)))
        if name.startswith(CONNECTION_REF_PREFIX):
            # A connection's events, recorded on the DAG run while an op waits for them (``connection_waits``).
            got = received(state.store, dag).get(name.removeprefix(CONNECTION_REF_PREFIX), {})
            return UpstreamState(None, frozenset(got))
        if name.startswith("runs."):
            # An event ref to an earlier run: read what the store recorded of it.
            try:
                record = state.store.get_run(name.removeprefix("runs."))
            except RunNotFoundError:
                return None
            kinds = frozenset(e.kind for e in state.store.events(run_uuid=record.uuid))
            return UpstreamState(record.status, kinds)
        return None
