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

Restart: a sweep not final when its engine died is resumed by the next (``recovery`` adopts it and its live
trials, then :meth:`Sweeps.resume`). Its state is the store's: the trials (each created with its params in
the turn's transaction) and the seed in the sweep's ``meta`` (drawn when the matrix gives none, so the
suggestions can be made again). The suggester is rebuilt from the trials in order (``Suggester.resume``), the
counts and early stopping from the final ones; the live ones are told when they end. A sweep whose trials
the rebuilt suggester would not make (a store from an older polynb without the seed) ends ``failed``
(``SweepInterrupted``), its live trials left to end on their own.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import Any

from polynb.compiler.trials import TrialsError
from polynb.lifecycle import Status
from polynb.scheduler.ownership import OWNER_KEY
from polynb.scheduler.plan import DagPlan, OpPlan, make_op_plan
from polynb.scheduler.run_state import RunState
from polynb.scheduler.state import EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.suggesters import PastTrial, Suggester, Suggestion, suggester_for
from polynb.scheduler.sweep_state import SWEEP_KIND, SweepState
from polynb.spec.matrix import (
    Bayes,
    FailureEarlyStopping,
    Hyperband,
    MatrixSpec,
    MetricEarlyStopping,
    RandomSearch,
    Tpe,
)
from polynb.spec.models import Param
from polynb.store import NewRun, RunRecord

REASON_EARLY_STOPPING = "EarlyStopping"
REASON_SWEEP_STOPPED = "SweepStopped"
TRIAL_KEY = "trial"
"""``meta`` key of a trial run: ``{"index": n, "params": {...}}`` (what ``polynb ls`` and the sweep view read)."""
_DRAWING = (RandomSearch, Hyperband, Tpe, Bayes)
"""The kinds whose suggestions are drawn at random (with their ``seed``)."""
SWEEP_OP_KEY = "sweep_op"
"""``meta`` key of a top-level sweep run: its op (with the matrix), what a restarted engine resumes it from."""


def _summary(matrix: MatrixSpec, total: int | None) -> dict[str, Any]:
    """What readers of the store (``polynb ls``, the sweep view) know of a sweep (its run's ``meta``), and the
    seed its suggester draws with (what a restarted engine makes the same suggestions again with)."""
    metric, maximize = _metric_of(matrix)
    concurrency = matrix.concurrency if isinstance(matrix.concurrency, int) else None
    seed = getattr(matrix, "seed", None)
    return {"kind": matrix.kind, "metric": metric, "maximize": maximize, "total": total, "concurrency": concurrency,
            "seed": seed if isinstance(seed, int) else None}  # fmt: skip


def _seeded(matrix: MatrixSpec, seed: int | None = None) -> MatrixSpec:
    """The matrix with a seed (``seed``, or one drawn now) where it draws at random and gives none: the sweep
    stores it, so a restarted engine makes the same suggestions again."""
    if not isinstance(matrix, _DRAWING) or matrix.seed is not None:
        return matrix
    return matrix.model_copy(update={"seed": seed if seed is not None else random.randrange(2**31)})


def _metric(name: str | None, trial: RunRecord) -> float | None:
    """A trial's metric: the output ``name`` of a trial that succeeded, if it is a number."""
    if name is None or trial.status != Status.SUCCEEDED:
        return None
    value = trial.outputs.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


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
        matrix = _seeded(matrix)
        suggester = suggester_for(matrix)
        concurrency = matrix.concurrency if isinstance(matrix.concurrency, int) else None
        record = state.store.create_run(
            NewRun(
                name=op.name,
                kind=SWEEP_KIND,
                inputs=dag_plan.inputs,
                meta={
                    "role": "sweep",
                    "dag": dag_plan.to_meta(),
                    "sweep": _summary(matrix, suggester.total),
                    SWEEP_OP_KEY: op.to_meta(),
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
        state.sweeps[uuid] = self._sweep_state(run, op, matrix, suggester, inputs=dict(dag_plan.inputs),
                                               base_dir=dag_plan.base_dir, root=uuid, dag_uuid=None)  # fmt: skip
        total = f"{suggester.total} trials" if suggester.total is not None else "trials"
        self._statuses.set(run, Status.COMPILED, "Created", f"{matrix.kind} sweep: {total}")
        claim = state.store.claim(uuid, status=Status.RUNNING, expected={Status.COMPILED}, reason="Sweeping",
                                  message=f"at most {concurrency or 'unlimited'} trials at a time")  # fmt: skip
        self._statuses.apply(run, claim)
        state.dirty_sweeps.add(uuid)
        return uuid

    def start_in_dag(self, run: RunState) -> None:
        """An op of a DAG with a ``matrix``, claimed (``running``, holding its DAG's slot): its run is the
        sweep; its trials are compiled as the op would be (the DAG's inputs, its upstream ops), each with its
        params. A matrix polynb cannot run fails the op with the reason."""
        state = self._state
        assert run.plan is not None
        assert run.plan.operation.matrix is not None
        assert run.dag_uuid is not None
        matrix = _seeded(run.plan.operation.matrix)
        dag = state.dags[run.dag_uuid]
        try:
            suggester = suggester_for(matrix)
        except TrialsError as exc:
            self._statuses.finish(run, Status.FAILED, "SweepRefused", str(exc))
            return
        state.store.set_meta(run.uuid, {"sweep": _summary(matrix, suggester.total)})
        state.sweeps[run.uuid] = self._sweep_state(run, run.plan, matrix, suggester, inputs={},
                                                   base_dir=dag.plan.base_dir, root=run.root,
                                                   dag_uuid=dag.uuid)  # fmt: skip
        state.dirty_sweeps.add(run.uuid)

    def resume(self, run: RunState, record: RunRecord, live: list[str]) -> str | None:
        """A sweep adopted by a restarted engine (``recovery``; ``live``: its trials not final, adopted by the
        caller, re-attached after this): rebuild its suggester from its trials, its counts and early stopping
        from the final ones, and go on. None, or why it cannot be resumed (nothing is changed then)."""
        state = self._state
        meta = record.meta
        if run.role == "sweep":
            if SWEEP_OP_KEY not in meta:
                return "its op is not in the store (a sweep made by an older polynb)"
            op = OpPlan.from_meta(meta[SWEEP_OP_KEY])
            inputs, base_dir = dict(record.inputs), DagPlan.from_meta(meta["dag"]).base_dir
            root, dag_uuid = record.uuid, None
        else:  # an op of a DAG (its DAG is adopted already)
            assert run.plan is not None
            assert run.dag_uuid is not None
            op, inputs, base_dir = run.plan, {}, state.dags[run.dag_uuid].plan.base_dir
            root, dag_uuid = run.root, run.dag_uuid
        matrix = op.operation.matrix
        if matrix is None:
            return "its op has no matrix"
        if isinstance(matrix, _DRAWING) and matrix.seed is None:
            seed = (meta.get("sweep") or {}).get("seed")
            if not isinstance(seed, int):
                return "the seed its suggestions were drawn with is not in the store (a sweep made by an older polynb)"
            matrix = _seeded(matrix, seed)
        try:
            suggester = suggester_for(matrix)
        except TrialsError as exc:
            return str(exc)
        trials = sorted((r for r in state.store.children(record.uuid) if r.hook_of is None and TRIAL_KEY in r.meta),
                        key=lambda r: int(r.meta[TRIAL_KEY]["index"]))  # fmt: skip
        sweep = self._sweep_state(run, op, matrix, suggester, inputs=inputs, base_dir=base_dir, root=root,
                                  dag_uuid=dag_uuid)  # fmt: skip
        past = [PastTrial(dict(r.meta[TRIAL_KEY]["params"]), r.is_final, _metric(sweep.metric, r)) for r in trials]
        keys = suggester.resume(past)
        if keys is None:
            return "the suggestions its matrix gives now are not its trials' params"
        alive = set(live)
        sweep.created = len(trials)
        sweep.active = {r.uuid: key for r, key in zip(trials, keys, strict=True) if r.uuid in alive}
        final = [r for r in trials if r.is_final]
        sweep.failed = sum(r.status == Status.FAILED for r in final)
        sweep.stopped = sum(r.status == Status.STOPPED for r in final)
        if record.status == Status.STOPPING:
            sweep.stop_requested = sweep.closed = sweep.stop_active = True
        else:
            for r in final:
                reason = self._early_stop(sweep, r.name, r.status, _metric(sweep.metric, r))
                if reason is not None:
                    sweep.closed, sweep.early_stop_message, sweep.stop_active = True, reason, True
                    break
        state.sweeps[record.uuid] = sweep
        if dag_uuid is not None:
            self._statuses.hold_slot(run, True)  # as when it started: the sweep holds its DAG's slot
        elif record.status == Status.COMPILED:
            self._statuses.apply(run, state.store.claim(record.uuid, status=Status.RUNNING,
                                                        expected={Status.COMPILED}, reason="Sweeping"))  # fmt: skip
        state.dirty_sweeps.add(record.uuid)
        return None

    def _sweep_state(
        self, run: RunState, op: OpPlan, matrix: MatrixSpec, suggester: Suggester, *, inputs: dict[str, Any],
        base_dir: str | None, root: str, dag_uuid: str | None,
    ) -> SweepState:  # fmt: skip
        trial_op = op.operation.model_copy(update={"matrix": None, "hooks": None})
        plan = make_op_plan(name=op.name, operation=trial_op, component=op.component, upstream=op.upstream)
        metric, maximize = _metric_of(matrix)
        return SweepState(
            uuid=run.uuid,
            name=op.name,
            plan=plan,
            inputs=inputs,
            hooks=tuple(op.operation.hooks or ()),
            suggester=suggester,
            concurrency=matrix.concurrency if isinstance(matrix.concurrency, int) else None,
            metric=metric,
            maximize=maximize,
            early_stopping=tuple(p for p in matrix.early_stopping or () if not isinstance(p, str)),
            base_dir=base_dir,
            root=root,
            dag_uuid=dag_uuid,
        )

    # -- deciding -----------------------------------------------------------------------------------

    def evaluate(self, sweep: SweepState) -> None:
        """Take in the trials that ended, start new ones while slots are free, end the sweep when done."""
        state = self._state
        run = state.runs[sweep.uuid]
        if run.is_final:
            return
        for uuid in [u for u in sweep.active if state.runs[u].is_final]:
            self._trial_ended(sweep, state.runs[uuid], sweep.active.pop(uuid))
        if sweep.stop_active:  # a stop found by a restarted engine, once the live trials are adopted
            sweep.stop_active = False
            self._stop_active(sweep)
        if not sweep.closed and not state.closing:
            self._fill(sweep)
        if sweep.active:
            return
        if sweep.closed or sweep.suggester.finished:  # closing (a shutdown that keeps runs): left for the next
            self._finish(sweep, run)

    def _trial_ended(self, sweep: SweepState, trial: RunState, key: Any) -> None:
        metric = None
        if trial.status == Status.SUCCEEDED and sweep.metric is not None:
            metric = _metric(sweep.metric, self._state.store.get_run(trial.uuid))
        sweep.failed += trial.status == Status.FAILED
        sweep.stopped += trial.status == Status.STOPPED
        if not sweep.closed:
            sweep.suggester.tell(key, metric)
            reason = self._early_stop(sweep, trial.name, trial.status, metric)
            if reason is not None:
                self._close(sweep, reason)

    def _early_stop(self, sweep: SweepState, name: str, status: Status, metric: float | None) -> str | None:
        for policy in sweep.early_stopping:
            if isinstance(policy, MetricEarlyStopping) and not isinstance(policy.value, str):
                if metric is None or status != Status.SUCCEEDED:
                    continue
                maximize = policy.optimization == "maximize"
                if (metric >= policy.value) if maximize else (metric <= policy.value):
                    return (f"trial {name} reached {policy.metric} = {metric:g} "
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

    def _stop_active(self, sweep: SweepState) -> None:
        """Stop again the live trials a restarted engine adopted that are not stopping yet (a stop or early
        stopping decided before the restart, or found from the final trials)."""
        runs = self._state.runs
        for uuid in [u for u in sweep.active if not runs[u].is_final and runs[u].status != Status.STOPPING]:
            if sweep.stop_requested:
                self._stop_run(runs[uuid], REASON_SWEEP_STOPPED, f"sweep {sweep.name} stopped")
            else:
                self._stop_run(runs[uuid], REASON_EARLY_STOPPING, f"sweep {sweep.name}: {sweep.early_stop_message}")

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
        # The suggestion is the trial's params (over the op's): a top-level trial also gets them as its bound
        # inputs (``dag``), as a -P; a DAG's trial is compiled from its op's params.
        params = {**(sweep.plan.operation.params or {}), **{k: Param(value=v) for k, v in suggestion.params.items()}}
        plan = dataclasses.replace(sweep.plan, operation=sweep.plan.operation.model_copy(update={"params": params}))
        record = state.store.create_run(
            NewRun(
                name=f"{sweep.name}-{index}",
                kind=sweep.plan.kind,
                dag_uuid=sweep.uuid,
                inputs=suggestion.params,
                meta={
                    "role": "trial",
                    "plan": plan.to_meta(),
                    "dag": dag.to_meta(),
                    TRIAL_KEY: {"index": index, "params": suggestion.params},
                },
                executor=state.runs[sweep.uuid].executor,
            )
        )
        trial = self._statuses.adopt(record, role="trial", plan=plan, root=sweep.root or sweep.uuid)
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

    def stop_run(self, run: RunState, reason: str, message: str) -> bool:
        """``Stopping.stop_run`` of a sweep (a DAG stopped, the engine shutting down): stop it; False for
        any other run."""
        sweep = self._state.sweeps.get(run.uuid)
        if sweep is None:
            return False
        self.stop(sweep, reason, message)
        return True

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
