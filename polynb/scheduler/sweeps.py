"""Matrix sweeps: a ``matrix`` run (Polyaxon's pipeline kind ``matrix``) whose trials are runs under it.

A sweep is created ``compiled`` then ``running`` (as a DAG run is); its suggester (``suggesters``) is asked
for trials only while fewer than ``concurrency`` of them are not final, so trials are created lazily and the
engine never holds more than ``concurrency`` pending trial runs. Each trial is a run with ``dag_uuid`` =
the sweep (``polynb ls`` lists it under the sweep, ``polynb events`` shows its statuses), its params
(``inputs``) the suggestion substituted into the component's inputs (they win over the op's params and
the component's defaults, as a ``-P`` does).

When a trial is final its metric (``metric.name`` of hyperband, bayes and tpe, or the name of a metric early
stopping policy) is read from the trial's outputs and told to the suggester. Early stopping (Polyaxon's
``earlyStopping``):

* ``metric_early_stopping``: once a trial's metric reaches ``value`` (``>=`` when maximizing, ``<=`` when
  minimizing) no trial starts any more and the trials still running are stopped (reason ``EarlyStopping``).
  Its ``policy`` (median, truncation, diff) judges runs *while* they report metrics: polynb reads a trial's
  metric once it is final, so the compiler warns that the policy is not applied.
* ``failure_early_stopping``: once ``percent`` of the sweep's trials (of all it will run, where that is known,
  else of those created) failed, the same.

Status (Polyaxon's ``runs_check_pipeline``, which decides every pipeline kind, matrix included): once every
trial is final the sweep is ``failed`` if any trial failed, else ``stopped`` if every trial was stopped,
else ``succeeded``; a sweep stopped by the user ends ``stopped``. Hooks: the operation's hooks (where the
``matrix`` is written) run for the sweep, after its final status; the component's hooks run for each trial.

A sweep is not resumed by a restarted engine (``recovery`` ends it ``failed``, reason ``SweepInterrupted``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from polynb.lifecycle import Status
from polynb.scheduler.ownership import OWNER_KEY
from polynb.scheduler.plan import DagPlan, OpPlan, make_op_plan
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.suggesters import Suggestion, suggester_for
from polynb.scheduler.sweep_state import SweepState
from polynb.spec.matrix import FailureEarlyStopping, MatrixSpec, MetricEarlyStopping
from polynb.store import NewRun

REASON_EARLY_STOPPING = "EarlyStopping"
REASON_SWEEP_STOPPED = "SweepStopped"
SWEEP_KIND = "matrix"
TRIAL_KEY = "trial"
"""``meta`` key of a trial run: ``{"index": n, "params": {...}}`` (what ``polynb ls`` and the sweep view read)."""


def _metric_of(matrix: MatrixSpec) -> tuple[str | None, bool]:
    metric = getattr(matrix, "metric", None)
    if metric is not None:
        return metric.name, metric.optimization == "maximize"
    for policy in matrix.early_stopping or ():
        if isinstance(policy, MetricEarlyStopping):
            return policy.metric, policy.optimization == "maximize"
    return None, False


class Sweeps:
    """Creates sweeps and their trials, and decides on them when trials end (engine thread only)."""

    def __init__(self, state: EngineState, statuses: Statuses, submit: Any, stop_run: Any) -> None:
        self._state = state
        self._statuses = statuses
        self._submit = submit
        """``Submission.prepare_and_submit``: compile a trial and hand it to its executor."""
        self._stop_run = stop_run
        """``Stopping.stop_run``."""

    def create(
        self, op: OpPlan, matrix: MatrixSpec, dag_plan: DagPlan, hook_components: Mapping[str, Any], executor: str
    ) -> str:
        """Create the sweep run and its first trials; raise ``TrialsError`` (before any run exists) for a
        matrix polynb cannot run."""
        state = self._state
        suggester = suggester_for(matrix)
        trial_op = op.operation.model_copy(update={"matrix": None, "hooks": None})
        plan = make_op_plan(name=op.name, operation=trial_op, component=op.component, upstream=())
        metric, maximize = _metric_of(matrix)
        early = tuple(p for p in matrix.early_stopping or () if not isinstance(p, str))
        concurrency = matrix.concurrency if isinstance(matrix.concurrency, int) else None
        record = state.store.create_run(
            NewRun(
                name=op.name,
                kind=SWEEP_KIND,
                inputs=dag_plan.inputs,
                meta={
                    "role": "sweep",
                    "dag": dag_plan.to_meta(),
                    "sweep": {
                        "kind": matrix.kind,
                        "metric": metric,
                        "maximize": maximize,
                        "total": suggester.total,
                        "concurrency": concurrency,
                    },
                    OWNER_KEY: state.owner,
                    "hook_components": dict(hook_components),
                },
                executor=executor,
            )
        )
        uuid = record.uuid
        run = self._statuses.adopt(record, role="sweep", root=uuid)
        state.outbox.publish(state.store.events(run_uuid=uuid))
        state.dirty_roots.add(uuid)
        sweep = SweepState(
            uuid=uuid,
            name=op.name,
            plan=plan,
            inputs=dict(dag_plan.inputs),
            hooks=tuple(op.operation.hooks or ()),
            suggester=suggester,
            concurrency=concurrency,
            metric=metric,
            maximize=maximize,
            early_stopping=early,
            base_dir=dag_plan.base_dir,
        )
        state.sweeps[uuid] = sweep
        total = f"{suggester.total} trials" if suggester.total is not None else "trials"
        self._statuses.set(run, Status.COMPILED, "Created", f"{matrix.kind} sweep: {total}")
        claim = state.store.claim(uuid, status=Status.RUNNING, expected={Status.COMPILED}, reason="Sweeping",
                                  message=f"at most {concurrency or 'unlimited'} trials at a time")  # fmt: skip
        self._statuses.apply(run, claim)
        state.dirty_sweeps.add(uuid)
        return uuid

    # -- deciding -----------------------------------------------------------------------------------

    def evaluate(self, sweep: SweepState) -> None:
        """Take in the trials that ended, start new ones while slots are free, end the sweep when done."""
        state = self._state
        run = state.runs[sweep.uuid]
        if run.is_final:
            return
        for uuid in [u for u in sweep.active if state.runs[u].is_final]:
            self._trial_ended(sweep, state.runs[uuid], sweep.active.pop(uuid))
        if not sweep.closed and not state.closing:
            self._fill(sweep)
        if sweep.active:
            return
        if sweep.closed or state.closing or sweep.suggester.finished:
            self._finish(sweep, run)

    def _trial_ended(self, sweep: SweepState, trial: RunState, key: Any) -> None:
        metric: float | None = None
        if trial.status == Status.SUCCEEDED and sweep.metric is not None:
            value = self._state.store.get_run(trial.uuid).outputs.get(sweep.metric)
            if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
                metric = float(value)
        sweep.failed += trial.status == Status.FAILED
        sweep.stopped += trial.status == Status.STOPPED
        if not sweep.closed:
            sweep.suggester.tell(key, metric)
            reason = self._early_stop(sweep, trial, metric)
            if reason is not None:
                self._close(sweep, reason)

    def _early_stop(self, sweep: SweepState, trial: RunState, metric: float | None) -> str | None:
        for policy in sweep.early_stopping:
            if isinstance(policy, MetricEarlyStopping) and not isinstance(policy.value, str):
                if metric is None or trial.status != Status.SUCCEEDED:
                    continue
                maximize = policy.optimization == "maximize"
                if (metric >= policy.value) if maximize else (metric <= policy.value):
                    return (f"trial {trial.name} reached {policy.metric} = {metric:g} "
                            f"({'>=' if maximize else '<='} {policy.value:g})")  # fmt: skip
            elif isinstance(policy, FailureEarlyStopping) and not isinstance(policy.percent, str):
                of = sweep.suggester.total or sweep.created
                if of and sweep.failed * 100.0 / of >= policy.percent:
                    return f"{sweep.failed} of {of} trials failed (>= {policy.percent:g}%)"
        return None

    def _close(self, sweep: SweepState, message: str) -> None:
        sweep.closed = True
        sweep.early_stop_message = message
        for uuid in list(sweep.active):
            self._stop_run(self._state.runs[uuid], REASON_EARLY_STOPPING, f"sweep {sweep.name}: {message}")

    def _fill(self, sweep: SweepState) -> None:
        limit = (sweep.concurrency or 2**31) - len(sweep.active)
        while limit > 0:
            suggestions = sweep.suggester.ask(limit)
            if not suggestions:
                return
            for suggestion in suggestions:
                self._start_trial(sweep, suggestion)
            limit -= len(suggestions)

    def _start_trial(self, sweep: SweepState, suggestion: Suggestion) -> None:
        state = self._state
        sweep.created += 1
        index = sweep.created
        inputs = {**sweep.inputs, **suggestion.params}
        dag = DagPlan(name=sweep.name, inputs=inputs, base_dir=sweep.base_dir)
        record = state.store.create_run(
            NewRun(
                name=f"{sweep.name}-{index}",
                kind=sweep.plan.kind,
                dag_uuid=sweep.uuid,
                inputs=suggestion.params,
                meta={
                    "role": "trial",
                    "plan": sweep.plan.to_meta(),
                    "dag": dag.to_meta(),
                    TRIAL_KEY: {"index": index, "params": suggestion.params},
                },
                executor=state.runs[sweep.uuid].executor,
            )
        )
        trial = self._statuses.adopt(record, role="trial", plan=sweep.plan, root=sweep.uuid)
        state.outbox.publish(state.store.events(run_uuid=record.uuid))
        sweep.active[record.uuid] = suggestion.key
        self._submit(trial)
        if trial.is_final:  # its params failed to resolve: decided at once
            state.dirty_sweeps.add(sweep.uuid)

    def _finish(self, sweep: SweepState, run: RunState) -> None:
        done = sweep.created
        if sweep.stop_requested:
            status, reason, message = Status.STOPPED, REASON_SWEEP_STOPPED, "stop requested"
        elif sweep.failed:
            status, reason = Status.FAILED, "TrialsFailed"
            message = f"{sweep.failed} of {done} trials failed"
        elif done and sweep.stopped == done:
            status, reason, message = Status.STOPPED, "TrialsStopped", f"all {done} trials were stopped"
        else:
            status, reason = Status.SUCCEEDED, "TrialsDone"
            message = f"{done} trials done"
        if sweep.early_stop_message is not None and not sweep.stop_requested:
            reason, message = REASON_EARLY_STOPPING, f"{sweep.early_stop_message}; {message}"
        self._statuses.finish(run, status, reason, message)

    # -- stopping -----------------------------------------------------------------------------------

    def stop(self, sweep: SweepState, reason: str, message: str) -> None:
        """Stop the sweep: no trial starts any more, the trials running are stopped, then it ends ``stopped``."""
        run = self._state.runs[sweep.uuid]
        if run.is_final:
            return
        sweep.stop_requested = True
        sweep.closed = True
        self._statuses.set(run, Status.STOPPING, reason, message)
        for uuid in list(sweep.active):
            self._stop_run(self._state.runs[uuid], REASON_SWEEP_STOPPED, f"sweep {sweep.name} stopped")
        self._state.dirty_sweeps.add(sweep.uuid)
