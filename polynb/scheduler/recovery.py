"""What a restarted engine does with each unfinished run it adopts: :func:`classify` decides (pure logic),
:class:`Adopter` does it (re-attach, resume, never submit twice).

The invariant is **never submit an op twice**. The store's claim (``compiled``/``retrying`` → ``queued``)
happens before ``executor.submit`` (made by a submitter thread) and the handle record is written when
the engine thread hears back from it. So after a crash:

* a run with a handle record was submitted: re-attach to it (the executor replays what it missed);
* a run claimed (``queued`` or later) *without* a handle record may or may not have been started between
  the claim and the crash: the executor is asked to re-attach from what the run left behind (the local
  executor finds its shim in the run's folder); with no trace it is marked ``failed`` (reason
  ``SubmissionInterrupted``) and never resubmitted blindly — a stray duplicate process is worse than a
  clear failure the user can retry;
* a run not claimed yet is pending: it is scheduled as usual (a ``compiled`` one is compiled again, so
  it gets fresh ports); a ``retrying`` one is claimed and submitted again (its next attempt).

A sweep (a ``matrix`` run, or an op of a DAG sweeping) is resumed: its live trials are adopted like single
runs and ``Sweeps.resume`` rebuilds its suggester from its trials. One it cannot rebuild ends ``failed``
(``SweepInterrupted``), its live trials taken over all the same. A schedule likewise (``Schedules.resume``). The
hook runs under a sweep or a schedule (the operation's, its trials' or ticks') are adopted with it, as a DAG's are,
also once it has ended: an ended sweep or schedule is not resumed, what is left under it is.

A DAG retried by its ``maxRetries`` is adopted with the ops of its current attempt (those of earlier ones are
final). One found ``retrying`` starts its next attempt after the retry delay, as in the engine that died; one
stopped while ``retrying`` ends ``stopped``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import cast

from polynb.compiler.types import CompiledOp
from polynb.executors.base import UpdateCallback
from polynb.lifecycle import REASON_STOPPED, Status, is_final
from polynb.scheduler.compiling import Bound, Outcome
from polynb.scheduler.ownership import OWNER_KEY, owner_alive
from polynb.scheduler.plan import DagPlan, HookPlan, OpPlan
from polynb.scheduler.run_state import RunRole, RunState
from polynb.scheduler.schedule_state import SCHEDULE_KEY
from polynb.scheduler.state import DagState, EngineState
from polynb.scheduler.statuses import Statuses
from polynb.scheduler.submission import Submission
from polynb.scheduler.tallies import DagIndex
from polynb.scheduler.termination import REASON_TIMEOUT, Termination
from polynb.store import RunRecord, Store

logger = logging.getLogger(__name__)

REASON_SUBMISSION_INTERRUPTED = "SubmissionInterrupted"
REASON_LOST = "Lost"
REASON_SWEEP_INTERRUPTED = "SweepInterrupted"


class Recovery(StrEnum):
    NOTHING = "nothing"
    PENDING = "pending"
    RESUBMIT = "resubmit"
    REATTACH = "reattach"
    INTERRUPTED = "interrupted"
    STOP_PENDING = "stop_pending"


PENDING = frozenset({Status.CREATED, Status.ON_SCHEDULE, Status.RESUMING, Status.COMPILED})


def classify(status: Status, *, has_handle: bool) -> Recovery:
    """The recovery action for a run found in ``status`` by a restarted engine."""
    if is_final(status):
        return Recovery.NOTHING
    if status in PENDING:
        return Recovery.PENDING
    if status == Status.RETRYING:
        return Recovery.RESUBMIT
    if has_handle:
        return Recovery.REATTACH
    if status == Status.STOPPING:
        return Recovery.STOP_PENDING
    return Recovery.INTERRUPTED


class Adopter:
    """Adopts the unfinished runs of engines that are gone (engine thread only, at ``Engine.start``)."""

    def __init__(
        self,
        state: EngineState,
        statuses: Statuses,
        submission: Submission,
        termination: Termination,
        on_update: UpdateCallback,
    ) -> None:
        self._state = state
        self._statuses = statuses
        self._submission = submission
        self._termination = termination
        self._on_update = on_update
        self.resume_schedule: Callable[[RunState, RunRecord, list[str]], None] = lambda run, record, live: None
        """``Schedules.resume`` (set by the engine: ``schedules`` sits above)."""
        self.resume_sweep: Callable[[RunState, RunRecord, list[str]], str | None] = lambda run, record, live: (
            "no sweeps here"
        )
        """``Sweeps.resume``: None, or why the sweep cannot be resumed (set by the engine)."""

    def recover(self, only: Collection[str] | None = None) -> None:
        """Adopt every unfinished top-level run whose owner engine is gone (or released it)."""
        store = self._state.store
        roots: dict[str, RunRecord] = {}
        for record in store.unfinished_runs():
            root = record
            while root.dag_uuid or root.hook_of:
                root = store.get_run(root.dag_uuid or root.hook_of or "")
            roots.setdefault(root.uuid, root)
        for root in roots.values():
            if (only is not None and root.uuid not in only) or owner_alive(
                root.meta.get(OWNER_KEY), me=self._state.owner
            ):
                continue
            try:
                self._recover_root(root)
            except Exception:
                logger.exception("could not resume run %s (%s)", root.uuid, root.name)

    def _recover_root(self, root: RunRecord) -> None:
        state = self._state
        store = state.store
        store.set_meta(root.uuid, {OWNER_KEY: state.owner})
        state.adopted.add(root.uuid)
        if root.kind == "matrix":
            logger.info("resuming sweep %s (%s)", root.uuid, root.name)
            self._state.dirty_roots.add(root.uuid)
            self._resume_sweep(self._statuses.adopt(root, role="sweep", root=root.uuid), root)
            return
        if root.kind == "schedule":
            self._resume_schedule(root)
            return
        logger.info("resuming %s run %s (%s)", root.kind, root.uuid, root.name)
        members = [root]
        if root.kind == "dag":
            # The ops of its current attempt only (``maxRetries``; earlier attempts' are final), every hook.
            attempt = root.dag_attempt
            below = store.children(root.uuid, include_hooks=True, all_attempts=True)  # in creation order
            members += [r for r in below if r.hook_of is not None or r.dag_attempt == attempt]
            members += _nested_members(store, members)
        members += [h for r in list(members) for h in store.hooks_of(r.uuid) if h.dag_uuid != root.uuid]
        members = list({r.uuid: r for r in members}.values())  # a nested DAG's op's hooks are found twice
        emitted: dict[str, set[str]] = {}
        for event in store.events(
            dag_uuid=root.uuid if root.kind == "dag" else None, run_uuid=None if root.kind == "dag" else root.uuid
        ):
            emitted.setdefault(event.run_uuid, set()).add(event.kind)
        for record in members:
            if record.uuid not in emitted:
                emitted[record.uuid] = {e.kind for e in store.events(run_uuid=record.uuid)}
        states: list[tuple[RunState, RunRecord]] = []
        for record in sorted(members, key=lambda r: r.created_at):
            role = cast(RunRole, record.meta.get("role") or ("dag" if record.kind == "dag" else "single"))
            plan = OpPlan.from_meta(record.meta["plan"]) if "plan" in record.meta else None
            hook = HookPlan.from_meta(record.meta["hook"]) if "hook" in record.meta else None
            run = self._statuses.adopt(
                record, role=role, root=root.uuid, plan=plan, hook=hook, emitted=emitted.get(record.uuid, ())
            )
            if record.spec and "placement" in record.spec:
                run.compiled = CompiledOp.from_dict(record.spec)
            states.append((run, record))
        if root.kind == "dag":
            dag = DagState(root.uuid, DagPlan.from_meta(root.meta["dag"]))
            mine = [r for r, _ in states if r.role == "op" and r.dag_uuid == root.uuid]  # not a nested DAG's ops
            dag.ops = {r.name: r.uuid for r in mine}
            dag.index = DagIndex({r.name: r for r in mine})
            dag.stopping = root.status == Status.STOPPING
            dag.timed_out = dag.stopping and root.reason == REASON_TIMEOUT
            dag.between_attempts = root.status == Status.RETRYING or (
                dag.stopping and store.status_history(root.uuid)[-1].previous == Status.RETRYING
            )
            if dag.between_attempts:
                if not dag.stopping:  # the retry delay may not be over: it counts again from here
                    state.timers.schedule(("retry", root.uuid), state.retry_delay, root.uuid)
            elif not dag.stopping:
                self._termination.arm_dag_timeout(dag, elapsed=_seconds_since(state, root.uuid, Status.RUNNING))
            _resume_attempt(store, dag, root.attempt)
            state.dags[root.uuid] = dag
            state.dirty_dags.add(root.uuid)
            self._adopt_nested([r for r, _ in states], {record.uuid: record for _, record in states})
        state.dirty_roots.add(root.uuid)
        for run, record in states:
            self._recover_run(run, record)

    def _adopt_nested(self, runs: list[RunState], records: Mapping[str, RunRecord]) -> None:
        """The ops running a nested DAG whose ops exist (``nesting``): their DAG is scheduled again."""
        state = self._state
        for run in runs:
            record = records[run.uuid]
            if run.role != "op" or record.kind != "dag" or "dag" not in record.meta or run.is_final:
                continue
            ops = {r.name: r for r in runs if r.dag_uuid == run.uuid and r.role == "op"}
            dag = DagState(run.uuid, DagPlan.from_meta(record.meta["dag"]))
            dag.ops = {name: r.uuid for name, r in ops.items()}
            dag.index = DagIndex(ops)
            dag.stopping = record.status == Status.STOPPING
            dag.timed_out = dag.stopping and record.reason == REASON_TIMEOUT
            dag.between_attempts = record.status == Status.RETRYING or (  # its ``maxRetries``, as a DAG's
                dag.stopping and state.store.status_history(run.uuid)[-1].previous == Status.RETRYING
            )
            if dag.between_attempts:
                if not dag.stopping:
                    state.timers.schedule(("retry", run.uuid), state.retry_delay, run.uuid)
            elif not dag.stopping:
                self._termination.arm_dag_timeout(dag, elapsed=_seconds_since(state, run.uuid, Status.RUNNING))
            _resume_attempt(state.store, dag, record.attempt)
            self._statuses.hold_slot(run, True)
            state.dags[run.uuid] = dag
            state.dirty_dags.add(run.uuid)

    def _resume_sweep(self, sweep: RunState, record: RunRecord) -> None:
        """Adopt a sweep's live trials and resume it (``Sweeps.resume``), then re-attach them, and its hook runs
        and its trials' (``_adopt_hooks_under``). One that cannot be resumed ends ``failed``
        (``SweepInterrupted``) with the reason; its trials end on their own. One already final is not resumed:
        what is left of it (trials taken over, hooks) is."""
        state = self._state
        trials = [r for r in state.store.children(sweep.uuid) if r.hook_of is None and not r.is_final]
        adopted = []
        for trial in trials:
            plan = OpPlan.from_meta(trial.meta["plan"]) if "plan" in trial.meta else None
            run = self._statuses.adopt(trial, role="trial", root=sweep.root, plan=plan)
            if trial.spec and "placement" in trial.spec:
                run.compiled = CompiledOp.from_dict(trial.spec)
            adopted.append((run, trial))
        why = None if record.is_final else self.resume_sweep(sweep, record, [run.uuid for run, _ in adopted])
        if why is not None:
            logger.warning("sweep %s (%s) cannot be resumed: %s", sweep.uuid, sweep.name, why)
            self._statuses.finish(sweep, Status.FAILED, REASON_SWEEP_INTERRUPTED,
                                  f"the engine running this sweep stopped and it cannot be resumed: {why}")  # fmt: skip
        for run, trial in adopted:
            self._recover_run(run, trial)
        self._adopt_hooks_under(sweep, record)

    def _resume_schedule(self, root: RunRecord) -> None:
        """A top-level schedule goes on where it was (``_resume_ticks``)."""
        logger.info("resuming schedule %s (%s)", root.uuid, root.name)
        self._state.dirty_roots.add(root.uuid)
        self._resume_ticks(self._statuses.adopt(root, role="schedule", root=root.uuid), root)

    def _resume_ticks(self, schedule: RunState, record: RunRecord) -> None:
        """A schedule (top-level, or an op of a DAG) goes on where it was (its next tick and count are in its
        ``meta``); its ticks' runs still unfinished are taken over like single runs, and its hook runs and its
        ticks' are resumed (``_adopt_hooks_under``). One already final fires no tick: only what is left of it
        is resumed."""
        state = self._state
        adopted = []
        for tick in state.store.children(record.uuid):
            if tick.hook_of is not None or tick.is_final:
                continue
            plan = OpPlan.from_meta(tick.meta["plan"]) if "plan" in tick.meta else None
            run = self._statuses.adopt(tick, role="tick", root=schedule.root, plan=plan)
            if tick.spec and "placement" in tick.spec:
                run.compiled = CompiledOp.from_dict(tick.spec)
            adopted.append((run, tick))
        if not record.is_final:
            self.resume_schedule(schedule, record, [run.uuid for run, _ in adopted])
        for run, tick in adopted:
            self._recover_run(run, tick)
        self._adopt_hooks_under(schedule, record)

    def _adopt_hooks_under(self, over: RunState, record: RunRecord) -> None:
        """The hook runs under a sweep or a schedule (``over``): a top-level one's own, its trials' or ticks', and
        theirs, in creation order. Adopted as a DAG's are (the final ones too: a hook's chain of hooks is read from
        them), those not final resumed as any run: re-attached, or started if they were only created."""
        state = self._state
        store = state.store
        found = store.children(record.uuid, include_hooks=True, all_attempts=True)
        adopted = []
        for hook in (r for r in found if r.hook_of is not None and r.uuid not in state.runs):
            plan = HookPlan.from_meta(hook.meta["hook"]) if "hook" in hook.meta else None
            emitted = () if hook.is_final else {e.kind for e in store.events(run_uuid=hook.uuid)}
            run = self._statuses.adopt(hook, role="hook", root=over.root, hook=plan, emitted=emitted)
            if hook.spec and "placement" in hook.spec:
                run.compiled = CompiledOp.from_dict(hook.spec)
            adopted.append((run, hook))
        for run, hook in adopted:
            self._recover_run(run, hook)

    def _recover_run(self, run: RunState, record: RunRecord) -> None:
        if run.role == "dag" or run.uuid in self._state.dags:  # a DAG, or an op running a nested one
            return
        if run.role == "op" and "sweep" in record.meta:
            self._resume_sweep(run, record)  # an op of a DAG that was sweeping (or swept: its trials' hooks)
            return
        if run.role == "op" and SCHEDULE_KEY in record.meta:
            self._resume_ticks(run, record)  # an op of a DAG that was ticking (or ticked: its ticks' hooks)
            return
        statuses = self._statuses
        action = classify(record.status, has_handle=record.handle is not None)
        if action == Recovery.PENDING:
            if record.status == Status.COMPILED:
                self._resume_compiled(run)
            elif run.role != "op":
                self._submission.start_unless_awaiting_approval(run)
            # ops still `created` are decided by the DAG evaluation like any other
        elif action == Recovery.RESUBMIT:
            self._state.timers.schedule(("retry", run.uuid), 0.0, run.uuid)
        elif action == Recovery.INTERRUPTED:
            if self._reattach_without_handle(run, record):
                return
            statuses.finish(
                run,
                Status.FAILED,
                REASON_SUBMISSION_INTERRUPTED,
                "the engine stopped between claiming this run and recording its handle; it is not "
                "resubmitted so that it never runs twice",
            )
        elif action == Recovery.STOP_PENDING:
            statuses.finish(run, Status.STOPPED, REASON_STOPPED, "stopped while the engine was down")
        elif action == Recovery.REATTACH:
            self._reattach(run, record)

    def _resume_compiled(self, run: RunState) -> None:
        """A ``compiled`` run waited for a slot when the engine died: compile it again, then queue it."""
        dag = self._state.dag_of(run)
        outcome = self._submission.compile(run, dag)
        if isinstance(outcome, Outcome):
            self._statuses.finish(run, outcome.status, outcome.reason, outcome.message)
            return
        if isinstance(outcome, Bound):  # an op running a nested DAG, not started yet
            self._state.store.set_spec(run.uuid, {}, inputs=outcome.inputs)
            self._submission.enqueue(run, dag)
            return
        run.compiled = outcome.op
        self._state.store.set_spec(run.uuid, outcome.op.to_dict(), inputs=outcome.inputs)
        self._submission.enqueue(run, dag)

    def _reattach_without_handle(self, run: RunState, record: RunRecord) -> bool:
        """The crash fell between the claim and the handle: the executor may still have started the run
        (the local one leaves a trace in the run's folder). Attach to it if so; never start it again."""
        if not record.spec or "placement" not in record.spec:
            return False
        compiled = run.compiled or CompiledOp.from_dict(record.spec)
        try:
            attached = self._state.executor(run).reattach(compiled, {}, self._on_update)
        except Exception:
            logger.debug("no trace of run %s without a handle record", run.uuid, exc_info=True)
            return False
        if attached:
            run.compiled = compiled
            self._statuses.hold_slot(run, True)
            logger.info("re-attached run %s, started before its handle was recorded", run.uuid)
        return attached

    def _reattach(self, run: RunState, record: RunRecord) -> None:
        assert record.handle is not None
        state = self._state
        if run.compiled is None:
            run.compiled = CompiledOp.from_dict(record.spec)
        self._statuses.hold_slot(run, True)
        try:
            attached = state.executor(run).reattach(run.compiled, dict(record.handle), self._on_update)
        except Exception as exc:
            logger.exception("re-attaching run %s failed", run.uuid)
            attached = False
            detail = f"{type(exc).__name__}: {exc}"
        else:
            detail = "the executor has no trace of it"
            if not attached and record.status == Status.STOPPING:
                # Its stop was asked and carried out while no engine watched (`polynb stop` without an engine,
                # an engine that died while stopping it): an executor whose stop deletes the run's objects (the
                # kubernetes one) keeps no trace of a stopped run. Stopped, as asked: not lost.
                if record.reason == REASON_TIMEOUT:
                    self._statuses.finish(run, Status.FAILED, REASON_TIMEOUT, record.message or "timed out")
                else:
                    self._statuses.finish(run, Status.STOPPED, REASON_STOPPED, record.message or "stopped")
                return
        if not attached:
            self._statuses.finish(run, Status.FAILED, REASON_LOST, f"could not re-attach after a restart: {detail}")
            return
        if record.status == Status.STOPPING:
            run.stop_requested = True
            state.stop_later(run)
        if run.compiled.termination.timeout:
            self._termination.arm_timeout(run, elapsed=_seconds_since(state, run.uuid, Status.QUEUED))


def _nested_members(store: Store, members: list[RunRecord]) -> list[RunRecord]:
    """The runs under the ops of ``members`` that run a nested DAG (at any depth), with their hooks."""
    found: list[RunRecord] = []
    todo = [r for r in members if r.kind == "dag" and r.meta.get("role") == "op" and "dag" in r.meta]
    while todo:
        below = store.children(todo.pop().uuid, include_hooks=True)
        found += below
        todo += [r for r in below if r.kind == "dag" and r.meta.get("role") == "op" and "dag" in r.meta]
    return found


def _seconds_since(state: EngineState, uuid: str, status: Status) -> float:
    """Seconds since ``uuid`` last entered ``status`` (0 if it never did): timers resume where they were."""
    entered = [c for c in state.store.status_history(uuid) if c.status == status]
    return max(0.0, (datetime.now(UTC) - entered[-1].at).total_seconds()) if entered else 0.0


def _resume_attempt(store: Store, dag: DagState, attempt: int) -> None:
    """A DAG past its first attempt (``maxRetries``): its events before the current attempt's ``running`` are
    the earlier attempts' (``DagState.attempt_seq``)."""
    if attempt <= 1:
        return
    starts = [change.seq for change in store.status_history(dag.uuid) if change.status == Status.RUNNING]
    if starts:
        seq = starts[-1]
        dag.begin_attempt(seq, {e.kind for e in store.events(run_uuid=dag.uuid, after_seq=seq)})
