"""``termination``: timeouts and retries.

* **Timeout** counts from the claim (``queued``), so an op stuck in scheduling also times out; the op goes
  ``stopping`` then ``failed`` (reason ``Timeout``) and is not retried. Each attempt has its own timer.
* **Retries.** A failed attempt with retries left becomes ``retrying`` (never ``failed``: final statuses
  are sticky) and gives its concurrency slot back; after ``retry_delay`` (a timer, not a sleep) it is
  claimed and submitted again. A run being stopped, or of a DAG being stopped, is not retried.
"""

from __future__ import annotations

from typing import Any

from polynb.executors.base import ExecutorUpdate
from polynb.lifecycle import Status
from polynb.scheduler.state import EngineState, RunState
from polynb.scheduler.statuses import Statuses

REASON_TIMEOUT = "Timeout"


class Termination:
    """Timeouts and retries of the runs of one engine (engine thread only)."""

    def __init__(self, state: EngineState, statuses: Statuses) -> None:
        self._state = state
        self._statuses = statuses

    # -- timeouts -----------------------------------------------------------------------------------

    def arm_timeout(self, run: RunState, *, elapsed: float = 0.0) -> None:
        """Start the timer of this attempt's ``termination.timeout``, ``elapsed`` seconds already spent."""
        timeout = run.compiled.termination.timeout if run.compiled is not None else None
        if timeout:
            self._state.timers.schedule(("timeout", run.uuid), timeout - elapsed, (run.attempt, timeout))

    def on_timeout(self, run: RunState, payload: Any) -> None:
        """The timer of ``arm_timeout`` fired: stop the run if that attempt is still going."""
        attempt, timeout = payload
        if run.is_final or not run.submitted or attempt != run.attempt:
            return
        run.timed_out = True
        self._statuses.set(run, Status.STOPPING, REASON_TIMEOUT, f"termination.timeout of {timeout:g} s reached")
        self._state.executor(run).stop(run.uuid)

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
