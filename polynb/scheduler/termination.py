"""``termination``: timeouts and retries.

* **Timeout** counts from the claim (``queued``), so an op stuck in scheduling also times out; the op goes
  ``stopping`` then ``failed`` (reason ``Timeout``) and is not retried. Each attempt has its own timer.
* **DAG timeout** (a DAG's own ``termination.timeout``) counts from the DAG's ``running``: the DAG is
  stopped (every op, pending ones never start) and ends ``failed``, reason ``Timeout``, whatever its ops
  ended as. A DAG already decided (only services left running) no longer times out.
* **Retries.** A failed attempt with retries left becomes ``retrying`` (never ``failed``: final statuses
  are sticky) and gives its concurrency slot back; after ``retry_delay`` (a timer, not a sleep) it is
  claimed and submitted again. A run being stopped, or of a DAG being stopped, is not retried.
* **DAG retries** (a DAG's own ``termination.maxRetries``). A DAG whose ops decide it ``failed`` with retries
  left becomes ``retrying`` instead; its services still running are stopped; after ``retry_delay``, once
  every op of the failed attempt is final, it goes ``running`` again (``attempt`` one more) with all its ops
  anew (``Submission.next_attempt``). Its hooks run once, after its final status. A DAG stopped or timed
  out is not retried; one stopped between attempts ends ``stopped``. Its timeout counts per attempt.
"""

from __future__ import annotations

from typing import Any

from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import DagState, EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.stopping import REASON_DAG_STOPPED, Stopping

REASON_TIMEOUT = "Timeout"
REASON_ATTEMPT_FAILED = "AttemptFailed"
"""The reason of a DAG's ``retrying``: this attempt's ops decided it ``failed``; ``maxRetries`` runs it again."""
REASON_DAG_RETRYING = "DagRetrying"
"""The reason of the ``stopping`` of a service still running when its DAG's attempt failed."""


class Termination:
    """Timeouts and retries of the runs of one engine (engine thread only)."""

    def __init__(self, state: EngineState, statuses: Statuses, stopping: Stopping) -> None:
        self._state = state
        self._statuses = statuses
        self._stopping = stopping

    # -- timeouts -----------------------------------------------------------------------------------

    def arm_timeout(self, run: RunState, *, elapsed: float = 0.0) -> None:
        """Start the timer of this attempt's ``termination.timeout``, ``elapsed`` seconds already spent."""
        timeout = run.compiled.termination.timeout if run.compiled is not None else None
        if timeout:
            self._state.timers.schedule(("timeout", run.uuid), timeout - elapsed, (run.attempt, timeout))

    def arm_dag_timeout(self, dag: DagState, *, elapsed: float = 0.0) -> None:
        """Start the timer of the DAG's own ``termination.timeout``, ``elapsed`` seconds already spent."""
        timeout = dag.plan.timeout
        if timeout:
            self._state.timers.schedule(("timeout", dag.uuid), timeout - elapsed, (0, timeout))

    def on_timeout(self, run: RunState, payload: Any) -> None:
        """A timer of ``arm_timeout`` or ``arm_dag_timeout`` fired: stop what is still going."""
        attempt, timeout = payload
        if run.uuid in self._state.dags:  # a DAG run, or an op running a nested DAG
            self._dag_timed_out(run, timeout)
            return
        if run.is_final or not run.submitted or attempt != run.attempt:
            return
        run.timed_out = True
        self._statuses.set(run, Status.STOPPING, REASON_TIMEOUT, f"termination.timeout of {timeout:g} s reached")
        self._state.stop_later(run)

    def _dag_timed_out(self, run: RunState, timeout: float) -> None:
        dag = self._state.dags.get(run.uuid)
        if dag is None or run.is_final or dag.stopping:
            return  # decided, or already being stopped (a stop asked by the user stays a stop)
        dag.timed_out = True
        self._stopping.stop_dag(
            dag,
            REASON_TIMEOUT,
            f"termination.timeout of {timeout:g} s reached",
            op_reason=REASON_DAG_STOPPED,
            op_message=f"DAG {run.name} reached its termination.timeout of {timeout:g} s",
        )

    def timeout_message(self, run: RunState) -> str:
        timeout = run.compiled.termination.timeout if run.compiled else None
        return f"stopped after termination.timeout of {timeout:g} s" if timeout else "timed out"

    # -- retries ------------------------------------------------------------------------------------

    def retries_left(self, run: RunState) -> bool:
        state = self._state
        if run.stop_requested or state.shutting_down or run.compiled is None:
            return False
        dag = state.dags.get(run.dag_uuid or "")
        if dag is not None and dag.stopping:
            return False
        return run.attempt <= run.compiled.termination.max_retries

    def retry(self, run: RunState, update: ExecutorUpdate) -> None:
        """The attempt failed and retries are left: ``retrying``, then the next attempt after the delay."""
        assert run.compiled is not None
        state = self._state
        total = run.compiled.termination.max_retries + 1
        message = f"attempt {run.attempt} of {total} failed ({update.reason}: {update.message})".strip()
        state.store.set_handle(run.uuid, None)  # the next claim must not find the old attempt's handle
        self._statuses.set(run, Status.RETRYING, update.reason, message)
        self._statuses.hold_slot(run, False)
        state.dirty_dags.add(run.dag_uuid or "")
        state.timers.schedule(("retry", run.uuid), state.retry_delay, run.uuid)

    def dag_retries_left(self, dag: DagState) -> bool:
        """A DAG decided ``failed``: does its ``maxRetries`` run it again? Not once stopped or timed out."""
        if dag.stopping or dag.timed_out or self._state.shutting_down:
            return False
        return max(self._state.runs[dag.uuid].attempt, 1) <= dag.plan.max_retries

    def retry_dag(self, dag: DagState, summary: str) -> None:
        """This attempt of the DAG failed and retries are left: ``retrying``, its services stopped, and the
        next attempt due after the delay (it starts once every op of this one is final)."""
        state = self._state
        run = state.runs[dag.uuid]
        message = f"attempt {max(run.attempt, 1)} of {dag.plan.max_retries + 1} failed ({summary})"
        state.timers.cancel(("timeout", dag.uuid))  # each attempt has its own
        dag.between_attempts = True
        dag.ready.clear()
        self._statuses.set(run, Status.RETRYING, REASON_ATTEMPT_FAILED, message)
        for uuid in dag.ops.values():
            self._stopping.stop_run(
                state.runs[uuid], REASON_DAG_RETRYING, f"DAG {run.name} failed; its next attempt starts anew"
            )
        state.timers.schedule(("retry", dag.uuid), state.retry_delay, dag.uuid)
