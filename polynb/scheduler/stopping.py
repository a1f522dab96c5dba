"""Stopping runs: one op, a whole DAG, or everything at shutdown.

A submitted op goes ``stopping`` → ``stopped`` once its executor confirms (a stop asked while its
submission is in flight is sent as soon as the executor has it); an op never handed to an executor goes
``stopping`` → ``stopped`` at once. Stopping a DAG stops every op; its pending ops are never started.
"""

from __future__ import annotations

from collections.abc import Callable

from polynb.lifecycle import REASON_STOPPED, Status
from polynb.scheduler.ownership import OWNER_KEY
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import DagState, EngineState
from polynb.scheduler.statuses import Statuses

REASON_DAG_STOPPED = "DagStopped"
REASON_SHUTDOWN = "EngineShutdown"


class Stopping:
    """Stops the runs of one engine (engine thread only)."""

    def __init__(self, state: EngineState, statuses: Statuses) -> None:
        self._state = state
        self._statuses = statuses
        self.stop_sweep: Callable[[RunState, str, str], bool] = lambda run, reason, message: False
        """Stops ``run`` if it is a sweep (its trials, then itself) and says so (set by the engine)."""

    def stop(self, uuid: str) -> None:
        """``Engine.stop``: a DAG run stops every op, any other run stops itself (with ``state.stop_grace``)."""
        state = self._state
        run = state.runs.get(uuid)
        if run is None:
            record = state.store.get_run(uuid)  # RunNotFoundError for a wrong uuid
            if not record.is_final:
                raise LookupError(f"run {uuid} is not managed by this engine (is another engine running it?)")
            return
        dag = state.dags.get(uuid)
        if dag is not None:
            self.stop_dag(dag, REASON_STOPPED, "stop requested")
        else:
            self.stop_run(run, REASON_STOPPED, "stop requested")

    def stop_dag(
        self,
        dag: DagState,
        reason: str,
        message: str,
        *,
        op_reason: str = REASON_DAG_STOPPED,
        op_message: str | None = None,
    ) -> None:
        """The DAG goes ``stopping`` (``reason``, ``message``), then every op is stopped."""
        state = self._state
        dag.stopping = True
        dag.ready.clear()
        dag_run = state.runs[dag.uuid]
        self._statuses.set(dag_run, Status.STOPPING, reason, message)
        # Every pending op is stopped, whatever it waits for (an upstream op, an upstream's event, a
        # connection's event): the DAG then ends `stopped` (DESIGN §3, "Termination, retries, concurrency, stop").
        for uuid in dag.ops.values():
            self.stop_run(state.runs[uuid], op_reason, op_message or f"DAG {dag_run.name} stopped")
        state.dirty_dags.add(dag.uuid)

    def stop_run(self, run: RunState, reason: str, message: str) -> None:
        if run.is_final:
            return
        if run.stop_grace is None:
            run.stop_grace = self._state.stop_grace
        if self.stop_sweep(run, reason, message):
            return
        nested = self._state.dags.get(run.uuid) if run.role == "op" else None
        if nested is not None:  # an op running a nested DAG: its ops are stopped, then it ends stopped
            if not nested.stopping:
                run.stop_requested = True
                self.stop_dag(nested, reason, message)
            return
        run.stop_requested = True
        self._state.timers.cancel(("retry", run.uuid))
        if run.submitted:
            self._statuses.set(run, Status.STOPPING, reason, message)
            if not run.in_flight:  # else sent once the executor has it (``Submission.on_submitted``)
                self._state.stop_later(run)
        else:
            # Never handed to an executor (pending, compiled, retrying): nothing to wait for.
            self._statuses.set(run, Status.STOPPING, reason, message)
            self._statuses.finish(run, Status.STOPPED, reason, message)

    def stop_everything(self) -> set[str]:
        """``shutdown(stop_running=True)``: stop every run this engine started; nothing new starts from now on.
        Returns the top-level runs it adopted that are not final: left running, to be released (``release``)."""
        state = self._state
        state.shutting_down = True
        state.closing = True
        kept = {root for root in state.adopted if root in state.runs and not state.runs[root].is_final}
        for dag in list(state.dags.values()):
            if state.runs[dag.uuid].root in kept:
                continue
            if not state.runs[dag.uuid].is_final or any(not state.runs[u].is_final for u in dag.ops.values()):
                dag.stopping = True
                dag.ready.clear()
        message = "the engine is shutting down"
        for run in list(state.runs.values()):
            if run.root in kept:
                continue
            of_dag = state.dags.get(run.uuid)
            if of_dag is not None and run.role != "op":
                # A DAG ends once its ops have (``DagEvaluator``), as after a user's stop: not `stopped` before them.
                if not run.is_final:
                    self.stop_dag(of_dag, REASON_SHUTDOWN, message, op_reason=REASON_SHUTDOWN, op_message=message)
                continue
            self.stop_run(run, REASON_SHUTDOWN, message)
        return kept

    def release(self) -> None:
        """Clean shutdown without stopping runs: give their ownership up so the next engine adopts them."""
        state = self._state
        for root in {run.root for run in state.runs.values() if not run.is_final}:
            state.store.set_meta(root, {OWNER_KEY: None})
